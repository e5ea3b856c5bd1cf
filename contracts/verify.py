"""`python -m contracts verify`: check a live server (the mock or the real one) against the spec.

Two families of checks run against one base URL:

* **schemathesis'** own, over every operation of the spec: examples, coverage, fuzzing (positive
  and negative data) and the stateful phase that follows the spec's OpenAPI ``links``
  (identify-face -> create -> query one -> query list; the last link is added in memory when the
  spec has none into the list). Checks: ``not_a_server_error``, ``status_code_conformance``,
  ``content_type_conformance``, ``response_schema_conformance``, ``negative_data_rejection``,
  ``positive_data_acceptance`` (which also accepts, for an operation, the HTTP statuses of its
  domain rules: the schema cannot express them). Positive identify-face cases use a readable
  video URL and stateful create-task cases a minimal valid face choice, so that the chain gets
  sessions and tasks to follow the links from.
* **ours** (kind ``kling`` and ``rule``), built on :mod:`contracts.strategies` against a real
  session (identify-face on an offline-derived video URL):

  - ``kling_error_mapping``: every response is the Kling envelope; ``code`` 0 comes with HTTP
    200, any other code is one of ``x-kling-errors`` and comes with the HTTP status listed there
    (also run inside schemathesis' phases);
  - ``kling_positive_refusal``: a schema-valid request may be refused only for a rule the schema
    cannot express (when the server names the rule, as the mock does);
  - ``valid_requests_accepted``: bodies valid by construction (identify-face, create-task, list,
    TTS) are accepted;
  - ``task_lifecycle``: a created task moves ``submitted -> processing -> succeed | failed``
    without going back, is found by ``external_task_id`` and exactly once in the list;
  - ``rule:<id>``, one per rule of ``x-kling-rules`` a request can break: a request breaking only
    that rule is refused with the rule's code and its documented HTTP status (and, when the server
    names the rule it applied, that rule).

    Three identify-face rules need real media behind a URL (a 61 s and a 1.5 s video, a
    640x360 one, a response of more than 100 MB): when the target is on loopback verify serves
    them itself from a small HTTP server on 127.0.0.1 (a free port), else they are reported
    not exercised. Three rules need time to pass (sessions expire after 24 h, TTS audio and
    result videos after 30 days): with ``--use-control-api`` (the default on loopback) and a
    target that answers the mock's ``GET /__admin/clock``, verify runs them last, holding the
    mock's clock and moving it with ``POST /__admin/clock/advance`` to 1 ms before each boundary
    (accepted) and to the boundary (refused). The mock's time stays that far ahead afterwards;
    the report says so in a note.

Against the mock::

    python -m mock_server --port 8000 &
    python -m contracts verify --base-url http://127.0.0.1:8000

Against the real service (every accepted create-task is a billed task)::

    KLING_ACCESS_KEY=... KLING_SECRET_KEY=... python -m contracts verify \\
        --base-url https://api-singapore.klingai.com --video-url https://.../speaker.mp4 \\
        --sound-file https://.../speech.mp3 --sound-duration-ms 6000 --poll-timeout 900

The exit status is 0 only when every check holds, 1 when one fails, 2 when the run could not
start (bad options, server unreachable). ``--report json`` prints the :class:`VerifyReport` as
JSON; ``--junit-xml`` writes one test case per check.
"""

from __future__ import annotations

import argparse
import copy
import enum
import hashlib
import http.server
import itertools
import json
import os
import random
import re
import sys
import threading
import time
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeVar

# schemathesis is imported with this module, never lazily: a process that imports schemathesis
# modules for a while and then drops them (pytest's in-process runs restore sys.modules) would
# otherwise give the engine and verify two copies of its event classes and check registry.
import httpx
import jwt
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.core.failures import FailureGroup
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine import core as _engine_core  # noqa: F401 - see the note above
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mock_server.admin_client import AdminClient, AdminError
from mock_server.auth import make_token
from mock_server.spec import Rule, Spec

from . import strategies

if TYPE_CHECKING:
    from schemathesis.engine.recorder import ScenarioRecorder

__all__ = [
    "CheckFailure",
    "CheckKind",
    "CheckSummary",
    "Credentials",
    "VerifyOptions",
    "VerifyReport",
    "add_arguments",
    "main",
    "run_from_args",
    "verify",
]

T = TypeVar("T")
Progress = Callable[[str], None]

SCHEMATHESIS_CHECKS: Final = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
)
"""The schemathesis checks verify runs, as the installed schemathesis names them."""

KLING_CHECKS: Final = (
    "kling_error_mapping",
    "kling_positive_refusal",
    "valid_requests_accepted",
    "task_lifecycle",
)
"""Our checks that are not tied to one rule."""

_ENGINE_KLING_CHECKS: Final = ("kling_error_mapping", "kling_positive_refusal")
# Checks that look at one response; they also run on every request verify itself sends.
_RESPONSE_CHECKS: Final = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
_RULE_NAMED = re.compile(r"\(rule ([a-z0-9-]+)\)")
_STATUS_ORDER: Final = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
_TERMINAL: Final = frozenset({"succeed", "failed"})
_MAX_EXAMPLES_KEPT = 5
_TIME_RULES: Final = ("session-valid", "audio-id-recent", "video-id-recent")
"""Rules broken only by time passing: checked through the mock's control API, after the rest."""
_MEDIA_RULES: Final = ("video-size", "video-duration", "video-resolution")
"""Rules broken only by real media: checked with files verify serves on 127.0.0.1."""
_DAY_MS: Final = 86_400_000
_TTS_TEXT: Final = (
    "This sentence is spoken by the text to speech API so that its audio id can be used "
    "for a lip-sync task, for thirty days."
)


