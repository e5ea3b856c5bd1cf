"""The contract itself: valid OpenAPI, and every example conforms to its own schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from mock_server.spec import ADMIN_SPEC_FILE, load_document, load_spec


def _media_examples(where: str, body: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    for media in body.get("content", {}).values():
        named = dict(media.get("examples", {}))
        if "example" in media:
            named["example"] = {"value": media["example"]}
        for name, example in named.items():
            yield f"{where} {name}", media["schema"], example["value"]


def examples() -> Iterator[tuple[str, Any, Any]]:
    """(where, schema, example value) for every request and response example of the API."""
    doc = load_spec().document
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            yield from _media_examples(f"{where} request", op.get("requestBody", {}))
            yield from _media_examples(f"{where} 200", op["responses"]["200"])
    for name, response in doc["components"]["responses"].items():
        yield from _media_examples(f"components/responses/{name}", response)


EXAMPLES = list(examples())


class TestSpec:
    def test_both_documents_are_valid_openapi(self) -> None:
        """The API spec and the control API spec pass openapi-spec-validator."""
        validate(dict(load_spec().document))
        validate(load_document(ADMIN_SPEC_FILE)[0])

    def test_every_operation_has_a_success_example(self) -> None:
        """Each API operation shows a 200 example (Prism serves it, users read it)."""
        for path, item in load_spec().document["paths"].items():
            for method, op in item.items():
                content = op["responses"]["200"]["content"]["application/json"]
                assert content.get("examples") or content.get("example"), (method, path)

    @pytest.mark.parametrize(("where", "schema", "value"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
    def test_example_conforms_to_its_schema(
        self, where: str, schema: dict[str, Any], value: Any
    ) -> None:
        """An example in the spec validates against the schema it illustrates."""
        errors = [e.message for e in load_spec().validator_for(schema).iter_errors(value)]
        assert errors == [], where

    def test_request_string_lengths_are_the_body_limit(self) -> None:
        """No request string has a length limit of its own: every maxLength of a request body
        field (TTS text aside, documented at 1000) is the body-size boundary, so none refuses
        what body-size accepted (a 2,151-character presigned URL passes the real service)."""
        spec = load_spec()
        limit = spec.rules["body-size"].boundary
        schemas = spec.document["components"]["schemas"]
        found = {}
        for name in ("IdentifyFaceRequest", "CreateTaskRequest", "FaceChoose", "TtsRequest"):
            for field, prop in schemas[name]["properties"].items():
                if "maxLength" in prop and (name, field) != ("TtsRequest", "text"):
                    found[f"{name}.{field}"] = prop["maxLength"]
        print(f"request string fields with maxLength: {len(found)}")
        assert len(found) >= 9 and set(found.values()) == {limit}, found

    def test_optional_request_fields_take_null(self) -> None:
        """Every optional field of a request body accepts JSON null; no required one does."""
        spec = load_spec()
        schemas = spec.document["components"]["schemas"]
        for name in ("IdentifyFaceRequest", "CreateTaskRequest", "FaceChoose", "TtsRequest"):
            schema = schemas[name]
            for field, prop in schema["properties"].items():
                if "$ref" in prop:
                    prop = schemas[prop["$ref"].rsplit("/", 1)[1]]
                types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
                optional = field not in schema.get("required", [])
                # face_choose is required; so are the times and face_id inside it.
                assert ("null" in types) == optional, f"{name}.{field}: {types}"

    def test_decisions_are_written_down(self) -> None:
        """The undocumented behaviours the mock decided are written in the spec's own text."""
        text = load_spec().yaml_text
        for decision in (
            "`Identify-face`",
            "trailing `/`",
            "JSON `null` means \"not set\"",
            "2,151-character presigned",
            "final_balance_deduction",
            "probed; faces=derived",
            "?external_task_id=",
            "File is not in a valid base64 format",
        ):
            assert decision in text, decision
