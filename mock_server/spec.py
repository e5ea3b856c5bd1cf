"""The OpenAPI document as the mock reads it: schemas, error table, rules and voices."""

from __future__ import annotations

import functools
import json
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
from .schema_errors import SchemaError, SchemaRules, explain

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
        self.schema_rules = SchemaRules(self.rules.values())

    def schema_rule(self, operation_id: str, field: str, keyword: str) -> str | None:
        """The rule a schema failure breaks: same field, and a keyword the rule names."""
        return self.schema_rules.rule_for(operation_id, field, keyword)

    @functools.cache  # noqa: B019 - one Spec per process; the cache lives as long as it does
    def validator(self, schema_name: str) -> Draft202012Validator:
        schema = {"$ref": f"{_BASE_URI}#/components/schemas/{schema_name}"}
        return Draft202012Validator(schema, registry=self._registry)

    def validator_for(self, schema: Mapping[str, Any]) -> Draft202012Validator:
        """A validator of any schema of the document ($refs resolve against it)."""
        return Draft202012Validator(rebase_refs(schema), registry=self._registry)

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
        error = first_error(self.validator(schema_name), body)
        if error is not None:
            raise self._to_api_error(operation_id, error)

    def validate_param(self, operation_id: str, name: str, value: Any) -> None:
        """Check a query or path parameter against its schema in the operation."""
        error = first_error(self._param_validator(operation_id, name), value)
        if error is not None:
            raise self._to_api_error(operation_id, error, prefix=name)

    def explain(self, operation_id: str, error: ValidationError, prefix: str = "") -> SchemaError:
        """The field, the wording of the 1201 and the rule of one schema failure."""
        return explain(error, operation_id, self.schema_rules, prefix)

    def _to_api_error(
        self, operation_id: str, error: ValidationError, prefix: str = ""
    ) -> ApiError:
        explained = self.explain(operation_id, error, prefix)
        return ApiError(INVALID_PARAMETER, explained.message, explained.rule)


def rebase_refs(value: Any, base_uri: str = _BASE_URI) -> Any:
    """Local refs ("#/components/...") made absolute, so they resolve against the document."""
    if isinstance(value, dict):
        return {
            k: (
                base_uri + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else rebase_refs(v, base_uri)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [rebase_refs(v, base_uri) for v in value]
    return value


def first_error(validator: Draft202012Validator, instance: Any) -> ValidationError | None:
    # best_match picks the most relevant error deterministically.
    from jsonschema.exceptions import best_match

    error: ValidationError | None = best_match(validator.iter_errors(instance))
    return error


@functools.cache
def load_spec(path: str | None = None) -> Spec:
    file = Path(path) if path else spec_dir() / SPEC_FILE
    text = file.read_text(encoding="utf-8")
    return Spec(yaml.safe_load(text), text)


def load_document(name: str) -> tuple[dict[str, Any], str]:
    text = (spec_dir() / name).read_text(encoding="utf-8")
    return yaml.safe_load(text), text