# -- options -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """How verify authenticates: an AccessKey/SecretKey pair (a fresh HS256 JWT per request, as
    the documentation's sample builds it) or a console API key sent as is.

    >>> Credentials(api_key="mock-api-key").authorization()
    'Bearer mock-api-key'
    >>> Credentials.mock_defaults().authorization().count(".")
    2
    """

    access_key: str | None = None
    secret_key: str | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        if bool(self.access_key) != bool(self.secret_key):
            raise ValueError("give both the access key and the secret key, or neither")
        if not self.api_key and not self.access_key:
            raise ValueError("give an API key or an access key / secret key pair")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """Credentials from ``KLING_ACCESS_KEY`` / ``KLING_SECRET_KEY`` or ``KLING_API_KEY``.

        >>> Credentials.from_env({"KLING_API_KEY": "k"})
        Credentials(access_key=None, secret_key=None, api_key='k')
        >>> Credentials.from_env({}) is None
        True
        """
        env = os.environ if environ is None else environ
        access, secret, api = (
            env.get("KLING_ACCESS_KEY"),
            env.get("KLING_SECRET_KEY"),
            env.get("KLING_API_KEY"),
        )
        if access or secret:
            return cls(access_key=access, secret_key=secret)
        if api:
            return cls(api_key=api)
        return None

    @classmethod
    def mock_defaults(cls) -> Credentials:
        """The credentials a mock started without options accepts."""
        from mock_server.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

        return cls(access_key=DEFAULT_ACCESS_KEY, secret_key=DEFAULT_SECRET_KEY)

    def authorization(self) -> str:
        """The ``Authorization`` header value for one request (a new JWT every call)."""
        if self.access_key and self.secret_key:
            with warnings.catch_warnings():
                # The mock's default SecretKey is short; the token is still what the docs build.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                return f"Bearer {make_token(self.access_key, self.secret_key)}"
        return f"Bearer {self.api_key}"


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """What :func:`verify` checks and how hard.

    >>> options = VerifyOptions("http://127.0.0.1:8000", Credentials(api_key="mock-api-key"),
    ...                         max_examples=10, seed=1)
    >>> options.rule_examples
    3

    Attributes:
        base_url: The server to check (the mock, or ``https://api-singapore.klingai.com``).
        credentials: How to authenticate.
        spec: Path to the spec; the one shipped with the mock by default.
        max_examples: Examples per operation and phase in schemathesis' phases, and valid
            create-task bodies in ``valid_requests_accepted``.
        rule_examples: Requests sent per rule (the first of them just past the rule's boundary
            when it has one).
        seed: Seed of every generator; random (and reported) by default.
        video_urls: Videos for identify-face; offline-derived URLs by default (mock only).
        sound_file: The audio of valid create-task bodies (URL or base64) with
            ``sound_duration_ms`` its exact duration; a generated MP3 by default.
        poll_timeout_s: How long ``task_lifecycle`` waits for a task to end.
        request_timeout_s: Timeout of each request.
        schemathesis: Run schemathesis' phases (``False`` runs only our checks).
        control_api: Use the mock's control API (``/__admin/clock``) to break the rules that
            need time to pass (sessions after 24 h, TTS audio and result videos after 30 days):
            ``None`` uses it when the base URL is on loopback. It moves the mock's clock forward,
            after every other check has run.
    """

    base_url: str
    credentials: Credentials
    spec: str | None = None
    max_examples: int = 20
    rule_examples: int = 3
    seed: int | None = None
    video_urls: tuple[str, ...] = ()
    sound_file: str | None = None
    sound_duration_ms: int = 8000
    poll_timeout_s: float = 20.0
    poll_interval_s: float = 0.25
    request_timeout_s: float = 30.0
    schemathesis: bool = True
    control_api: bool | None = None


# -- report ------------------------------------------------------------------------------------


class CheckKind(enum.StrEnum):
    """Who defines a check: schemathesis, our contract checks, or one rule of the rule table."""

    SCHEMATHESIS = "schemathesis"
    KLING = "kling"
    RULE = "rule"


@dataclass(slots=True)
class CheckFailure:
    """One failed case of a check: what was sent, what came back and why it is wrong.

    >>> CheckFailure("rule:sound-duration", "POST /v1/videos/advanced-lip-sync",
    ...              "accepted (HTTP 200)").to_dict()["check"]
    'rule:sound-duration'
    """

    check: str
    operation: str
    reason: str
    request: str = ""
    http_status: int | None = None
    code: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The failure as JSON-ready data."""
        return {
            "check": self.check,
            "operation": self.operation,
            "reason": self.reason,
            "request": self.request,
            "http_status": self.http_status,
            "code": self.code,
            "message": self.message,
        }


@dataclass(slots=True)
class CheckSummary:
    """The cases one check looked at and the failures among them (up to 5 kept as examples).

    >>> summary = CheckSummary("task_lifecycle", CheckKind.KLING, cases=4)
    >>> summary.ok, summary.to_dict()["failures"]
    (True, 0)
    """

    name: str
    kind: CheckKind
    cases: int = 0
    failed: int = 0
    examples: list[CheckFailure] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """No failure (a skipped check is ok: it is reported, not failed)."""
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "cases": self.cases,
            "failures": self.failed,
            "skipped": self.skipped,
            "examples": [f.to_dict() for f in self.examples],
        }


@dataclass(slots=True)
class VerifyReport:
    """What :func:`verify` found: one :class:`CheckSummary` per check, in a stable order.

    >>> report = VerifyReport("http://127.0.0.1:8000", seed=1)
    >>> report.check("rule:volume-range", CheckKind.RULE).cases += 3
    >>> report.ok, report.to_dict()["checks"][0]["cases"]
    (True, 3)
    >>> print(report.summary_table().splitlines()[0])
    check                          kind          cases  failures
    """

    base_url: str
    seed: int
    elapsed_s: float = 0.0
    checks: dict[str, CheckSummary] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    links: dict[str, list[int]] = field(default_factory=dict)
    """Stateful steps per OpenAPI link followed: [steps, steps answered 2xx]."""
    notes: list[str] = field(default_factory=list)
    """What verify did to the server beyond sending requests (e.g. moving the mock's clock)."""

    @property
    def ok(self) -> bool:
        """Every check held and nothing stopped the run."""
        return not self.errors and all(c.ok for c in self.checks.values())

    @property
    def cases(self) -> int:
        """Responses checked, summed over the checks."""
        return sum(c.cases for c in self.checks.values())

    @property
    def failures(self) -> int:
        """Failed cases, summed over the checks."""
        return sum(c.failed for c in self.checks.values())

    def check(self, name: str, kind: CheckKind) -> CheckSummary:
        """The summary of a check, created on first use."""
        summary = self.checks.get(name)
        if summary is None:
            summary = self.checks[name] = CheckSummary(name, kind)
        return summary

    def ordered(self) -> list[CheckSummary]:
        """Schemathesis' checks, then ours, then the rules in the order of the rule table."""
        kinds = list(CheckKind)
        return sorted(self.checks.values(), key=lambda c: kinds.index(c.kind))

    def failed_checks(self) -> list[str]:
        """Names of the checks with at least one failure.

        >>> report = VerifyReport("http://x", seed=1)
        >>> report.check("rule:a", CheckKind.RULE).failed += 1
        >>> report.failed_checks()
        ['rule:a']
        """
        return [c.name for c in self.ordered() if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the ``--report json`` output)."""
        return {
            "base_url": self.base_url,
            "seed": self.seed,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "cases": self.cases,
            "failures": self.failures,
            "failed_checks": self.failed_checks(),
            "errors": list(self.errors),
            "notes": list(self.notes),
            "links": {
                link: {"steps": steps, "accepted": accepted}
                for link, (steps, accepted) in sorted(self.links.items())
            },
            "checks": [c.to_dict() for c in self.ordered()],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def summary_table(self) -> str:
        """The human summary: one line per check, then the failures and the verdict."""
        lines = [f"{'check':<30} {'kind':<12} {'cases':>6}  failures"]
        for c in self.ordered():
            note = f"  (not exercised: {c.skipped})" if c.skipped and not c.cases else ""
            lines.append(f"{c.name:<30} {c.kind.value:<12} {c.cases:>6}  {c.failed:>8}{note}")
        if self.links:
            lines.append("")
        for link, (steps, accepted) in sorted(self.links.items()):
            lines.append(f"stateful link {link}: {steps} steps, {accepted} answered 2xx")
        for c in self.ordered():
            for failure in c.examples:
                lines.append("")
                lines.append(f"FAILED {c.name}: {failure.operation}: {failure.reason}")
                if failure.request:
                    lines.append(f"  request:  {failure.request}")
                if failure.http_status is not None:
                    lines.append(
                        f"  response: HTTP {failure.http_status} code {failure.code} "
                        f"{failure.message[:300]}"
                    )
        for error in self.errors:
            lines.append(f"ERROR {error}")
        for note in self.notes:
            lines.append(f"NOTE {note}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append("")
        lines.append(
            f"verify: {verdict}: {self.cases} cases, {self.failures} failures, "
            f"{len(self.failed_checks())} failed checks in {self.elapsed_s:.1f} s "
            f"against {self.base_url} (seed {self.seed})"
        )
        return "\n".join(lines)

    def junit_xml(self) -> str:
        """A JUnit XML document: one test case per check, skipped when it was not exercised."""
        suite = ET.Element(
            "testsuite",
            name="contracts.verify",
            tests=str(len(self.checks)),
            failures=str(len(self.failed_checks())),
            errors=str(len(self.errors)),
            skipped=str(sum(1 for c in self.checks.values() if c.skipped and not c.cases)),
            time=f"{self.elapsed_s:.3f}",
        )
        for c in self.ordered():
            case = ET.SubElement(suite, "testcase", classname=c.kind.value, name=c.name)
            ET.SubElement(case, "system-out").text = f"{c.cases} cases, {c.failed} failures"
            if not c.ok:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=c.examples[0].reason if c.examples else "failed",
                    type=c.kind.value,
                )
                failure.text = "\n".join(
                    f"{f.operation}: {f.reason}\n  request: {f.request}\n"
                    f"  response: HTTP {f.http_status} code {f.code} {f.message}"
                    for f in c.examples
                )
            elif c.skipped and not c.cases:
                ET.SubElement(case, "skipped", message=c.skipped)
        for error in self.errors:
            case = ET.SubElement(suite, "testcase", classname="verify", name="run")
            ET.SubElement(case, "error", message=error)
        root = ET.Element("testsuites")
        root.append(suite)
        return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _record(report: VerifyReport, name: str, kind: CheckKind, failure: CheckFailure | None) -> None:
    summary = report.check(name, kind)
    summary.cases += 1
    if failure is not None:
        summary.failed += 1
        if len(summary.examples) < _MAX_EXAMPLES_KEPT:
            summary.examples.append(failure)


# -- talking to the server ---------------------------------------------------------------------


@dataclass(slots=True)
class _Answer:
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
        return _RULE_NAMED.findall(self.message)


def _summarise(value: Any, limit: int = 400) -> str:
    """JSON of a request with long strings (base64 audio) shortened."""

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


def _error_mapping_problem(spec: Spec, http_status: int, body: Any) -> str | None:
    """Why a response breaks the envelope / error-table contract, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object (the Kling envelope)"
    code = body.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        return f"`code` is {code!r}, not an integer"
    if not isinstance(body.get("message"), str) or not isinstance(body.get("request_id"), str):
        return "`message` and `request_id` must be strings"
    if code == 0:
        return None if http_status == 200 else f"code 0 (success) came with HTTP {http_status}"
    documented = spec.http_status.get(code)
    if documented is None:
        return f"code {code} is not in x-kling-errors"
    if documented != http_status:
        return f"code {code} must come with HTTP {documented} (x-kling-errors), got {http_status}"
    return None


