"""The server under test: requests through schemathesis' transport, answers as checks read them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import schemathesis
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mock_server.spec import Spec

from ..report import CheckFailure, CheckKind
from .envelope import error_mapping_problem, named_rules
from .options import VerifyOptions
from .report import VerifyReport

RESPONSE_CHECKS: dict[str, CheckFunction] = {
    "not_a_server_error": not_a_server_error,
    "status_code_conformance": status_code_conformance,
    "content_type_conformance": content_type_conformance,
    "response_schema_conformance": response_schema_conformance,
}
"""schemathesis' checks that look at one response: they also run on every request verify sends."""


@dataclass(slots=True)
class Answer:
    """A response as our checks read it."""

    http_status: int
    body: Any
    text: str

    @property
    def code(self) -> int | None:
        code = self.body.get("code") if isinstance(self.body, dict) else None
        return code if isinstance(code, int) else None

    @property
    def message(self) -> str:
        message = self.body.get("message") if isinstance(self.body, dict) else None
        return message if isinstance(message, str) else self.text[:300]

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def named_rules(self) -> list[str]:
        return named_rules(self.message)

    def failure(self, check: str, operation: str, reason: str, request: str) -> CheckFailure:
        """A failure of ``check`` on this answer."""
        return CheckFailure(
            check, operation, reason, request, self.http_status, self.code, self.message
        )


def summarise(value: Any, limit: int = 400) -> str:
    """JSON of a request with long strings (base64 audio) shortened.

    >>> summarise({"sound_file": "A" * 100})
    '{"sound_file": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...<100 chars>"}'
    """

    def shorten(v: Any) -> Any:
        if isinstance(v, str) and len(v) > 80:
            return f"{v[:40]}...<{len(v)} chars>"
        if isinstance(v, dict):
            return {k: shorten(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shorten(x) for x in v]
        return v

    text = json.dumps(shorten(value), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


Observer = Callable[[str, str, Any, "Answer"], None]
"""Told of every answer to a request verify sends: (operationId, label, request, answer)."""


class Target:
    """The server under test, reached through schemathesis' transport so that its response checks
    (and ours) run on every request verify sends itself."""

    def __init__(self, options: VerifyOptions, spec: Spec, report: VerifyReport) -> None:
        self.options = options
        self.spec = spec
        self.report = report
        self.schema = schemathesis.openapi.from_dict(copy.deepcopy(dict(spec.document)))
        self.base_url = options.base_url.rstrip("/")
        self.http = httpx.Client(timeout=options.request_timeout_s, trust_env=False)
        self.observers: list[Observer] = []

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        operation_id: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        path_parameters: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Send one request of an operation; every response check records a case."""
        operation = self.schema.find_operation_by_id(operation_id)
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["body"] = body
            kwargs["media_type"] = "application/json"
        case = operation.Case(
            query=dict(query or {}), path_parameters=dict(path_parameters or {}), **kwargs
        )
        headers = {"Authorization": self.options.credentials.authorization()}
        response = case.call(
            base_url=self.base_url, headers=headers, timeout=self.options.request_timeout_s
        )
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        answer = Answer(response.status_code, parsed, response.text[:2000])
        request = _summarise_request(body, query, path_parameters)
        for name, check in RESPONSE_CHECKS.items():
            failure = None
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except FailureGroup as group:
                reason = "; ".join(f"{f.title}: {f.message}" for f in group.exceptions)
                failure = answer.failure(name, operation.label, reason[:600], request)
            self.report.record(name, CheckKind.SCHEMATHESIS, failure)
        self._check_envelope(answer, operation.label, request)
        sent = body if body is not None else dict(query or path_parameters or {})
        for observe in self.observers:
            observe(operation_id, operation.label, sent, answer)
        return answer

    def send_raw(self, path: str, content: bytes, content_type: str) -> Answer:
        """A request schemathesis would not send: not JSON, or too big."""
        response = self.http.post(
            self.base_url + path,
            content=content,
            headers={
                "Authorization": self.options.credentials.authorization(),
                "Content-Type": content_type,
            },
        )
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        answer = Answer(response.status_code, parsed, response.text[:2000])
        self._check_envelope(answer, f"POST {path}", f"{len(content)} bytes of {content_type}")
        return answer

    def _check_envelope(self, answer: Answer, label: str, request: str) -> None:
        problem = error_mapping_problem(self.spec, answer.http_status, answer.body)
        failure = (
            answer.failure("kling_error_mapping", label, problem, request) if problem else None
        )
        self.report.record("kling_error_mapping", CheckKind.KLING, failure)


def _summarise_request(
    body: Any, query: Mapping[str, Any] | None, path_parameters: Mapping[str, Any] | None
) -> str:
    if body is not None:
        return summarise(body)
    return summarise({"query": dict(query or {}), "path": dict(path_parameters or {})})
