"""The OpenAPI document as the mock reads it: schemas, error table, rules and voices."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from .domain.errors import INVALID_PARAMETER, ApiError

SPEC_FILE = "lipsync.yaml"
ADMIN_SPEC_FILE = "admin.yaml"
_BASE_URI = "urn:kling-lipsync"


def spec_dir() -> Path:
    """openapi/ of the source tree, or the copy packaged inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "openapi", here / "_openapi"):
        if (candidate / SPEC_FILE).is_file():
            return candidate
    return Path(str(resources.files("mock_server") / "_openapi"))


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    operation: str
    check: str
    fields: tuple[str, ...]
    code: int
    text: str
    boundary: Any = None
    keywords: tuple[str, ...] = ()  # schema keywords that break a `check: schema` rule


class Spec:
    """Parsed once; validators are compiled once per schema."""

    def __init__(self, document: Mapping[str, Any], text: str) -> None:
        self.document = document
        self.yaml_text = text
        self.json_text = json.dumps(document, indent=2)
        self.http_status: dict[int, int] = {
            int(e["code"]): int(e["http"]) for e in document["x-kling-errors"]
        }
        self.error_text: dict[int, str] = {
            int(e["code"]): str(e["explanation"]) for e in document["x-kling-errors"]
        }
        self.rules: dict[str, Rule] = {
            r["id"]: Rule(
                id=r["id"],
                operation=r["operation"],
                check=r["check"],
                fields=tuple(r["fields"]),
                code=int(r["code"]),
                text=r["text"],
                boundary=r.get("boundary"),
                keywords=tuple(r.get("keywords", ())),
            )
            for r in document["x-kling-rules"]
        }
        self.voices: dict[str, str] = {
            v["voice_id"]: v["language"] for v in document.get("x-kling-voices", [])
        }
        resource = Resource.from_contents(
            {**document, "$schema": "https://json-schema.org/draft/2020-12/schema"}
        )
        self._registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        self._schema_rules = self._index_schema_rules()

    def _index_schema_rules(self) -> dict[tuple[str, str], list[Rule]]:
        """(operation, field path with [] for indexes) -> the `check: schema` rules on it."""
        index: dict[tuple[str, str], list[Rule]] = {}
        for rule in self.rules.values():
            if rule.check == "schema":
                for f in rule.fields:
                    index.setdefault((rule.operation, f), []).append(rule)
        return index

    def schema_rule(self, operation_id: str, field: str, keyword: str) -> str | None:
        """The rule a schema failure breaks: same field, and a keyword the rule names."""
        for rule in self._schema_rules.get((operation_id, field), ()):
            if not rule.keywords or keyword in rule.keywords:
                return rule.id
        return None

    @functools.cache  # noqa: B019 - one Spec per process; the cache lives as long as it does
    def validator(self, schema_name: str) -> Draft202012Validator:
        schema = {"$ref": f"{_BASE_URI}#/components/schemas/{schema_name}"}
        return Draft202012Validator(schema, registry=self._registry)

    def validator_for(self, schema: Mapping[str, Any]) -> Draft202012Validator:
        """A validator of any schema of the document ($refs resolve against it)."""
        return Draft202012Validator(_rebase_refs(schema), registry=self._registry)

    @functools.cache  # noqa: B019
    def _is_valid(self, schema_name: str) -> Callable[[Any], bool]:
        """A compiled (Rust) check of the same schema: most requests are valid, and only a
        refusal needs the slower validator that explains what is wrong."""
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{schema_name}",
            "components": self.document["components"],
        }
        is_valid: Callable[[Any], bool] = jsonschema_rs.validator_for(schema).is_valid
        return is_valid

    @functools.cache  # noqa: B019
    def operation(self, operation_id: str) -> Mapping[str, Any]:
        for item in self.document["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and op.get("operationId") == operation_id:
                    return op
        raise KeyError(operation_id)

    @functools.cache  # noqa: B019
    def _param_validator(self, operation_id: str, name: str) -> Draft202012Validator:
        param = next(p for p in self.operation(operation_id)["parameters"] if p["name"] == name)
        return Draft202012Validator(param["schema"])

    def validate_body(self, operation_id: str, schema_name: str, body: Any) -> None:
        """Raise ApiError(1201) naming the field and the rule for the first schema violation."""
        try:
            if self._is_valid(schema_name)(body):
                return
        except (ValueError, OverflowError):  # values the compiled check cannot represent
            pass
        error = _first_error(self.validator(schema_name), body)
        if error is not None:
            raise self._to_api_error(operation_id, error)

    def validate_param(self, operation_id: str, name: str, value: Any) -> None:
        """Check a query or path parameter against its schema in the operation."""
        error = _first_error(self._param_validator(operation_id, name), value)
        if error is not None:
            raise self._to_api_error(operation_id, error, prefix=name)

    def _to_api_error(
        self, operation_id: str, error: ValidationError, prefix: str = ""
    ) -> ApiError:
        path = prefix + _field_path(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = re.search(r"'([^']+)' is a required property", error.message)
            if missing:
                path = (path + "." if path else "") + missing.group(1)
        generic = re.sub(r"\[\d+\]", "[]", path)
        rule = self.schema_rule(operation_id, generic, str(error.validator))
        where = path or "body"
        detail = error.message if len(error.message) <= 200 else _short_message(error)
        message = f"{where}: {detail}"
        if rule is not None:
            message += f" (rule {rule})"
        return ApiError(INVALID_PARAMETER, message, rule)


def _rebase_refs(value: Any) -> Any:
    """Local refs ("#/components/...") made absolute, so they resolve against the document."""
    if isinstance(value, dict):
        return {
            k: (
                _BASE_URI + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebase_refs(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rebase_refs(v) for v in value]
    return value


def _first_error(validator: Draft202012Validator, instance: Any) -> ValidationError | None:
    # best_match picks the most relevant error deterministically.
    from jsonschema.exceptions import best_match

    error: ValidationError | None = best_match(validator.iter_errors(instance))
    return error


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


def _short_message(error: ValidationError) -> str:
    """What is wrong without repeating a long value (a 1001-character text, a list of faces)."""
    template = _SHORT.get(str(error.validator), "fails " + str(error.validator) + " {!r}")
    value = type(error.instance).__name__
    if isinstance(error.instance, str | list):
        value += f" of length {len(error.instance)}"
    return f"the {value} " + template.format(error.validator_value)


def _field_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@functools.cache
def load_spec(path: str | None = None) -> Spec:
    file = Path(path) if path else spec_dir() / SPEC_FILE
    text = file.read_text(encoding="utf-8")
    return Spec(yaml.safe_load(text), text)


def load_document(name: str) -> tuple[dict[str, Any], str]:
    text = (spec_dir() / name).read_text(encoding="utf-8")
    return yaml.safe_load(text), text
