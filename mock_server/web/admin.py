"""The control API under /__admin/ (WireMock's convention): state, time, fixtures, faults."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import fixtures_file
from ..domain.clock import ClockMode
from ..domain.errors import INVALID_PARAMETER, NOT_FOUND, ApiError
from ..domain.faults import fault_from_dict
from ..domain.fixtures import FixtureSet
from ..domain.models import AccountId, JournalQuery
from ..domain.store import fixture_doc
from ..spec import ADMIN_SPEC_FILE, load_document
from . import responses, serialize
from .app import Mock, load_fixtures, read_json

AdminHandler = Callable[[Request, Mock], Awaitable[Any]]
PREFIX = "/__admin"


def admin_endpoint(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    """Admin answers use the same envelope as the API, so one client parser fits both."""

    async def run(request: Request) -> Response:
        mock: Mock = request.app.state.mock
        request_id = mock.backend.ids.request_id()
        try:
            data = await handler(request, mock)
        except ApiError as error:
            return responses.failure(error, request_id, mock.spec.http_status)
        except fixtures_file.FixtureError as exc:
            refusal = ApiError(INVALID_PARAMETER, str(exc))
            return responses.failure(refusal, request_id, mock.spec.http_status)
        return responses.success(request_id, data)

    run.__name__ = handler.__name__
    return run


async def _body(request: Request, mock: Mock) -> dict[str, Any]:
    if not await request.body():
        return {}
    return await read_json(request, mock.config.max_body_bytes)


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(INVALID_PARAMETER, f"{name}: {raw!r} is not an integer") from exc


# -- state -------------------------------------------------------------------------------------


async def reset(request: Request, mock: Mock) -> Any:
    """Forget every task, session, audio, journal entry, fault and registered fixture."""
    config = mock.config
    mock.backend.store.reset()
    mock.backend.fixtures.clear()
    mock.backend.faults.clear()
    load_fixtures(mock)
    mock.backend.ids.reseed(config.seed)
    mock.backend.clock.reset(config.clock_mode, config.clock_speed, config.clock_start_ms)
    mock.journal.reset()
    mock.callbacks.reset()
    return {"reset": True}


def _clock_state(mock: Mock) -> dict[str, Any]:
    clock = mock.backend.clock
    return {
        "now_ms": clock.now_ms(),
        "mode": clock.mode.value,
        "speed": clock.speed,
        "next_due_ms": mock.backend.store.next_due_ms(),
    }


async def get_clock(request: Request, mock: Mock) -> Any:
    return _clock_state(mock)


async def set_clock(request: Request, mock: Mock) -> Any:
    """Switch mode/speed and/or jump to `now_ms`; due transitions fire at once."""
    body = await _body(request, mock)
    clock = mock.backend.clock
    try:
        if "mode" in body or "speed" in body:
            clock.set_mode(ClockMode(body.get("mode", clock.mode.value)), body.get("speed"))
        if "now_ms" in body:
            clock.set_time(int(body["now_ms"]))
    except (ValueError, TypeError) as exc:
        raise ApiError(INVALID_PARAMETER, f"clock: {exc}") from exc
    events = mock.backend.advance()
    return {**_clock_state(mock), "events": [_event(e) for e in events]}


def _event(e: Any) -> dict[str, Any]:
    return {
        "task_id": e.task.task_id,
        "from": e.previous.value if e.previous else None,
        "to": e.task.status.value,
        "at_ms": e.task.updated_at_ms,
    }


async def advance_clock(request: Request, mock: Mock) -> Any:
    """Move time forward by `ms` and fire every transition due, each stamped at its due time."""
    body = await _body(request, mock)
    ms = body.get("ms")
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        raise ApiError(INVALID_PARAMETER, "ms: a non-negative integer number of milliseconds")
    mock.backend.clock.advance(ms)
    events = mock.backend.advance()
    if body.get("wait_callbacks", True):
        await mock.callbacks.idle(timeout_s=float(body.get("timeout_s", 10)))
    return {**_clock_state(mock), "events": [_event(e) for e in events]}


# -- fixtures ----------------------------------------------------------------------------------


def _fixture_listing(mock: Mock) -> dict[str, Any]:
    f = mock.backend.fixtures

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
    body = await _body(request, mock)
    faults = fixtures_file.faults(body)  # all checked before anything is installed
    body.pop("faults", None)
    new = fixtures_file.apply(body, FixtureSet())  # checked before anything is kept or installed
    # faults are not kept: their hit counts would restart; the store refuses over its budget
    mock.backend.store.add_fixture_doc(fixture_doc(body))
    into = mock.backend.fixtures
    into.videos_by_url.update(new.videos_by_url)
    into.videos_by_id.update(new.videos_by_id)
    into.audios_by_url.update(new.audios_by_url)
    into.audios_by_id.update(new.audios_by_id)
    into.outcomes.extend(new.outcomes)
    for fault in faults:
        mock.backend.faults.add(fault)
    return _fixture_listing(mock)


async def clear_fixtures(request: Request, mock: Mock) -> Any:
    mock.backend.fixtures.clear()
    mock.backend.store.clear_fixture_docs()
    return _fixture_listing(mock)


# -- faults ------------------------------------------------------------------------------------


async def list_faults(request: Request, mock: Mock) -> Any:
    return [f.to_dict() for f in mock.backend.faults.all()]


async def add_fault(request: Request, mock: Mock) -> Any:
    fault = mock.backend.faults.add(fault_from_dict(await _body(request, mock)))
    return fault.to_dict()


async def clear_faults(request: Request, mock: Mock) -> Any:
    mock.backend.faults.clear()
    return []


async def remove_fault(request: Request, mock: Mock) -> Any:
    fault_id = request.path_params["fault_id"]
    if not mock.backend.faults.remove(fault_id):
        raise ApiError(NOT_FOUND, f"no fault {fault_id}")
    return [f.to_dict() for f in mock.backend.faults.all()]


# -- journal, callbacks, tasks -----------------------------------------------------------------


async def journal(request: Request, mock: Mock) -> Any:
    """Requests in arrival order, filtered by method, path prefix, operation, account, code;
    the store applies the filters and stops at `limit`, so a page costs O(limit)."""
    q = request.query_params
    limit = _int_param(request, "limit", None)
    if limit is not None and limit < 0:
        raise ApiError(INVALID_PARAMETER, f"limit: {limit} is negative")
    query = JournalQuery(
        after_seq=_int_param(request, "after", 0) or 0,
        limit=limit,
        method=q.get("method", "").upper() or None,
        path_prefix=q.get("path") or None,
        operation=q.get("operation") or None,
        account=q.get("account") or None,
        code=_int_param(request, "code", None),
    )
    return [dataclasses.asdict(e) for e in mock.backend.store.journal(query)]


async def callbacks(request: Request, mock: Mock) -> Any:
    task_id = request.query_params.get("task_id") or None
    return [dataclasses.asdict(d) for d in mock.backend.store.deliveries(task_id)]


async def get_chaos(request: Request, mock: Mock) -> Any:
    return mock.callbacks.chaos_state()


async def set_chaos(request: Request, mock: Mock) -> Any:
    """Callback chaos globally (no `task`) or for one task_id / external_task_id."""
    body = await _body(request, mock)
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
    account = request.query_params.get("account") or None
    page_num = _int_param(request, "pageNum", 1) or 1
    page_size = _int_param(request, "pageSize", 100) or 100
    mock.backend.advance()
    found = mock.backend.store.list_tasks(
        AccountId(account) if account else None, (page_num - 1) * page_size, page_size
    )
    return [{"account": t.account, **serialize.task(t, mock.base_url)} for t in found]


async def admin_spec_yaml(request: Request) -> Response:
    _, text = load_document(ADMIN_SPEC_FILE)
    return Response(text, media_type="application/yaml")


async def admin_spec_json(request: Request) -> Response:
    doc, _ = load_document(ADMIN_SPEC_FILE)
    return Response(json.dumps(doc, indent=2), media_type="application/json")


def admin_routes() -> list[Route]:
    def r(path: str, handler: AdminHandler, method: str) -> Route:
        return Route(PREFIX + path, admin_endpoint(handler), methods=[method])

    return [
        r("/reset", reset, "POST"),
        r("/clock", get_clock, "GET"),
        r("/clock", set_clock, "POST"),
        r("/clock/advance", advance_clock, "POST"),
        r("/fixtures", list_fixtures, "GET"),
        r("/fixtures", add_fixtures, "POST"),
        r("/fixtures", clear_fixtures, "DELETE"),
        r("/faults", list_faults, "GET"),
        r("/faults", add_fault, "POST"),
        r("/faults", clear_faults, "DELETE"),
        r("/faults/{fault_id}", remove_fault, "DELETE"),
        r("/journal", journal, "GET"),
        r("/callbacks", callbacks, "GET"),
        r("/callbacks/chaos", get_chaos, "GET"),
        r("/callbacks/chaos", set_chaos, "POST"),
        r("/callbacks/chaos", clear_chaos, "DELETE"),
        r("/tasks", tasks, "GET"),
        Route(PREFIX + "/openapi.yaml", admin_spec_yaml, methods=["GET"]),
        Route(PREFIX + "/openapi.json", admin_spec_json, methods=["GET"]),
    ]
