"""schemathesis' phases over every operation, with our checks in them, counted into the report.

Phases: examples, coverage, fuzzing (positive and negative data) and the stateful phase that
follows the spec's OpenAPI ``links`` (identify-face -> create -> query one -> query list; the
last link is added in memory when the spec has none into the list). Everything a run needs is
in its configuration and its schema object: nothing is kept between runs.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine import core as _engine_core  # noqa: F401 - see contracts.verify
from schemathesis.generation.meta import TestPhase

from mock_server.spec import Spec

from .. import strategies
from ..report import CheckFailure, CheckKind
from .engine_checks import ENGINE_KLING_CHECKS
from .options import VerifyOptions
from .report import VerifyReport
from .target import summarise

if TYPE_CHECKING:
    from schemathesis.engine.recorder import ScenarioRecorder

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


def run_schemathesis(
    options: VerifyOptions, spec: Spec, report: VerifyReport, seed: int, progress: Progress
) -> None:
    """Run every phase against ``options.base_url``; each check it ran becomes cases."""
    config = SchemathesisConfig.from_dict(engine_config(options, spec, seed))
    schema = schemathesis.openapi.from_dict(with_list_link(dict(spec.document)), config=config)
    credentials = options.credentials

    class FreshToken:
        """A new token for every request (`refresh_interval=None`: no caching)."""

        def get(self, case: Any, ctx: Any) -> str:
            return credentials.authorization()

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers["Authorization"] = data

    schema.auth(refresh_interval=None)(FreshToken)
    schema.hook("map_case")(usable_positive_cases(options, spec))
    kinds = {name: CheckKind.KLING for name in ENGINE_KLING_CHECKS}
    scenarios = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted):
            progress(f"schemathesis: {event.phase.name.value} ...")
        elif isinstance(event, events.PhaseFinished) and event.phase.is_enabled:
            progress(f"schemathesis: {event.phase.name.value} {event.status.value}")
        elif isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            scenarios += 1
            record_scenario(report, event.recorder, kinds)
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


def engine_config(options: VerifyOptions, spec: Spec, seed: int) -> dict[str, Any]:
    """The schemathesis configuration of one run (our checks get the spec path from it)."""
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
    for name in SCHEMATHESIS_CHECKS:
        checks[name] = {"enabled": True}
    for name in ENGINE_KLING_CHECKS:
        checks[name] = {"enabled": True, "spec": options.spec or ""}
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


def usable_positive_cases(options: VerifyOptions, spec: Spec) -> Callable[[Any, Any], Any]:
    """A ``map_case`` hook making schema-valid identify-face and stateful create-task cases
    usable by the server.

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

    return map_case


def with_list_link(document: dict[str, Any]) -> dict[str, Any]:
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


def record_scenario(
    report: VerifyReport, recorder: ScenarioRecorder, kinds: Mapping[str, CheckKind]
) -> None:
    """Count every check schemathesis ran in one scenario, keeping failures as examples."""
    for case_id, step in recorder.cases.items():
        if step.transition is None:
            continue
        interaction = recorder.interactions.get(case_id)
        answered = interaction.response if interaction is not None else None
        counts = report.links.setdefault(link_name(step.transition.id), [0, 0])
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
                    summarise(_case_request(case)) if case is not None else "",
                    response.status_code if response is not None else None,
                    _code_of(response),
                    _message_of(response),
                )
            report.record(node.name, kind, failure)


def link_name(transition_id: str) -> str:
    """`POST /a -> [200] Name -> GET /b` -> `Name (POST /a -> GET /b)`.

    >>> link_name("POST /a -> [200] Name -> GET /b")
    'Name (POST /a -> GET /b)'
    """
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