def _positive_refusal_problem(spec: Spec, operation_id: str, answer: _Answer) -> str | None:
    """Why refusing a schema-valid request is wrong, or None (only when the server names a rule)."""
    if answer.http_status < 400:
        return None
    for name in answer.named_rules:
        rule = spec.rules.get(name)
        if rule is None:
            return f"refused for rule {name!r}, which is not in x-kling-rules"
        if rule.operation not in (operation_id, "*"):
            return f"refused for rule {name} of operation {rule.operation}"
        if rule.check == "schema":
            return f"a schema-valid request was refused for schema rule {name}"
    return None


class _Target:
    """The server under test, reached through schemathesis' transport so that its response checks
    (and ours) run on every request verify sends itself."""

    def __init__(self, options: VerifyOptions, spec: Spec, report: VerifyReport) -> None:

        self.options = options
        self.spec = spec
        self.report = report
        self.schema = schemathesis.openapi.from_dict(copy.deepcopy(dict(spec.document)))
        self.base_url = options.base_url.rstrip("/")
        self._checks = _builtin_response_checks()
        self.http = httpx.Client(timeout=options.request_timeout_s, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        operation_id: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        path_parameters: Mapping[str, Any] | None = None,
    ) -> _Answer:

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
        answer = _Answer(response.status_code, parsed, response.text[:2000])
        request = _summarise({"query": dict(query or {}), "path": dict(path_parameters or {})})
        if body is not None:
            request = _summarise(body)
        for name, check in self._checks.items():
            failure = None
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except FailureGroup as group:
                reason = "; ".join(f"{f.title}: {f.message}" for f in group.exceptions)
                failure = self._failure(name, operation.label, reason[:600], request, answer)
            _record(self.report, name, CheckKind.SCHEMATHESIS, failure)
        problem = _error_mapping_problem(self.spec, answer.http_status, answer.body)
        failure = None
        if problem:
            failure = self._failure(
                "kling_error_mapping", operation.label, problem, request, answer
            )
        _record(self.report, "kling_error_mapping", CheckKind.KLING, failure)
        return answer

    def send_raw(self, path: str, content: bytes, content_type: str) -> _Answer:
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
        answer = _Answer(response.status_code, parsed, response.text[:2000])
        problem = _error_mapping_problem(self.spec, answer.http_status, answer.body)
        failure = None
        if problem:
            request = f"{len(content)} bytes of {content_type}"
            failure = self._failure("kling_error_mapping", f"POST {path}", problem, request, answer)
        _record(self.report, "kling_error_mapping", CheckKind.KLING, failure)
        return answer

    @staticmethod
    def _failure(
        check: str, operation: str, reason: str, request: str, answer: _Answer
    ) -> CheckFailure:
        return CheckFailure(
            check, operation, reason, request, answer.http_status, answer.code, answer.message
        )


class _MediaServer:
    """Real media files served on 127.0.0.1 (a free port) for the media rules of identify-face.

    Files are encoded on first use and kept for the run; ``oversize`` streams zero bytes with a
    ``Content-Length`` one byte over the limit, without holding them in memory.
    """

    _CHUNK: Final = bytes(1 << 20)

    def __init__(self) -> None:
        files: dict[str, bytes] = {}
        oversize: dict[str, int] = {}
        chunk = self._CHUNK

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                size = oversize.get(path)
                data = files.get(path)
                if size is None and data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                length = size if size is not None else len(data or b"")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                try:
                    if data is not None:
                        self.wfile.write(data)
                        return
                    left = size or 0
                    while left > 0:
                        self.wfile.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading past its limit, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the target's fetches are not verify's progress

        self._files = files
        self._oversize = oversize
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="verify-media", daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"

    def video(self, duration_ms: int, width: int, height: int) -> str:
        """The URL of an MP4 of that duration and size (encoded once per run)."""
        path = f"/video-{duration_ms}ms-{width}x{height}.mp4"
        if path not in self._files:
            from mock_server.media import make_video

            self._files[path] = make_video(duration_ms, width, height, fps=1, with_audio=False)
        return self.base_url + path

    def oversize(self, size_bytes: int) -> str:
        """The URL of a response of ``size_bytes`` zero bytes, streamed."""
        path = f"/oversize-{size_bytes}.mp4"
        self._oversize[path] = size_bytes
        return self.base_url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _is_loopback(url: str) -> bool:
    """The URL's host is 127.0.0.0/8, ::1 or localhost.

    >>> _is_loopback("http://127.0.0.1:8000"), _is_loopback("http://[::1]:8000")
    (True, True)
    >>> _is_loopback("https://api-singapore.klingai.com")
    False
    """
    from mock_server.urls import is_loopback

    return is_loopback(url)


def _control_api(options: VerifyOptions) -> tuple[AdminClient | None, str]:
    """A client of the target's control API when verify may and can use it, else why not."""
    wanted = options.control_api
    if wanted is None:
        wanted = _is_loopback(options.base_url)
        if not wanted:
            return None, (
                "needs time to pass on the server: the target is not on loopback "
                "(pass --use-control-api if it is the mock)"
            )
    if not wanted:
        return None, "needs time to pass on the server (--no-control-api was given)"
    admin = AdminClient(options.base_url, timeout_s=options.request_timeout_s)
    try:
        clock = admin.clock()
        if not isinstance(clock, dict) or not isinstance(clock.get("now_ms"), int):
            raise ValueError("no clock")
    except (AdminError, httpx.HTTPError, ValueError, AttributeError):
        admin.close()
        return None, (
            "needs time to pass on the server: it has no control API "
            "(GET /__admin/clock did not answer code 0)"
        )
    return admin, ""


def _builtin_response_checks() -> dict[str, CheckFunction]:
    return {
        "not_a_server_error": not_a_server_error,
        "status_code_conformance": status_code_conformance,
        "content_type_conformance": content_type_conformance,
        "response_schema_conformance": response_schema_conformance,
    }


def _draw(strategy: st.SearchStrategy[T], count: int, seed: int) -> list[T]:
    """`count` values of a strategy, reproducible from the seed, without shrinking."""
    drawn: list[T] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]


def _ms(seconds: Any) -> int | None:
    try:
        return int(Decimal(str(seconds)) * 1000)
    except (InvalidOperation, ValueError):
        return None


# -- our checks --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    """What identify-face returned, plus what a first task told about the video."""

    session_id: str
    faces: list[dict[str, Any]]
    video_url: str
    video_ms: int | None = None
    task_id: str | None = None
    external_task_id: str | None = None


