"""The control API under /__admin/ (WireMock's convention): state, time, fixtures, faults.

Every body and query parameter is checked against `openapi/admin.yaml` before a handler runs;
handlers call the backend's control methods the way the API handlers call its operations.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import fixtures_file
from ..domain.clock import ClockMode
from ..domain.errors import INTERNAL, INVALID_PARAMETER, NOT_FOUND, ApiError
from ..domain.faults import fault_from_dict
from ..domain.fixtures import FixtureSet
from ..domain.models import AccountId, JournalQuery, TaskEvent
from ..domain.store import fixture_doc
from ..spec import ADMIN_SPEC_FILE, first_error, load_document, rebase_refs
from . import responses, serialize
from .compose import Mock
from .pipeline import log, mock_of, read_json

AdminHandler = Callable[[Request, Mock], Awaitable[Any]]
PREFIX = "/__admin"
_BASE_URI = "urn:kling-lipsync-mock:admin"


class AdminSchema:
    """Validators of the control API's request bodies and query parameters, from admin.yaml."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        resource = Resource.from_contents(
            {**document, "$schema": "https://json-schema.org/draft/2020-12/schema"}
        )
        self._registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        self._bodies: dict[str, Draft202012Validator] = {}
        self._params: dict[str, dict[str, tuple[Draft202012Validator, bool]]] = {}
        for item in document["paths"].values():
            for op in item.values():
                if not isinstance(op, dict) or "operationId" not in op:
                    continue
                op_id = op["operationId"]
                schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
                if "schema" in schema:
                    self._bodies[op_id] = self._validator(schema["schema"])
                self._params[op_id] = {
                    p["name"]: (self._validator(p["schema"]), p["schema"].get("type") == "integer")
                    for p in op.get("parameters", ())
                    if p.get("in") == "query"
                }

    def _validator(self, schema: Any) -> Draft202012Validator:
        return Draft202012Validator(rebase_refs(schema, _BASE_URI), registry=self._registry)

    def check_body(self, operation_id: str, body: Any) -> None:
        validator = self._bodies.get(operation_id)
        if validator is not None:
            _raise_first(validator, body, "")

    def query(self, operation_id: str, request: Request) -> dict[str, Any]:
        """The operation's query parameters, typed by their schemas and checked."""
        out: dict[str, Any] = {}
        for name, (validator, integer) in self._params.get(operation_id, {}).items():
            raw = request.query_params.get(name)
            if raw is None or raw == "":
                continue
            value: Any = _integer(raw) if integer else raw
            _raise_first(validator, value, name)
            out[name] = value
        return out


def _integer(raw: str) -> Any:
    """An integer parameter as int when it is one (ASCII digits, at most 18 of them)."""
    digits = raw[1:] if raw.startswith("-") else raw
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:
        return int(raw)
    return raw


def _raise_first(validator: Draft202012Validator, value: Any, prefix: str) -> None:
    error = first_error(validator, value)
    if error is None:
        return
    path = prefix
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    raise ApiError(INVALID_PARAMETER, f"{path or 'body'}: {message}")


@functools.cache
def admin_schema() -> AdminSchema:
    doc, _ = load_document(ADMIN_SPEC_FILE)
    return AdminSchema(doc)


