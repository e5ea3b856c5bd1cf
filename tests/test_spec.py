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