class _KlingChecks:
    """valid_requests_accepted, task_lifecycle and the per-rule checks."""

    def __init__(
        self,
        target: _Target,
        seed: int,
        progress: Progress,
        admin: AdminClient | None = None,
        no_clock: str = "needs time to pass on the server (no control API)",
    ) -> None:
        self.t = target
        self.admin = admin
        self.no_clock = no_clock
        self.media: _MediaServer | None = None
        self.moved_ms = 0
        self.spec = target.spec
        self.report = target.report
        self.options = target.options
        self.seed = seed
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:12]
        self.sound_file = self.options.sound_file or strategies.audio_base64(
            self.options.sound_duration_ms
        )
        self.audio_ms = self.options.sound_duration_ms
        self._seq = 0

    # helpers

    def _seed(self) -> int:
        self._seq += 1
        return (self.seed + self._seq * 7919) % (2**32)

    def _accepted(self, operation_id: str, label: str, request: Any, answer: _Answer) -> bool:
        failure = None
        if answer.http_status != 200 or answer.code != 0:
            failure = CheckFailure(
                "valid_requests_accepted",
                label,
                f"a valid {operation_id} request was refused",
                _summarise(request),
                answer.http_status,
                answer.code,
                answer.message,
            )
        _record(self.report, "valid_requests_accepted", CheckKind.KLING, failure)
        return failure is None

    def _refused(self, rule: Rule, label: str, request: Any, answer: _Answer) -> None:
        expected_http = self.spec.http_status[rule.code]
        reason = None
        if answer.http_status < 400:
            reason = f"accepted (HTTP {answer.http_status}); rule {rule.id} must refuse it"
        elif answer.http_status != expected_http or answer.code != rule.code:
            reason = (
                f"refused with HTTP {answer.http_status} code {answer.code}; rule {rule.id} "
                f"is code {rule.code} with HTTP {expected_http}"
            )
        elif answer.named_rules and rule.id not in answer.named_rules:
            reason = f"refused for rule {', '.join(answer.named_rules)} instead of {rule.id}"
        failure = None
        if reason is not None:
            failure = CheckFailure(
                f"rule:{rule.id}",
                label,
                reason,
                _summarise(request),
                answer.http_status,
                answer.code,
                answer.message,
            )
        _record(self.report, f"rule:{rule.id}", CheckKind.RULE, failure)

    def _kept(self, rule: Rule, label: str, request: Any, answer: _Answer, where: str) -> None:
        """A request on the allowed side of a rule's boundary must be accepted."""
        failure = None
        if answer.http_status != 200 or answer.code != 0:
            failure = CheckFailure(
                f"rule:{rule.id}",
                label,
                f"refused {where}; rule {rule.id} allows it",
                _summarise(request),
                answer.http_status,
                answer.code,
                answer.message,
            )
        _record(self.report, f"rule:{rule.id}", CheckKind.RULE, failure)

    def close(self) -> None:
        if self.media is not None:
            self.media.close()
            self.media = None

    def _skip_rule(self, rule_id: str, reason: str) -> None:
        summary = self.report.check(f"rule:{rule_id}", CheckKind.RULE)
        summary.skipped = summary.skipped or reason

    # setup

    def open_session(self) -> _Session | None:
        """identify-face on candidate videos; keep the one that lets the most rules be broken."""
        urls = list(self.options.video_urls) or [
            f"https://example.com/contracts/speaker-{i}.mp4" for i in range(8)
        ]
        best: tuple[int, _Session] | None = None
        for url in urls:
            session = self._identify(url)
            if session is None:
                continue
            missing = self._missing_rules(session)
            score = len(missing) if missing is not None else 99
            if best is None or score < best[0]:
                best = (score, session)
            if score == 0:
                break
        return None if best is None else best[1]

    def _identify(self, url: str) -> _Session | None:
        body = {"video_url": url}
        answer = self.t.send("identifyFace", body=body)
        if not self._accepted("identifyFace", "POST /v1/videos/identify-face", body, answer):
            return None
        data = answer.data if isinstance(answer.data, dict) else {}
        faces = [f for f in data.get("face_data") or [] if isinstance(f, dict)]
        session = _Session(str(data.get("session_id", "")), faces, url)
        self._first_task(session)
        return session

    def _first_task(self, session: _Session) -> None:
        """Create one task on the longest face to learn the video's duration from it."""
        usable = [
            f
            for f in session.faces
            if isinstance(f.get("start_time"), int) and isinstance(f.get("end_time"), int)
        ]
        if not usable:
            return
        external = f"contracts-{self.run_id}-{len(session.faces)}-{uuid.uuid4().hex[:8]}"
        body = self._create_body(session, {"sound_file": self.sound_file})
        if body is None:
            return
        body["external_task_id"] = external
        answer = self.t.send("createLipSyncTask", body=body)
        label = "POST /v1/videos/advanced-lip-sync"
        if not self._accepted("createLipSyncTask", label, body, answer):
            return
        task_id = str((answer.data or {}).get("task_id", ""))
        session.task_id, session.external_task_id = task_id, external
        got = self.t.send("getLipSyncTask", path_parameters={"id": task_id})
        data = got.data if isinstance(got.data, dict) else {}
        parent = (data.get("task_info") or {}).get("parent_video") or {}
        session.video_ms = _ms(parent.get("duration"))

    def _window_ms(self) -> int:
        """The shortest audio window a task may use (crop and face-overlap minimums)."""
        return max(
            int(self.spec.rules["crop-min-length"].boundary),
            int(self.spec.rules["insert-face-overlap"].boundary),
        )

    def _create_body(
        self, session: _Session, audio: dict[str, Any], audio_ms: int | None = None
    ) -> dict[str, Any] | None:
        """A minimal valid create-task body: the shortest window allowed on the longest face."""
        usable = [
            f
            for f in session.faces
            if isinstance(f.get("start_time"), int) and isinstance(f.get("end_time"), int)
        ]
        length = self._window_ms()
        if not usable or (audio_ms if audio_ms is not None else self.audio_ms) < length:
            return None
        face = max(usable, key=lambda f: f["end_time"] - f["start_time"])
        choice = {
            "face_id": face["face_id"],
            **audio,
            "sound_start_time": 0,
            "sound_end_time": length,
            "sound_insert_time": face["start_time"],
        }
        return {"session_id": session.session_id, "face_choose": [choice]}

    def _missing_rules(self, session: _Session) -> dict[str, str] | None:
        if session.video_ms is None:
            return None
        try:
            rules = strategies.expressible_create_rules(
                session.session_id,
                session.faces,
                self.audio_ms,
                session.video_ms,
                sound_file=self.sound_file,
                taken_external_task_id=session.external_task_id,
                spec=self.spec,
            )
        except ValueError:
            return None
        return {
            rule: reason
            for rule, reason in rules.items()
            if reason is not None and rule not in strategies.UNEXPRESSIBLE_RULES
        }

    # checks

    def valid_requests(self, session: _Session) -> None:
        n = max(self.options.rule_examples, 1)
        for body in _draw(
            strategies.identify_face_requests(self.options.video_urls or None, self.spec),
            n,
            self._seed(),
        ):
            answer = self.t.send("identifyFace", body=body)
            self._accepted("identifyFace", "POST /v1/videos/identify-face", body, answer)
        for query in _draw(strategies.list_queries(self.spec), n, self._seed()):
            answer = self.t.send("listLipSyncTasks", query=query)
            self._accepted("listLipSyncTasks", "GET /v1/videos/advanced-lip-sync", query, answer)
        for body in _draw(strategies.tts_requests(self.spec), 1, self._seed()):
            answer = self.t.send("createTts", body=body)
            self._accepted("createTts", "POST /v1/audio/tts", body, answer)
        if session.video_ms is None:
            return
        strategy = strategies.create_task_requests(
            session.session_id,
            session.faces,
            self.audio_ms,
            session.video_ms,
            sound_file=self.sound_file,
            external_task_id_prefix=f"contracts-{self.run_id}-",
            spec=self.spec,
        )
        count = max(self.options.max_examples // 2, n)
        for body in _draw(strategy, count, self._seed()):
            answer = self.t.send("createLipSyncTask", body=body)
            self._accepted("createLipSyncTask", "POST /v1/videos/advanced-lip-sync", body, answer)

    def rules(self, session: _Session | None) -> None:
        n = max(self.options.rule_examples, 1)
        create_label = "POST /v1/videos/advanced-lip-sync"
        for rule in self.spec.rules.values():
            name = f"rule:{rule.id}"
            if rule.id in _TIME_RULES:
                if self.admin is None:
                    self._skip_rule(rule.id, self.no_clock)
                else:
                    self.report.check(name, CheckKind.RULE)  # checked last: see time_rules
                continue
            if rule.id in _MEDIA_RULES:
                self._media_rule(rule)
            elif rule.id == "callback-url-not-self":
                self._self_callback_rule(rule, session, create_label)
            elif rule.operation == "createLipSyncTask":
                self._create_rule(rule, session, n, create_label)
            elif rule.operation == "identifyFace":
                if rule.id in strategies.UNEXPRESSIBLE_RULES:
                    self._skip_rule(rule.id, strategies.UNEXPRESSIBLE_RULES[rule.id])
                    continue
                for _, body in _draw(
                    strategies.invalid_identify_face_requests([rule.id], self.spec), n, self._seed()
                ):
                    answer = self.t.send("identifyFace", body=body)
                    self._refused(rule, "POST /v1/videos/identify-face", body, answer)
            elif rule.operation == "listLipSyncTasks":
                for _, query in _draw(
                    strategies.invalid_list_queries([rule.id], self.spec), n, self._seed()
                ):
                    answer = self.t.send("listLipSyncTasks", query=query)
                    self._refused(rule, "GET /v1/videos/advanced-lip-sync", query, answer)
            elif rule.operation == "getLipSyncTask" and rule.id == "task-exists":
                for _, task_id in _draw(strategies.invalid_task_ids(self.spec), n, self._seed()):
                    answer = self.t.send("getLipSyncTask", path_parameters={"id": task_id})
                    self._refused(rule, "GET /v1/videos/advanced-lip-sync/{id}", task_id, answer)
            elif rule.operation == "createTts":
                for _, body in _draw(
                    strategies.invalid_tts_requests([rule.id], self.spec), n, self._seed()
                ):
                    answer = self.t.send("createTts", body=body)
                    self._refused(rule, "POST /v1/audio/tts", body, answer)
            elif rule.id == "body-json":
                self._body_json(rule)
            elif rule.id == "body-size":
                self._body_size(rule)
            else:
                self._skip_rule(rule.id, "no request breaks it")
            self.progress(f"{name}: {self.report.check(name, CheckKind.RULE).cases} cases")

    def _create_rule(self, rule: Rule, session: _Session | None, n: int, label: str) -> None:
        if rule.id in strategies.UNEXPRESSIBLE_RULES:
            self._skip_rule(rule.id, strategies.UNEXPRESSIBLE_RULES[rule.id])
            return
        if session is None or session.video_ms is None:
            self._skip_rule(rule.id, "no session: identify-face or the first task failed")
            return
        missing = self._missing_rules(session) or {}
        if rule.id in missing:
            self._skip_rule(rule.id, missing[rule.id])
            return
        strategy = strategies.invalid_create_requests(
            session.session_id,
            session.faces,
            self.audio_ms,
            session.video_ms,
            sound_file=self.sound_file,
            taken_external_task_id=session.external_task_id,
            rules=[rule.id],
            spec=self.spec,
        )
        for _, body in _draw(strategy, n, self._seed()):
            answer = self.t.send("createLipSyncTask", body=body)
            self._refused(rule, label, body, answer)

    def _self_callback_rule(self, rule: Rule, session: _Session | None, label: str) -> None:
        """A callback_url at the target's own address (a path that does nothing, should a
        broken target accept it and call itself)."""
        if self.admin is None:
            self._skip_rule(rule.id, "a rule of the mock: the target has no control API")
            return
        if session is None or session.video_ms is None:
            self._skip_rule(rule.id, "no session: identify-face or the first task failed")
            return
        strategy = strategies.create_task_requests(
            session.session_id,
            session.faces,
            self.audio_ms,
            session.video_ms,
            sound_file=self.sound_file,
            external_task_id_prefix=f"contracts-{self.run_id}-self-",
            spec=self.spec,
        )
        own = self.options.base_url.rstrip("/")
        for body in _draw(strategy, 1, self._seed()):
            body = {**body, "callback_url": own + "/v1/no-such-route"}
            answer = self.t.send("createLipSyncTask", body=body)
            self._refused(rule, label, body, answer)

    def _media_rule(self, rule: Rule) -> None:
        """identify-face on real files verify serves itself (the target must reach 127.0.0.1)."""
        if not _is_loopback(self.options.base_url):
            self._skip_rule(
                rule.id,
                "needs a real media file behind a URL: the target is not on loopback, so it "
                "cannot fetch the files verify would serve on 127.0.0.1",
            )
            return
        if self.media is None:
            self.media = _MediaServer()
        label = "POST /v1/videos/identify-face"
        broken: list[str] = []
        allowed: list[tuple[str, str]] = []
        if rule.id == "video-size":
            broken.append(self.media.oversize(int(rule.boundary) + 1))
        elif rule.id == "video-duration":
            low, high = (int(b) for b in rule.boundary)
            broken += [
                self.media.video(high + 1000, 1280, 720),
                self.media.video(low - 500, 1280, 720),
            ]
            allowed.append((self.media.video(low, 1280, 720), f"for a video of exactly {low} ms"))
        else:
            broken.append(self.media.video(3000, 640, 360))
        for url, where in allowed:
            body = {"video_url": url}
            self._kept(rule, label, body, self.t.send("identifyFace", body=body), where)
        for url in broken:
            body = {"video_url": url}
            self._refused(rule, label, body, self.t.send("identifyFace", body=body))

    # rules broken by time: run last, they move the mock's clock

    def time_rules(self, session: _Session | None) -> None:
        """Break session-valid, audio-id-recent and video-id-recent by moving the mock's clock.

        The clock is held (manual mode) while verify moves it, so that a request 1 ms before
        each boundary is checked as accepted and one at the boundary as refused; its mode is
        restored afterwards. Time on the mock stays ahead by what verify moved it.
        """
        admin = self.admin
        if admin is None:
            return
        rules = [self.spec.rules[r] for r in _TIME_RULES if r in self.spec.rules]
        if session is None or session.video_ms is None:
            for rule in rules:
                self._skip_rule(rule.id, "no session: identify-face or the first task failed")
            return
        before = admin.clock()
        held = before.get("mode") == "manual"
        restore = False
        if not held:
            try:
                admin.set_clock(mode="manual")
                held = restore = True
            except AdminError:
                pass
        try:
            checks: list[tuple[int, Rule, Callable[[], None], Callable[[], None]]] = []
            for rule in rules:
                prepared = self._prepare_time_rule(rule, session)
                if isinstance(prepared, str):
                    self._skip_rule(rule.id, prepared)
                else:
                    checks.append((prepared[0], rule, prepared[1], prepared[2]))
            for due, rule, keep, refuse in sorted(checks, key=lambda c: c[0]):
                now = self._now()
                if held and due - 1 >= now:
                    self._advance(due - 1 - now)
                    keep()
                    self._advance(1)
                else:
                    self._advance(max(0, due - now))
                refuse()
                name = f"rule:{rule.id}"
                self.progress(f"{name}: {self.report.check(name, CheckKind.RULE).cases} cases")
        finally:
            if restore:
                admin.set_clock(mode=str(before["mode"]), speed=float(before["speed"]))
            if self.moved_ms:
                self.report.notes.append(
                    f"verify moved the mock's clock forward by {self.moved_ms} ms "
                    f"({self.moved_ms / _DAY_MS:.2f} days) with POST /__admin/clock/advance, "
                    "after every other check: the mock's time stays that far ahead"
                )

    def _now(self) -> int:
        assert self.admin is not None
        return int(self.admin.clock()["now_ms"])

    def _advance(self, ms: int) -> None:
        assert self.admin is not None
        if ms > 0:
            self.admin.advance(ms, wait_callbacks=False)
            self.moved_ms += ms

    def _prepare_time_rule(
        self, rule: Rule, session: _Session
    ) -> tuple[int, Callable[[], None], Callable[[], None]] | str:
        """(when the rule's boundary is reached, the check before it, the check at it), or why
        the rule cannot be checked."""
        boundary = int(rule.boundary)
        create = "POST /v1/videos/advanced-lip-sync"
        where = "1 ms before the boundary"

        def create_check(
            body_of: Callable[[], dict[str, Any] | None], keep: bool
        ) -> Callable[[], None]:
            def check() -> None:
                body = body_of()
                if body is None:
                    return
                answer = self.t.send("createLipSyncTask", body=body)
                if keep:
                    self._kept(rule, create, body, answer, where)
                else:
                    self._refused(rule, create, body, answer)

            return check

        if rule.id == "session-valid":
            fresh = self._plain_session(session.video_url)
            sound = {"sound_file": self.sound_file}
            body = None if fresh is None else self._create_body(fresh, sound)
            if body is None:
                return "identify-face or a valid create-task body failed for a fresh session"
            due = self._now() + boundary
            return due, create_check(lambda: body, True), create_check(lambda: body, False)
        if rule.id == "audio-id-recent":
            # A drawn voice, with a text long enough for a task's audio window (about 8 s).
            tts = _draw(strategies.tts_requests(self.spec), 1, self._seed())[0]
            tts["text"] = _TTS_TEXT
            tts.pop("voice_speed", None)
            answer = self.t.send("createTts", body=tts)
            if not self._accepted("createTts", "POST /v1/audio/tts", tts, answer):
                return "the TTS request was refused"
            due = self._now() + boundary
            audios = ((answer.data or {}).get("task_result") or {}).get("audios") or [{}]
            audio_id, audio_ms = str(audios[0].get("id", "")), _ms(audios[0].get("duration"))

            def body_of() -> dict[str, Any] | None:
                fresh = self._plain_session(session.video_url)
                if fresh is None:
                    return None
                return self._create_body(fresh, {"audio_id": audio_id}, audio_ms)

            if not audio_id or audio_ms is None or audio_ms < self._window_ms():
                return "the TTS audio has no id or is too short for a task"
            return due, create_check(body_of, True), create_check(body_of, False)
        # video-id-recent: a result video of a task that succeeded
        found = self._result_video(session)
        if found is None:
            return "no task succeeded, so there is no generated video_id"
        video_id, finished = found
        identify = "POST /v1/videos/identify-face"
        body = {"video_id": video_id}

        def keep() -> None:
            self._kept(rule, identify, body, self.t.send("identifyFace", body=body), where)

        def refuse() -> None:
            self._refused(rule, identify, body, self.t.send("identifyFace", body=body))

        return finished + boundary, keep, refuse

    def _plain_session(self, url: str) -> _Session | None:
        """identify-face on a video, without the first task."""
        body = {"video_url": url}
        answer = self.t.send("identifyFace", body=body)
        if not self._accepted("identifyFace", "POST /v1/videos/identify-face", body, answer):
            return None
        data = answer.data if isinstance(answer.data, dict) else {}
        faces = [f for f in data.get("face_data") or [] if isinstance(f, dict)]
        return _Session(str(data.get("session_id", "")), faces, url)

    def _result_video(self, session: _Session) -> tuple[str, int] | None:
        """(video id, when its task ended) of a succeeded task: the first task, else the list's."""
        tasks: list[Any] = []
        if session.task_id:
            answer = self.t.send("getLipSyncTask", path_parameters={"id": session.task_id})
            tasks.append(answer.data)
        answer = self.t.send("listLipSyncTasks", query={"pageNum": 1})
        tasks += answer.data if isinstance(answer.data, list) else []
        for task in tasks:
            if not isinstance(task, dict) or task.get("task_status") != "succeed":
                continue
            videos = (task.get("task_result") or {}).get("videos") or []
            ended = task.get("updated_at")
            if videos and isinstance(videos[0], dict) and isinstance(ended, int):
                return str(videos[0].get("id", "")), ended
        return None

    def _body_json(self, rule: Rule) -> None:
        samples = [
            (b'{"video_url": "https://example.com/a.mp4"}', "text/plain"),
            (b'{"video_url": ', "application/json"),
            (b"[]", "application/json"),
        ]
        for content, content_type in samples:
            for path in ("/v1/videos/identify-face", "/v1/videos/advanced-lip-sync"):
                answer = self.t.send_raw(path, content, content_type)
                request = f"{content!r} as {content_type}"
                self._refused(rule, f"POST {path}", request, answer)

    def _body_size(self, rule: Rule) -> None:
        limit = int(rule.boundary)
        padding = "x" * (limit + 1 - len('{"video_url": ""}'))
        content = json.dumps({"video_url": padding}).encode()
        answer = self.t.send_raw("/v1/videos/identify-face", content, "application/json")
        self._refused(rule, "POST /v1/videos/identify-face", f"{len(content)} bytes", answer)

    def lifecycle(self, session: _Session | None) -> None:
        if session is None or not session.task_id:
            summary = self.report.check("task_lifecycle", CheckKind.KLING)
            summary.skipped = "no task was created"
            return
        task_id = session.task_id
        label = "GET /v1/videos/advanced-lip-sync/{id}"
        deadline = time.monotonic() + self.options.poll_timeout_s
        seen: list[dict[str, Any]] = []
        while True:
            answer = self.t.send("getLipSyncTask", path_parameters={"id": task_id})
            task = answer.data if isinstance(answer.data, dict) else {}
            problem = self._lifecycle_problem(seen, task, answer)
            self._lifecycle_case(label, task_id, answer, problem)
            seen.append(task)
            status = task.get("task_status")
            if problem or status in _TERMINAL or time.monotonic() > deadline:
                break
            time.sleep(self.options.poll_interval_s)
        if seen and seen[-1].get("task_status") not in _TERMINAL:
            self.report.check("task_lifecycle", CheckKind.KLING).skipped = (
                f"task {task_id} did not end within {self.options.poll_timeout_s:g} s "
                "(raise --poll-timeout)"
            )
        if session.external_task_id:
            ext = session.external_task_id
            answer = self.t.send("getLipSyncTask", path_parameters={"id": ext})
            found = (answer.data or {}).get("task_id") if isinstance(answer.data, dict) else None
            problem = None
            if found != task_id:
                problem = f"querying by external_task_id {ext!r} did not return task {task_id}"
            self._lifecycle_case(label, ext, answer, problem)
        self._in_list_once(task_id)

    def _lifecycle_problem(
        self, seen: list[dict[str, Any]], task: dict[str, Any], answer: _Answer
    ) -> str | None:
        if answer.http_status != 200:
            return f"the task could not be queried (HTTP {answer.http_status})"
        status = task.get("task_status")
        if status not in _STATUS_ORDER:
            return f"unknown task_status {status!r}"
        if status == "succeed" and not (task.get("task_result") or {}).get("videos"):
            return "the task succeeded without a result video"
        if not seen:
            return None
        before = seen[-1]
        if _STATUS_ORDER[status] < _STATUS_ORDER.get(str(before.get("task_status")), 0):
            return f"task_status went back from {before.get('task_status')} to {status}"
        if before.get("task_status") in _TERMINAL and status != before.get("task_status"):
            return f"terminal status {before.get('task_status')} changed to {status}"
        if task.get("created_at") != before.get("created_at"):
            return "created_at changed"
        updated, previous = task.get("updated_at"), before.get("updated_at")
        if isinstance(updated, int) and isinstance(previous, int) and updated < previous:
            return "updated_at went back"
        return None

    def _lifecycle_case(
        self, label: str, request: str, answer: _Answer, problem: str | None
    ) -> None:
        failure = None
        if problem:
            failure = CheckFailure(
                "task_lifecycle",
                label,
                problem,
                request,
                answer.http_status,
                answer.code,
                answer.message,
            )
        _record(self.report, "task_lifecycle", CheckKind.KLING, failure)

    def _in_list_once(self, task_id: str) -> None:
        page_size = next(
            int(p["schema"]["maximum"])
            for p in self.spec.operation("listLipSyncTasks")["parameters"]
            if p["name"] == "pageSize"
        )
        found = 0
        label = "GET /v1/videos/advanced-lip-sync"
        for page in range(1, 21):
            query = {"pageNum": page, "pageSize": page_size}
            answer = self.t.send("listLipSyncTasks", query=query)
            items = answer.data if isinstance(answer.data, list) else []
            found += sum(1 for t in items if isinstance(t, dict) and t.get("task_id") == task_id)
            created = [t.get("created_at") for t in items if isinstance(t, dict)]
            if any(
                isinstance(a, int) and isinstance(b, int) and a < b
                for a, b in itertools.pairwise(created)
            ):
                self._lifecycle_case(label, _summarise(query), answer, "list is not newest first")
            if answer.http_status != 200 or len(items) < page_size:
                break
        problem = None if found == 1 else f"task {task_id} appears {found} times in the list"
        self._lifecycle_case(label, f"pages of {page_size}", _Answer(200, None, ""), problem)


# -- schemathesis ------------------------------------------------------------------------------


# The schemas verify runs, by id: the checks we register with schemathesis are global, so they
# do nothing for any other schema loaded in the same process.
_ACTIVE: dict[int, tuple[Spec, dict[str, str]]] = {}
_REGISTERED = False


def _register_engine_checks() -> None:
    global _REGISTERED
    if _REGISTERED:
        return

    def kling_error_mapping(ctx: Any, response: Any, case: Any) -> bool | None:
        active = _ACTIVE.get(id(case.operation.schema))
        if active is None:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        problem = _error_mapping_problem(active[0], response.status_code, body)
        if problem:
            raise AssertionError(problem)
        return None

    def kling_positive_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
        active = _ACTIVE.get(id(case.operation.schema))
        meta = case.meta
        if active is None or meta is None or not meta.generation.mode.is_positive:
            return None
        spec, operation_ids = active
        try:
            body = response.json()
        except ValueError:
            return None
        answer = _Answer(response.status_code, body, "")
        problem = _positive_refusal_problem(spec, operation_ids[case.operation.label], answer)
        if problem:
            raise AssertionError(problem)
        return None

    schemathesis.check(kling_error_mapping)
    schemathesis.check(kling_positive_refusal)
    _REGISTERED = True


def _operation_ids(spec: Spec) -> dict[str, str]:
    """schemathesis label ("POST /v1/...") -> operationId."""
    labels = {}
    for path, item in spec.document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                labels[f"{method.upper()} {path}"] = operation["operationId"]
    return labels


def _usable_positive_cases(schema: Any, options: VerifyOptions, spec: Spec) -> None:
    """Make schema-valid identify-face and stateful create-task cases usable by the server.

    A schema-valid ``video_url`` is almost never a readable video, and a schema-valid face
    choice almost never fits the session's faces and audio, so without this the stateful phase
    would rarely get past identify-face or create-task to follow the links from them. Positive
    identify-face cases get a video URL (derived from the generated body, so a case still maps
    to one URL); positive create-task cases of the stateful phase get a minimal valid face
    choice, which the link from identify-face then fills with the session's values. Fuzzing and
    coverage keep their raw create-task bodies.
    """

    video_urls = options.video_urls
    sound_file = options.sound_file or strategies.DERIVED_SOUND_URL
    window = max(
        int(spec.rules["crop-min-length"].boundary),
        int(spec.rules["insert-face-overlap"].boundary),
    )

    def map_case(ctx: Any, case: Any) -> Any:
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive:
            return case
        label = case.operation.label
        if label == "POST /v1/videos/identify-face":
            digest = hashlib.sha256(repr(case.body).encode()).hexdigest()
            if video_urls:
                url = video_urls[int(digest, 16) % len(video_urls)]
            else:
                url = f"https://example.com/contracts/fuzz-{digest[:16]}.mp4"
            case.body = {"video_url": url}
        elif label == "POST /v1/videos/advanced-lip-sync" and meta.phase.name == TestPhase.STATEFUL:
            body = case.body if isinstance(case.body, dict) else {}
            choice = {
                "face_id": "0",
                "sound_file": sound_file,
                "sound_start_time": 0,
                "sound_end_time": window,
                "sound_insert_time": 0,
            }
            usable = {"session_id": body.get("session_id", ""), "face_choose": [choice]}
            if isinstance(body.get("watermark_info"), dict):
                usable["watermark_info"] = body["watermark_info"]
            case.body = usable
        return case

    schema.hook("map_case")(map_case)


def _with_list_link(document: dict[str, Any]) -> dict[str, Any]:
    """The spec, plus a link query-one -> list when the spec has none into listLipSyncTasks.

    The stateful phase only reaches operations that links lead to; without it the chain
    identify-face -> create -> query one would stop before the list.
    """
    doc = copy.deepcopy(document)
    targets = {
        link.get("operationId")
        for item in doc["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict)
        for response in operation.get("responses", {}).values()
        if isinstance(response, dict)
        for link in response.get("links", {}).values()
    }
    if "listLipSyncTasks" in targets:
        return doc
    for item in doc["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == "getLipSyncTask":
                links = operation["responses"]["200"].setdefault("links", {})
                links["ListTasks"] = {
                    "operationId": "listLipSyncTasks",
                    "parameters": {"pageNum": 1},
                }
    return doc


def _engine_config(options: VerifyOptions, spec: Spec, seed: int) -> dict[str, Any]:
    # The schema cannot express the domain rules, so a schema-valid request may still be refused
    # for one of them; the rule table says with which codes, hence which HTTP statuses positive
    # data of each operation may get. `kling_positive_refusal` and the rule checks are stricter.
    refusals: dict[str, set[str]] = {}
    for rule in spec.rules.values():
        if rule.check == "domain":
            refusals.setdefault(rule.operation, set()).add(str(spec.http_status[rule.code]))

    operations = [
        {
            "include-operation-id": operation_id,
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": sorted(
                        set(POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES) | statuses
                    )
                }
            },
        }
        for operation_id, statuses in sorted(refusals.items())
    ]
    checks: dict[str, Any] = {"enabled": False}
    for name in (*SCHEMATHESIS_CHECKS, *_ENGINE_KLING_CHECKS):
        checks[name] = {"enabled": True}
    return {
        "seed": seed,
        "base-url": options.base_url.rstrip("/"),
        "workers": 1,
        "request-timeout": options.request_timeout_s,
        "generation": {"max-examples": options.max_examples, "mode": "all"},
        "checks": checks,
        "operations": operations,
        "warnings": False,
    }