def admin_endpoint(
    operation_id: str, handler: AdminHandler, has_body: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Admin answers use the same envelope as the API, so one client parser fits both."""

    async def run(request: Request) -> Response:
        mock = mock_of(request)
        request_id = mock.backend.request_id()
        try:
            if has_body:
                body = await _body(request, mock)
                admin_schema().check_body(operation_id, body)
                request.state.body = body
            request.state.query = admin_schema().query(operation_id, request)
            data = await handler(request, mock)
        except ApiError as error:
            return responses.failure(error, request_id, mock.spec.http_status)
        except fixtures_file.FixtureError as exc:
            refusal = ApiError(INVALID_PARAMETER, str(exc))
            return responses.failure(refusal, request_id, mock.spec.http_status)
        except Exception:  # a bug in the mock still answers with the envelope
            log.exception("internal error in %s", operation_id)
            refusal = ApiError(INTERNAL, "internal error in the mock; see its log")
            return responses.failure(refusal, request_id, mock.spec.http_status)
        return responses.success(request_id, data)

    run.__name__ = operation_id
    return run


async def _body(request: Request, mock: Mock) -> dict[str, Any]:
    """The JSON body, read under the control API's byte limit; an empty body means {}."""
    limit, timeout_s = mock.config.max_admin_body_bytes, mock.config.body_timeout_s
    return await read_json(request, limit, allow_empty=True, timeout_s=timeout_s)


def _state_body(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = request.state.body
    return body


def _q(request: Request) -> dict[str, Any]:
    query: dict[str, Any] = request.state.query
    return query


# -- state -------------------------------------------------------------------------------------


async def reset(request: Request, mock: Mock) -> Any:
    """Forget every task, session, audio, journal entry, fault, fixture and cache."""
    mock.backend.reset()
    return {"reset": True}


def _clock_state(mock: Mock) -> dict[str, Any]:
    state = mock.backend.clock_state()
    return {
        "now_ms": state.now_ms,
        "mode": state.mode.value,
        "speed": state.speed,
        "next_due_ms": state.next_due_ms,
    }


async def get_clock(request: Request, mock: Mock) -> Any:
    return _clock_state(mock)


async def set_clock(request: Request, mock: Mock) -> Any:
    """Switch mode/speed and/or jump to `now_ms`; due transitions fire at once."""
    body = _state_body(request)
    mode = ClockMode(body["mode"]) if "mode" in body else None
    try:
        events = mock.backend.set_clock(mode, body.get("speed"), body.get("now_ms"))
    except ValueError as exc:
        raise ApiError(INVALID_PARAMETER, f"clock: {exc}") from exc
    return {**_clock_state(mock), "events": [_event(e) for e in events]}


def _event(e: TaskEvent) -> dict[str, Any]:
    return {
        "task_id": e.task.task_id,
        "from": e.previous.value if e.previous else None,
        "to": e.task.status.value,
        "at_ms": e.task.updated_at_ms,
    }


async def advance_clock(request: Request, mock: Mock) -> Any:
    """Move time forward by `ms` and fire every transition due, each stamped at its due time."""
    body = _state_body(request)
    events = mock.backend.advance_clock(body["ms"])
    if body.get("wait_callbacks", True):
        await mock.callbacks.idle(timeout_s=float(body.get("timeout_s", 10)))
    return {**_clock_state(mock), "events": [_event(e) for e in events]}


# -- fixtures ----------------------------------------------------------------------------------


def _fixture_listing(mock: Mock) -> dict[str, Any]:
    f = mock.backend.fixtures()
    return {
        "summary": f.summary(),
        "videos": [{"url": url, **_video_dict(meta)} for url, meta in f.videos_by_url.items()]
        + [{"id": vid, **_video_dict(meta)} for vid, meta in f.videos_by_id.items()],
        "audios": [
            {"url": url, "duration_ms": a.duration_ms, "format": a.format}
            for url, a in f.audios_by_url.items()
        ]
        + [
            {"id": aid, "duration_ms": a.duration_ms, "format": a.format}
            for aid, a in f.audios_by_id.items()
        ],
        "outcomes": [
            {k: v for k, v in dataclasses.asdict(o).items() if v is not None} for o in f.outcomes
        ],
    }


def _video_dict(meta: Any) -> dict[str, Any]:
    return {
        "duration_ms": meta.duration_ms,
        "width": meta.width,
        "height": meta.height,
        "format": meta.format,
        "session_id": meta.session_id,
        "faces": [
            {"face_id": f.face_id, "start_time": f.start_ms, "end_time": f.end_ms}
            for f in meta.faces
        ],
    }


async def list_fixtures(request: Request, mock: Mock) -> Any:
    return _fixture_listing(mock)


async def add_fixtures(request: Request, mock: Mock) -> Any:
    """Register videos/audios/outcomes/faults with the same shape as the fixtures file."""
    body = dict(_state_body(request))
    faults = fixtures_file.faults(body)  # all checked before anything is installed
    body.pop("faults", None)
    fixtures_file.apply(body, FixtureSet())  # a bad document is refused whole, before any change

    def apply(into: FixtureSet) -> None:
        fixtures_file.apply(body, into)

    # faults are not kept: their hit counts would restart; the store refuses over its budget
    mock.backend.add_fixtures(apply, fixture_doc(body), faults)
    return _fixture_listing(mock)


async def clear_fixtures(request: Request, mock: Mock) -> Any:
    mock.backend.clear_fixtures()
    return _fixture_listing(mock)


# -- faults ------------------------------------------------------------------------------------


async def list_faults(request: Request, mock: Mock) -> Any:
    return [f.to_dict() for f in mock.backend.faults()]


async def add_fault(request: Request, mock: Mock) -> Any:
    fault = mock.backend.add_fault(fault_from_dict(_state_body(request)))
    return fault.to_dict()


async def clear_faults(request: Request, mock: Mock) -> Any:
    mock.backend.clear_faults()
    return []


async def remove_fault(request: Request, mock: Mock) -> Any:
    fault_id = request.path_params["fault_id"]
    if not mock.backend.remove_fault(fault_id):
        raise ApiError(NOT_FOUND, f"no fault {fault_id}")
    return [f.to_dict() for f in mock.backend.faults()]


# -- journal, callbacks, tasks -----------------------------------------------------------------


async def journal(request: Request, mock: Mock) -> Any:
    """Requests in arrival order, filtered by method, path prefix, operation, account, code;
    the store applies the filters and stops at `limit`, so a page costs O(limit)."""
    q = _q(request)
    query = JournalQuery(
        after_seq=q.get("after", 0),
        limit=q.get("limit"),
        method=str(q.get("method", "")).upper() or None,
        path_prefix=q.get("path") or None,
        operation=q.get("operation") or None,
        account=q.get("account") or None,
        code=q.get("code"),
    )
    return [dataclasses.asdict(e) for e in mock.backend.journal(query)]


async def callbacks(request: Request, mock: Mock) -> Any:
    task_id = _q(request).get("task_id") or None
    return [dataclasses.asdict(d) for d in mock.backend.deliveries(task_id)]


async def get_chaos(request: Request, mock: Mock) -> Any:
    return mock.callbacks.chaos_state()


async def set_chaos(request: Request, mock: Mock) -> Any:
    """Callback chaos globally (no `task`) or for one task_id / external_task_id."""
    body = dict(_state_body(request))
    scope = body.pop("task", None)
    try:
        mock.callbacks.set_chaos(scope, **body)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, f"chaos: {exc}") from exc
    return mock.callbacks.chaos_state()


async def clear_chaos(request: Request, mock: Mock) -> Any:
    mock.callbacks.clear_chaos()
    return mock.callbacks.chaos_state()


async def tasks(request: Request, mock: Mock) -> Any:
    """Tasks of every account (or of `account`), newest first, with their account."""
    q = _q(request)
    account = q.get("account") or None
    found = mock.backend.list_lip_sync_tasks(
        AccountId(account) if account else None, q.get("pageNum", 1), q.get("pageSize", 100)
    )
    return [{"account": t.account, **serialize.task(t, mock.base_url)} for t in found]


async def admin_spec_yaml(request: Request) -> Response:
    _, text = load_document(ADMIN_SPEC_FILE)
    return Response(text, media_type="application/yaml")


async def admin_spec_json(request: Request) -> Response:
    doc, _ = load_document(ADMIN_SPEC_FILE)
    return Response(json.dumps(doc, indent=2), media_type="application/json")


def admin_routes() -> list[Route]:
    def r(path: str, op: str, handler: AdminHandler, method: str) -> Route:
        body = method == "POST" and op != "reset"
        return Route(PREFIX + path, admin_endpoint(op, handler, body), methods=[method])

    return [
        r("/reset", "reset", reset, "POST"),
        r("/clock", "getClock", get_clock, "GET"),
        r("/clock", "setClock", set_clock, "POST"),
        r("/clock/advance", "advanceClock", advance_clock, "POST"),
        r("/fixtures", "listFixtures", list_fixtures, "GET"),
        r("/fixtures", "addFixtures", add_fixtures, "POST"),
        r("/fixtures", "clearFixtures", clear_fixtures, "DELETE"),
        r("/faults", "listFaults", list_faults, "GET"),
        r("/faults", "addFault", add_fault, "POST"),
        r("/faults", "clearFaults", clear_faults, "DELETE"),
        r("/faults/{fault_id}", "removeFault", remove_fault, "DELETE"),
        r("/journal", "getJournal", journal, "GET"),
        r("/callbacks", "getCallbacks", callbacks, "GET"),
        r("/callbacks/chaos", "getCallbackChaos", get_chaos, "GET"),
        r("/callbacks/chaos", "setCallbackChaos", set_chaos, "POST"),
        r("/callbacks/chaos", "clearCallbackChaos", clear_chaos, "DELETE"),
        r("/tasks", "listAllTasks", tasks, "GET"),
        Route(PREFIX + "/openapi.yaml", admin_spec_yaml, methods=["GET"]),
        Route(PREFIX + "/openapi.json", admin_spec_json, methods=["GET"]),
    ]
