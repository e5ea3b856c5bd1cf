"""JSON shapes (path -> types seen) of answers and of schemas, and how two of them differ."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mock_server.spec import Spec

from .model import Difference

Shape = dict[str, set[str]]  # path ("data.task_result.videos[].id") -> JSON types seen there


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def shape(value: Any, into: Shape | None = None, prefix: str = "") -> Shape:
    """Every path of a JSON value with the types found there; array items share `[]`."""
    into = {} if into is None else into
    into.setdefault(prefix, set()).add(_type(value))
    if isinstance(value, dict):
        for key, item in value.items():
            shape(item, into, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for item in value:
            shape(item, into, prefix + "[]")
    return into


@dataclass(slots=True)
class SchemaShape:
    types: Shape = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    open_objects: set[str] = field(default_factory=set)  # objects without declared properties


def schema_shape(spec: Spec, schema: Mapping[str, Any], out: SchemaShape, prefix: str = "") -> None:
    """The paths a schema declares (through $ref and allOf), their types and required ones."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = spec.document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    for part in schema.get("allOf", []):
        schema_shape(spec, part, out, prefix)
    types = schema.get("type")
    declared = out.types.setdefault(prefix, set())
    if isinstance(types, str):
        declared.add(types)
    elif "properties" in schema:
        declared.add("object")
    if "properties" not in schema and "allOf" not in schema and "object" in declared:
        out.open_objects.add(prefix)
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        schema_shape(spec, sub, out, path)
    for name in schema.get("required", []):
        out.required.add(f"{prefix}.{name}" if prefix else name)
    if "items" in schema:
        schema_shape(spec, schema["items"], out, prefix + "[]")


def _parent(path: str) -> str:
    if path.endswith("[]"):
        return path[:-2]
    return path.rsplit(".", 1)[0] if "." in path else ""


def _fits(seen: set[str], declared: set[str]) -> bool:
    if not declared:
        return True
    return all(t in declared or (t == "integer" and "number" in declared) for t in seen)


def compare_to_schema(op: str, seen: Shape, declared: SchemaShape) -> list[Difference]:
    out: list[Difference] = []
    for path in sorted(seen):
        parent = _parent(path)
        if path and path not in declared.types:
            if parent in declared.types and parent not in declared.open_objects:
                out.append(Difference("field-added", "spec", op, path, "not in the schema"))
        elif not _fits(seen[path], declared.types.get(path, set())):
            detail = f"{'/'.join(sorted(seen[path]))} where the schema says "
            out.append(
                Difference(
                    "field-type", "spec", op, path, detail + "/".join(sorted(declared.types[path]))
                )
            )
    for path in sorted(declared.required):
        if path not in seen and _parent(path) in seen:
            out.append(Difference("field-missing", "spec", op, path, "required by the schema"))
    return out


def compare_shapes(op: str, recorded: Shape, mock: Shape) -> list[Difference]:
    out: list[Difference] = []
    for path in sorted(set(recorded) | set(mock)):
        if path in recorded and path in mock:
            if recorded[path] != mock[path]:
                detail = (
                    f"{'/'.join(sorted(recorded[path]))}, the mock: {'/'.join(sorted(mock[path]))}"
                )
                out.append(Difference("field-type", "mock", op, path, detail))
        elif _parent(path) in recorded and _parent(path) in mock:
            kind = "field-added" if path in recorded else "field-missing"
            detail = "the mock does not send it" if path in recorded else "the mock sends it"
            out.append(Difference(kind, "mock", op, path, detail))
    return out