def _run_schemathesis(
    options: VerifyOptions, spec: Spec, report: VerifyReport, seed: int, progress: Progress
) -> None:
    import schemathesis

    _register_engine_checks()
    config = SchemathesisConfig.from_dict(_engine_config(options, spec, seed))
    schema = schemathesis.openapi.from_dict(_with_list_link(dict(spec.document)), config=config)
    credentials = options.credentials

    class FreshToken:
        """A new token for every request (`refresh_interval=None`: no caching)."""

        def get(self, case: Any, ctx: Any) -> str:
            return credentials.authorization()

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers["Authorization"] = data

    schema.auth(refresh_interval=None)(FreshToken)
    _usable_positive_cases(schema, options, spec)
    _ACTIVE[id(schema)] = (spec, _operation_ids(spec))
    kinds = {name: CheckKind.KLING for name in _ENGINE_KLING_CHECKS}
    scenarios = 0
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.PhaseStarted):
                progress(f"schemathesis: {event.phase.name.value} ...")
            elif isinstance(event, events.PhaseFinished) and event.phase.is_enabled:
                progress(f"schemathesis: {event.phase.name.value} {event.status.value}")
            elif isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
                scenarios += 1
                _record_scenario(report, event.recorder, kinds)
            elif isinstance(event, events.NonFatalError):
                report.errors.append(f"schemathesis: {event.label}: {event.info.format()}"[:800])
            elif isinstance(event, events.FatalError):
                report.errors.append(f"schemathesis stopped: {event.exception}"[:800])
            elif isinstance(event, events.EngineFinished):
                stopped = event.stop_reason.skip_explanation
                if stopped or not scenarios:
                    report.errors.append(
                        f"schemathesis ran {scenarios} scenarios and stopped: "
                        f"{stopped or event.stop_reason.value}"
                    )
    finally:
        _ACTIVE.pop(id(schema), None)


