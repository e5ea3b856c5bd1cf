"""Upstream answers and callbacks checked against the spec: one readable line per violation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from ..spec import Spec

MAX_VIOLATIONS = 20


def _response_schema(spec: Spec, operation_id: str, status: int) -> Mapping[str, Any] | None:
    responses = spec.operation(operation_id).get("responses", {})
    entry = responses.get(str(status)) or responses.get("default")
    if entry is None:
        return None
    ref = entry.get("$ref", "")
    if ref.startswith("#/components/responses/"):
        entry = spec.document["components"]["responses"][ref.rsplit("/", 1)[-1]]
    schema: Mapping[str, Any] | None = (
        entry.get("content", {}).get("application/json", {}).get("schema")
    )
    return schema


def _where(path: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "(body)"


@functools.cache
def _checks(spec: Spec, ref: str) -> tuple[Callable[[Any], bool], Draft202012Validator]:
    """A compiled (Rust) check for the common case, the explaining validator for failures;
    built once per schema, as the mock does for request bodies."""
    schema = {"$ref": ref}
    compiled = jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": ref,
            "components": spec.document["components"],
        }
    )
    return compiled.is_valid, spec.validator_for(schema)


def _schema_errors(spec: Spec, schema: Mapping[str, Any], body: Any) -> list[str]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/"):
        is_valid, validator = _checks(spec, ref)
        try:
            if is_valid(body):
                return []
        except (ValueError, OverflowError):  # values the compiled check cannot represent
            pass
    else:
        validator = spec.validator_for(schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.path)))
    return [f"{_where(e.absolute_path)}: {e.message[:200]}" for e in errors[:MAX_VIOLATIONS]]


def check_response(spec: Spec, operation_id: str | None, status: int, body: Any) -> list[str]:
    """What in an upstream answer the spec does not allow (empty when it conforms)."""
    if operation_id is None:
        return []
    out: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] != 0:
        code = body["code"]
        expected = spec.http_status.get(code)
        if expected is None:
            out.append(f"code {code} is not in the spec's error table (x-kling-errors)")
        elif expected != status:
            out.append(f"code {code} came with HTTP {status}; the spec says HTTP {expected}")
    schema = _response_schema(spec, operation_id, status)
    if schema is None:
        out.append(f"HTTP {status} is not a documented answer of {operation_id}")
    elif not isinstance(body, dict | list):
        out.append(f"the body is not JSON: {str(body)[:80]}")
    else:
        out.extend(_schema_errors(spec, schema, body))
    return out[:MAX_VIOLATIONS]


def check_callback(spec: Spec, body: Any) -> list[str]:
    schema = {"$ref": "#/components/schemas/CallbackPayload"}
    if not isinstance(body, dict):
        return [f"the callback body is not a JSON object: {str(body)[:80]}"]
    return _schema_errors(spec, schema, body)


def header_value(violations: list[str], limit: int = 1024) -> str:
    """The violations as one visible-ASCII header value: `N; first | second ...`."""
    text = f"{len(violations)}; " + " | ".join(violations)
    text = text.encode("ascii", "backslashreplace").decode()
    text = "".join(c if 32 <= ord(c) < 127 else " " for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
