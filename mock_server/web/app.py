"""The app factory: routes, the request pipeline and the error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import fixtures_file, tls
from ..auth import Authenticator, Principal
from ..config import Config
from ..domain.backend import LipSyncBackend, Phases
from ..domain.clock import Clock
from ..domain.errors import INTERNAL, INVALID_METHOD, INVALID_REQUEST, NOT_FOUND, ApiError
from ..domain.fixtures import FixtureSet
from ..domain.ids import IdSource
from ..domain.resolver import FetchError, FetchTooLarge, MediaResolver
from ..domain.sqlite_store import SqliteStore
from ..domain.store import MemoryStore, Store
from ..logs import log_request
from ..spec import Spec, load_spec
from . import responses, serialize
from .callbacks import CallbackDispatcher
from .files import FileStore, face_png
from .guard import AdminTokenGuard
from .journal import Journal

log = logging.getLogger("mock_server")

Handler = Callable[["Call"], Awaitable[tuple[Any, dict[str, str] | None]]]


@dataclass(slots=True)
class Call:
    """One API request as the handlers see it."""

    request: Request
    principal: Principal
    body: dict[str, Any]
    request_id: str


@dataclass(slots=True)
class Mock:
    """Everything one running mock holds; lives on app.state.mock."""

    config: Config
    spec: Spec
    backend: LipSyncBackend
    auth: Authenticator
    files: FileStore
    http: httpx.AsyncClient
    journal: Journal
    callbacks: CallbackDispatcher

    base_url: str = ""  # config.base_url, computed once: every task serialised needs it

    def __post_init__(self) -> None:
        self.base_url = self.config.base_url


async def _fetch(http: httpx.AsyncClient, url: str, limit: int) -> bytes:
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchTooLarge(f"more than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
        raise FetchError(str(exc) or type(exc).__name__) from exc


def open_store(config: Config) -> Store:
    """The store `config.store` names: `memory` or `sqlite:PATH`."""
    kind, _, path = config.store.partition(":")
    if config.store == "memory":
        return MemoryStore(journal_limit=config.journal_limit)
    if kind == "sqlite" and path:
        return SqliteStore(path, journal_limit=config.journal_limit)
    raise ValueError(
        f"store {config.store!r}: expected 'memory' or 'sqlite:PATH' (e.g. sqlite:./mock.db)"
    )


def build_mock(config: Config, store: Store | None = None, spec: Spec | None = None) -> Mock:
    spec = spec or load_spec()
    store = store or open_store(config)
    fixtures = FixtureSet()
    # Only loopback URLs are fetched; a redirect could lead anywhere, so none is followed.
    http = httpx.AsyncClient(
        timeout=10.0, follow_redirects=False, trust_env=False, verify=tls.client_context()
    )
    files_holder: list[FileStore] = []
    resolver = MediaResolver(
        fixtures,
        fetch=lambda url, limit: _fetch(http, url, limit),
        own_files=lambda url: files_holder[0].by_url(url),
        allowed_dirs=config.allow_dirs,
    )
    backend = LipSyncBackend(
        store=store,
        clock=Clock(config.clock_mode, config.clock_speed, config.clock_start_ms),
        ids=IdSource(config.seed),
        resolver=resolver,
        fixtures=fixtures,
        phases=Phases(int(config.submit_delay_s * 1000), int(config.processing_delay_s * 1000)),
        voices=spec.voices,
    )
    files = FileStore(backend, config.base_url)
    files_holder.append(files)
    journal = Journal(backend.store, backend.clock)
    callbacks = CallbackDispatcher(
        backend.store,
        config.base_url,
        secret=config.webhook_secret,
        attempts=config.callback_attempts,
        timeout_s=config.callback_timeout_s,
        backoff_base_s=config.callback_backoff_s,
    )
    backend.listeners.append(callbacks.on_event)
    auth = Authenticator(config.accounts)
    mock = Mock(config, spec, backend, auth, files, http, journal, callbacks)
    load_fixtures(mock)
    for doc in store.fixture_docs():  # registered through the control API before a restart
        fixtures_file.apply(doc, fixtures)
    return mock


def load_fixtures(mock: Mock) -> None:
    """The --fixtures file: media and outcomes into the FixtureSet, faults into the registry."""
    path = mock.config.fixtures_file
    if path:
        doc = fixtures_file.read(path)
        fixtures_file.apply(doc, mock.backend.fixtures)
        for fault in fixtures_file.faults(doc):
            mock.backend.faults.add(fault)


# -- request pipeline ------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; size is checked before and while it is read, never after."""
    ctype = request.headers.get("content-type")
    if ctype is not None and ctype.split(";")[0].strip().lower() != "application/json":
        raise ApiError.rule_broken(
            "body-json", f"Content-Type must be application/json, got {ctype!r}", INVALID_REQUEST
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(INVALID_REQUEST, f"Content-Length is not a number: {declared!r}")
        if int(declared) > limit:
            raise _too_big(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:120] if raw else "the body is empty"
        raise ApiError.rule_broken(
            "body-json", f"the body is not valid JSON: {detail}", INVALID_REQUEST
        ) from exc
    if not isinstance(body, dict):
        raise ApiError.rule_broken(
            "body-json",
            f"the body must be a JSON object, got {type(body).__name__}",
            INVALID_REQUEST,
        )
    # escapes, raw bytes or UTF-16/32; the substring tests are memchr-fast, the regex is not
    suspicious = (b"\\" in raw or b"\xed" in raw) and _SURROGATE_HINT.search(raw)
    if suspicious or b"\x00" in raw[:4]:
        lone = _lone_surrogate(body)
        if lone is not None:
            raise ApiError.rule_broken(
                "body-json",
                f"the body is not valid JSON: the string {lone[:40]!r} holds a lone UTF-16 "
                "surrogate, which is not Unicode; pair \\uD800-\\uDBFF with \\uDC00-\\uDFFF",
                INVALID_REQUEST,
            )
    return body


# json.loads turns "\ud800" (and UTF-8-encoded surrogates) into str that cannot be encoded
# again: answers, hashes, callbacks and the journal would all fail on it later.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) holding an unpaired surrogate, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return item
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _too_big(limit: int) -> ApiError:
    return ApiError.rule_broken(
        "body-size", f"the body is larger than {limit} bytes", INVALID_REQUEST
    )


def endpoint(operation_id: str, handler: Handler, body_schema: str | None = None) -> Any:
    async def run(request: Request) -> Response:
        mock: Mock = request.app.state.mock
        started = time.perf_counter()
        request_id = mock.backend.ids.request_id()
        principal: Principal | None = None
        body: Any = None
        refusal: ApiError | None = None
        try:
            principal = mock.auth.authenticate(request.headers.get("authorization"))
            latency_ms = mock.backend.faults.before_request(
                operation_id, request.url.path, principal.account
            )
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            if body_schema is not None:
                body = await read_json(request, mock.config.max_body_bytes)
                mock.spec.validate_body(operation_id, body_schema, body)
            data, headers = await handler(Call(request, principal, body or {}, request_id))
            response = responses.success(request_id, data, headers)
        except ApiError as error:
            # A copy without the traceback: its frames hold the request body (up to 10 MB).
            refusal = ApiError(error.code, error.message, error.rule)
            response = responses.failure(error, request_id, mock.spec.http_status)
        except Exception:  # a bug in the mock still answers with the envelope
            log.exception("internal error in %s", operation_id)
            refusal = ApiError(INTERNAL, "internal error in the mock; see its log")
            response = responses.failure(refusal, request_id, mock.spec.http_status)
        mock.journal.record(
            request,
            operation=operation_id,
            principal=principal,
            body=body,
            http_status=response.status_code,
            error=refusal,
            request_id=request_id,
            started=started,
        )
        log_request(request.method, request.url.path, operation=operation_id, principal=principal,
                    http_status=response.status_code, error=refusal, request_id=request_id,
                    started=started)  # fmt: skip
        return response

    run.__name__ = operation_id
    return run


def _mock(call: Call) -> Mock:
    mock: Mock = call.request.app.state.mock
    return mock


async def identify_face(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = _mock(call)
    inp = serialize.identify_face_input(call.body)
    session = await mock.backend.identify_face(call.principal.account, inp)
    data = serialize.session(session, mock.base_url)
    return data, {"x-mock-media-source": session.video.source.value}


async def create_lip_sync_task(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = _mock(call)
    task = await mock.backend.create_lip_sync_task(
        call.principal.account, serialize.create_task_input(call.body)
    )
    return serialize.created_task(task), None


async def get_lip_sync_task(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = _mock(call)
    task = mock.backend.get_lip_sync_task(call.principal.account, call.request.path_params["id"])
    return serialize.task(task, mock.base_url), None


def _page_param(mock: Mock, request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    # int() alone would also take " 7", "+7", "1_0" and non-ASCII digits such as "\u0663".
    value: Any = raw
    if re.fullmatch(r"-?[0-9]+", raw, re.ASCII):
        with contextlib.suppress(ValueError):  # more digits than int() converts
            value = int(raw)
    mock.spec.validate_param("listLipSyncTasks", name, value)
    assert isinstance(value, int)
    return value


async def list_lip_sync_tasks(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = _mock(call)
    page_num = _page_param(mock, call.request, "pageNum", 1)
    page_size = _page_param(mock, call.request, "pageSize", 30)
    tasks = mock.backend.list_lip_sync_tasks(call.principal.account, page_num, page_size)
    return [serialize.task(t, mock.base_url) for t in tasks], None


async def create_tts(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = _mock(call)
    audio = mock.backend.create_tts(call.principal.account, serialize.tts_input(call.body))
    return serialize.tts(audio, mock.base_url), None


# -- files, spec and errors ------------------------------------------------------------------


async def serve_file(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    kind, name = request.path_params["kind"], request.path_params["name"]
    stem, _, ext = name.partition(".")
    data: bytes | None = None
    media_type = "application/octet-stream"
    if kind == "audio" and ext == "mp3":
        data, media_type = mock.files.audio(stem), "audio/mpeg"
    elif kind == "videos" and ext == "mp4":
        data = await asyncio.to_thread(mock.files.video, stem)
        media_type = "video/mp4"
    elif kind == "faces" and ext == "png":
        data, media_type = face_png(stem), "image/png"
    if data is None:
        error = ApiError(NOT_FOUND, f"file not found or expired: {request.url.path}")
        return responses.failure(error, mock.backend.ids.request_id(), mock.spec.http_status)
    return Response(data, media_type=media_type)


async def openapi_yaml(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    return Response(mock.spec.yaml_text, media_type="application/yaml")


async def openapi_json(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    return Response(mock.spec.json_text, media_type="application/json")


async def http_error(request: Request, exc: Exception) -> Response:
    mock: Mock = request.app.state.mock
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        error = ApiError(INVALID_METHOD, f"{request.method} is not a method of {request.url.path}")
    elif status == 404:
        error = ApiError(INVALID_METHOD, f"no such route: {request.method} {request.url.path}")
    else:
        error = ApiError(INVALID_REQUEST, f"bad request: {getattr(exc, 'detail', exc)}")
    request_id = mock.backend.ids.request_id()
    response = responses.failure(error, request_id, mock.spec.http_status)
    mock.journal.record(
        request,
        operation=None,
        principal=None,
        body=None,
        http_status=response.status_code,
        error=error,
        request_id=request_id,
        started=time.perf_counter(),
    )
    log_request(request.method, request.url.path, operation=None, principal=None,
                http_status=response.status_code, error=error, request_id=request_id,
                started=time.perf_counter())  # fmt: skip
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    mock: Mock = request.app.state.mock
    log.exception("unhandled error", exc_info=exc)
    error = ApiError(INTERNAL, "internal error in the mock; see its log")
    return responses.failure(error, mock.backend.ids.request_id(), mock.spec.http_status)


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
        if loop.time() >= next_check and isinstance(backend.store, MemoryStore):
            stored = backend.store.count_tasks(None)
            if stored - frozen_at >= FREEZE_GROWTH:
                gc.freeze()
                frozen_at = stored
            next_check = loop.time() + FREEZE_CHECK_S
        due = backend.store.next_due_ms()
        wait = 0.25 if due is None else backend.clock.wall_seconds_until(due)
        await asyncio.sleep(min(max(wait, 0.005), 0.25))


def api_routes() -> list[Route]:
    return [
        Route(
            "/v1/videos/identify-face",
            endpoint("identifyFace", identify_face, "IdentifyFaceRequest"),
            methods=["POST"],
        ),
        Route(
            "/v1/videos/advanced-lip-sync",
            endpoint("createLipSyncTask", create_lip_sync_task, "CreateTaskRequest"),
            methods=["POST"],
        ),
        Route(
            "/v1/videos/advanced-lip-sync",
            endpoint("listLipSyncTasks", list_lip_sync_tasks),
            methods=["GET"],
        ),
        Route(
            "/v1/videos/advanced-lip-sync/{id}",
            endpoint("getLipSyncTask", get_lip_sync_task),
            methods=["GET"],
        ),
        Route("/v1/audio/tts", endpoint("createTts", create_tts, "TtsRequest"), methods=["POST"]),
        Route("/files/{kind}/{name}", serve_file, methods=["GET"]),
        Route("/openapi.yaml", openapi_yaml, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]


def create_app(config: Config | None = None, mock: Mock | None = None) -> Starlette:
    config = config or Config()
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

    from .admin import admin_routes  # admin builds on this module's pipeline

    app = Starlette(
        routes=api_routes() + admin_routes(),
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    # A trailing slash would get Starlette's bare 307 redirect; every answer is the envelope.
    app.router.redirect_slashes = False
    app.state.mock = mock
    if config.admin_token:
        app.add_middleware(AdminTokenGuard, token=config.admin_token)
    return app