def _record_scenario(
    report: VerifyReport, recorder: ScenarioRecorder, kinds: Mapping[str, CheckKind]
) -> None:
    """Count every check schemathesis ran in one scenario, keeping failures as examples."""

    for case_id, step in recorder.cases.items():
        if step.transition is None:
            continue
        interaction = recorder.interactions.get(case_id)
        answered = interaction.response if interaction is not None else None
        counts = report.links.setdefault(_link_name(step.transition.id), [0, 0])
        counts[0] += 1
        counts[1] += int(answered is not None and 200 <= answered.status_code < 300)
    for case_id, nodes in recorder.checks.items():
        node_case = recorder.cases.get(case_id)
        case = node_case.value if node_case is not None else None
        interaction = recorder.interactions.get(case_id)
        response = interaction.response if interaction is not None else None
        for node in nodes:
            kind = kinds.get(node.name, CheckKind.SCHEMATHESIS)
            failure = None
            if node.status == Status.FAILURE and node.failure_info is not None:
                problem = node.failure_info.failure
                failure = CheckFailure(
                    node.name,
                    case.operation.label if case is not None else recorder.label,
                    f"{problem.title}: {problem.message}"[:600],
                    _summarise(_case_request(case)) if case is not None else "",
                    response.status_code if response is not None else None,
                    _code_of(response),
                    _message_of(response),
                )
            _record(report, node.name, kind, failure)


