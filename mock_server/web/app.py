"""The app factory: routes, the lifespan (ticker, callbacks, store) and the error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..config import Config
from ..domain.errors import INTERNAL, INVALID_METHOD, INVALID_REQUEST, ApiError
from . import responses
from .admin import admin_routes
from .api import api_routes
from .compose import Mock, build_mock, open_store
from .front import ApiFront
from .guard import AdminTokenGuard
from .pipeline import answered
from .ui import ui_routes

if TYPE_CHECKING:
    from ..proxy.replay import Replayed

__all__ = ["Mock", "build_mock", "create_app", "open_store"]

log = logging.getLogger("mock_server")


async def http_error(request: Request, exc: Exception) -> Response:
    mock: Mock = request.app.state.mock
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        error = ApiError(INVALID_METHOD, f"{request.method} is not a method of {request.url.path}")
    elif status == 404:
        error = ApiError(INVALID_METHOD, f"no such route: {request.method} {request.url.path}")
    else:
        error = ApiError(INVALID_REQUEST, f"bad request: {getattr(exc, 'detail', exc)}")
    request_id = mock.backend.request_id()
    response = responses.failure(error, request_id, mock.spec.http_status)
    answered(mock, request, None, None, None, response, error, request_id, time.perf_counter())
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    mock: Mock = request.app.state.mock
    log.exception("unhandled error", exc_info=exc)
    error = ApiError(INTERNAL, "internal error in the mock; see its log")
    return responses.failure(error, mock.backend.request_id(), mock.spec.http_status)


def _journal_replayed(mock: Mock, request: Request, done: Replayed, started: float) -> None:
    """A replayed answer in the journal and the log, as an API answer would be: coverage and
    check-client read a replaying mock's journal like any other."""
    request_id = done.request_id or mock.backend.request_id()
    answered(
        mock,
        request,
        done.operation,
        done.principal,
        done.body,
        done.response,
        done.error,
        request_id,
        started,
        task_status=done.task_status,
    )


FREEZE_CHECK_S = 5.0
FREEZE_GROWTH = 10_000


async def _ticker(mock: Mock) -> None:
    """Fires due transitions in real time; in manual mode only the control API moves time.

    It also moves a grown in-memory store out of the cyclic GC's sight: a full collection
    scans every tracked object, which at 100k stored tasks costs ~80 ms and lands on some
    unlucky request's latency. Stored values hold no reference cycles, so refcounting still
    frees them. Freezing happens only after the store grew by FREEZE_GROWTH tasks, so a mock
    with a test-sized store never freezes anything.
    """
    backend = mock.backend
    loop = asyncio.get_running_loop()
    next_check = loop.time() + FREEZE_CHECK_S
    frozen_at = 0
    while True:
        try:
            backend.advance()
        except Exception:
            log.exception("advancing tasks failed")
        if loop.time() >= next_check and mock.config.store == "memory":
            stored = backend.stored_tasks()
            if stored - frozen_at >= FREEZE_GROWTH:
                gc.freeze()
                frozen_at = stored
            next_check = loop.time() + FREEZE_CHECK_S
        wait = backend.seconds_until_next_due()
        await asyncio.sleep(min(max(0.25 if wait is None else wait, 0.005), 0.25))


def create_app(config: Config | None = None, mock: Mock | None = None) -> ApiFront | Starlette:
    """The mock's ASGI app (the front over Starlette); with `proxy_to`, the proxy's."""
    config = config or Config()
    if config.proxy_to:
        from ..proxy.app import create_proxy_app

        return create_proxy_app(config)
    mock = mock or build_mock(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await mock.callbacks.start()
        ticker = asyncio.create_task(_ticker(mock))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await mock.callbacks.aclose()
            await mock.http.aclose()
            mock.files.close()
            mock.backend.close()

    api = api_routes(mock)
    app = Starlette(
        routes=[*api, *admin_routes(), *ui_routes()],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    # A trailing slash would get Starlette's bare 307 redirect; every answer is the envelope.
    app.router.redirect_slashes = False
    app.state.mock = mock
    if config.replay_file:  # recorded answers in front of the API routes
        from ..proxy.replay import Replay, replay_routes

        replay = Replay.from_file(
            config.replay_file,
            mock.spec,
            mock.backend.now_ms,
            mock.auth.authenticate,
            body_limit=config.max_body_bytes,
            body_timeout_s=config.body_timeout_s,
        )
        app.router.routes[0:0] = replay_routes(replay, functools.partial(_journal_replayed, mock))
        api = []  # the recording answers every /v1/ request: Starlette routes them to it
    if config.admin_token:
        app.add_middleware(AdminTokenGuard, token=config.admin_token)
    return ApiFront(app, api, latency=mock.api_latency)
