"""Our checks inside schemathesis' phases, as class-based schemathesis checks.

schemathesis keeps one registry of checks per process; a class-based check is instantiated per
run with the keyword arguments of that run's configuration. verify's run passes ``spec`` (the
spec path, ``""`` for the shipped one); in any other run the checks get no spec and do nothing,
so no module state ties a check to the schema it belongs to.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from mock_server.spec import Spec

from .. import strategies
from .envelope import error_mapping_problem, positive_refusal_problem

ENGINE_KLING_CHECKS = ("kling_error_mapping", "kling_positive_refusal")


def operation_ids(spec: Spec) -> dict[str, str]:
    """schemathesis label ("POST /v1/...") -> operationId."""
    labels = {}
    for path, item in spec.document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                labels[f"{method.upper()} {path}"] = operation["operationId"]
    return labels


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _SpecCheck:
    def __init__(self, spec: str | None = None) -> None:
        self.spec = None if spec is None else strategies.resolve_spec(spec or None)


# schemathesis names a class-based check after its class: these are the report's check names.
class kling_error_mapping(_SpecCheck):
    """Every response is the Kling envelope, its code documented with that HTTP status."""

    def after_response(self, ctx: Any, response: Any, case: Any) -> bool | None:
        if self.spec is None:
            return None
        problem = error_mapping_problem(self.spec, response.status_code, _json(response))
        if problem:
            raise AssertionError(problem)
        return None


class kling_positive_refusal(_SpecCheck):
    """A schema-valid request is refused only for a domain rule of its own operation."""

    def __init__(self, spec: str | None = None) -> None:
        super().__init__(spec)
        self.operation_ids = operation_ids(self.spec) if self.spec is not None else {}

    def after_response(self, ctx: Any, response: Any, case: Any) -> bool | None:
        meta = case.meta
        if self.spec is None or meta is None or not meta.generation.mode.is_positive:
            return None
        body = _json(response)
        if not isinstance(body, dict):
            return None
        message = body.get("message")
        problem = positive_refusal_problem(
            self.spec,
            self.operation_ids[case.operation.label],
            response.status_code,
            message if isinstance(message, str) else "",
        )
        if problem:
            raise AssertionError(problem)
        return None


schemathesis.check(kling_error_mapping)
schemathesis.check(kling_positive_refusal)