def _link_name(transition_id: str) -> str:
    """`POST /a -> [200] Name -> GET /b` -> `Name (POST /a -> GET /b)`."""
    found = re.match(r"(.+?) -> \[\w+\] (\S+) -> (.+)", transition_id)
    if found is None:
        return transition_id
    source, name, target = found.groups()
    return f"{name} ({source} -> {target})"


def _case_request(case: Any) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if case.path_parameters:
        request["path"] = case.path_parameters
    if case.query:
        request["query"] = case.query
    body = case.body
    if isinstance(body, dict | list | str | int | float) or body is None:
        request["body"] = body
    return request


def _code_of(response: Any) -> int | None:
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _message_of(response: Any) -> str:
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return str(response.text[:300]) if response is not None else ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


# -- the run -----------------------------------------------------------------------------------


def verify(options: VerifyOptions, progress: Progress | None = None) -> VerifyReport:
    """Run every check against ``options.base_url`` and report.

    ``progress`` receives one line per step (``print`` to stderr is what the CLI does).

    >>> from contracts.verify import Credentials, VerifyOptions, verify
    >>> report = verify(VerifyOptions("http://127.0.0.1:8000",
    ...                               Credentials.mock_defaults(),
    ...                               max_examples=5))  # doctest: +SKIP
    >>> report.ok, report.failed_checks()  # doctest: +SKIP
    (True, [])
    """
    started = time.monotonic()
    say: Progress = progress or (lambda _line: None)
    spec = strategies.resolve_spec(options.spec)
    seed = options.seed if options.seed is not None else random.getrandbits(32)
    report = VerifyReport(options.base_url, seed)
    target = _Target(options, spec, report)
    admin: AdminClient | None = None
    kling: _KlingChecks | None = None
    try:
        say(f"verify {options.base_url} (seed {seed})")
        admin, no_clock = _control_api(options)
        kling = _KlingChecks(target, seed, say, admin, no_clock)
        session = kling.open_session()
        if session is None:
            say("no session: identify-face refused every video")
        else:
            say(f"session {session.session_id}: video {session.video_ms} ms, faces {session.faces}")
            kling.valid_requests(session)
        kling.rules(session)
        kling.lifecycle(session)
        for name in KLING_CHECKS:
            report.check(name, CheckKind.KLING)
        if options.schemathesis:
            _run_schemathesis(options, spec, report, seed, say)
        kling.time_rules(session)
    except AdminError as exc:
        report.errors.append(f"the control API refused a request: {exc}")
    except httpx.TransportError as exc:
        report.errors.append(f"cannot reach {options.base_url}: {exc}")
    except OSError as exc:  # requests' connection errors are OSErrors
        report.errors.append(f"cannot reach {options.base_url}: {exc}")
    finally:
        if kling is not None:
            kling.close()
        if admin is not None:
            admin.close()
        target.close()
        report.elapsed_s = time.monotonic() - started
    return report


