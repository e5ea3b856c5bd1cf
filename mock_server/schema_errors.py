"""What a schema failure means for the client: the field, a short reason and the rule it breaks.

One explainer for the mock's 1201 answers and for check-client's findings, so that both name
the same field and the same `x-kling-rules` rule for the same violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema.exceptions import ValidationError

_REQUIRED = re.compile(r"'([^']+)' is a required property")
_INDEX = re.compile(r"\[\d+\]")
_LONG_MESSAGE = 200

_SHORT = {
    "maxLength": "is too long: more than {} characters",
    "minLength": "is too short: fewer than {} characters",
    "maxItems": "is too long: more than {} items",
    "minItems": "is too short: fewer than {} items",
    "maximum": "is greater than the maximum of {}",
    "minimum": "is less than the minimum of {}",
    "type": "is not of type {!r}",
    "enum": "is not one of {}",
    "pattern": "does not match {!r}",
}


class SchemaRule(Protocol):
    """The parts of an `x-kling-rules` entry the explainer reads."""

    @property
    def id(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def check(self) -> str: ...
    @property
    def fields(self) -> Sequence[str]: ...
    @property
    def keywords(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One explained violation: ``message`` is ``"<field>: <reason>[ (rule <id>)]"``."""

    field: str
    message: str
    rule: str | None


class SchemaRules:
    """The `check: schema` rules, by (operation, field path with ``[]`` for indexes)."""

    def __init__(self, rules: Iterable[SchemaRule]) -> None:
        self._by_field: dict[tuple[str, str], list[SchemaRule]] = {}
        for rule in rules:
            if rule.check == "schema":
                for f in rule.fields:
                    self._by_field.setdefault((rule.operation, f), []).append(rule)

    def rule_for(self, operation_id: str, field: str, keyword: str) -> str | None:
        """The rule a schema failure breaks: same field, and a keyword the rule names (a rule
        that names no keyword is broken by any failure at its field).

        >>> from types import SimpleNamespace as R
        >>> rules = SchemaRules([R(id="volume-range", operation="op", check="schema",
        ...                        fields=("v",), keywords=("minimum", "maximum"))])
        >>> rules.rule_for("op", "v", "maximum"), rules.rule_for("op", "v", "type")
        ('volume-range', None)
        """
        for rule in self._by_field.get((operation_id, _INDEX.sub("[]", field)), ()):
            if not rule.keywords or keyword in rule.keywords:
                return rule.id
        return None


def explain(
    error: ValidationError, operation_id: str, rules: SchemaRules, prefix: str = ""
) -> SchemaError:
    """The field, the mock's wording and the rule of one jsonschema failure.

    ``prefix`` names a parameter whose value (not a body) was validated.
    """
    path = prefix + field_path(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = _REQUIRED.search(error.message)
        if missing:
            path = (path + "." if path else "") + missing.group(1)
    rule = rules.rule_for(operation_id, path, str(error.validator))
    where = path or "body"
    detail = error.message if len(error.message) <= _LONG_MESSAGE else short_message(error)
    message = f"{where}: {detail}"
    if rule is not None:
        message += f" (rule {rule})"
    return SchemaError(where, message, rule)


def short_message(error: ValidationError) -> str:
    """What is wrong without repeating a long value (a 1001-character text, a list of faces)."""
    template = _SHORT.get(str(error.validator), "fails " + str(error.validator) + " {!r}")
    value = type(error.instance).__name__
    if isinstance(error.instance, str | list):
        value += f" of length {len(error.instance)}"
    return f"the {value} " + template.format(error.validator_value)


def field_path(parts: Iterable[Any]) -> str:
    """``["face_choose", 0, "sound_volume"]`` -> ``face_choose[0].sound_volume``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