# -- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m contracts verify``."""
    add = parser.add_argument
    add("--base-url", required=True, help="server to check, e.g. http://127.0.0.1:8000")
    add("--access-key", default=None, help="AccessKey (or KLING_ACCESS_KEY); a JWT per request")
    add("--secret-key", default=None, help="SecretKey (or KLING_SECRET_KEY)")
    add("--api-key", default=None, help="console API key (or KLING_API_KEY)")
    add("--spec", default=None, help="OpenAPI spec (default: the one shipped with the mock)")
    add("--max-examples", type=int, default=20, help="examples per operation and phase (20)")
    add("--rule-examples", type=int, default=3, help="requests per rule (3)")
    add("--seed", type=int, default=None, help="seed of every generator (default: random)")
    add("--video-url", action="append", default=[], help="video for identify-face; repeatable")
    add("--sound-file", default=None, help="audio URL or base64 for valid create-task bodies")
    add("--sound-duration-ms", type=int, default=8000, help="exact duration of --sound-file (8000)")
    add("--poll-timeout", type=float, default=20.0, help="seconds to wait for a task to end (20)")
    add("--request-timeout", type=float, default=30.0, help="seconds per request (30)")
    add("--no-schemathesis", action="store_true", help="run only our checks")
    control = parser.add_mutually_exclusive_group()
    control.add_argument(
        "--use-control-api",
        dest="control_api",
        action="store_true",
        default=None,
        help="move the mock's clock (/__admin/clock/advance) to break the time rules, last "
        "(default: on when --base-url is loopback)",
    )
    control.add_argument(
        "--no-control-api",
        dest="control_api",
        action="store_false",
        help="never use the control API: the time rules are not exercised",
    )
    add("--junit-xml", default=None, metavar="FILE", help="write a JUnit XML report")
    add("--report", choices=["text", "json"], default="text", help="output format")
    add("--report-file", default=None, metavar="FILE", help="write the report here, not stdout")
    add("--quiet", action="store_true", help="no progress lines on stderr")


def _credentials(args: argparse.Namespace, say: Progress) -> Credentials:
    if args.access_key or args.secret_key:
        return Credentials(access_key=args.access_key, secret_key=args.secret_key)
    if args.api_key:
        return Credentials(api_key=args.api_key)
    from_env = Credentials.from_env()
    if from_env is not None:
        return from_env
    say("no credentials given: using the mock's default AccessKey/SecretKey")
    return Credentials.mock_defaults()


def run_from_args(args: argparse.Namespace) -> int:
    """Run verify for parsed :func:`add_arguments` options; the exit status."""

    def say(line: str) -> None:
        if not args.quiet:
            print(f"[verify] {line}", file=sys.stderr, flush=True)

    try:
        options = VerifyOptions(
            base_url=args.base_url,
            credentials=_credentials(args, say),
            spec=args.spec,
            max_examples=args.max_examples,
            rule_examples=args.rule_examples,
            seed=args.seed,
            video_urls=tuple(args.video_url),
            sound_file=args.sound_file,
            sound_duration_ms=args.sound_duration_ms,
            poll_timeout_s=args.poll_timeout,
            request_timeout_s=args.request_timeout,
            schemathesis=not args.no_schemathesis,
            control_api=args.control_api,
        )
    except ValueError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    report = verify(options, say)
    text = report.to_json() if args.report == "json" else report.summary_table()
    if args.report_file:
        with open(args.report_file, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        if args.report == "json":
            print(report.summary_table(), file=sys.stderr)
    else:
        print(text)
        if args.report == "json" and not args.quiet:
            print(report.summary_table(), file=sys.stderr)
    if args.junit_xml:
        with open(args.junit_xml, "w", encoding="utf-8") as out:
            out.write(report.junit_xml())
    if report.errors and not report.cases:
        return 2
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m contracts verify ...`` without the dispatcher."""
    parser = argparse.ArgumentParser(prog="python -m contracts verify")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
