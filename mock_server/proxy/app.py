"""Proxy mode: every request goes to the upstream, every answer is checked and recorded.

Callback URLs in created tasks are swapped for a route of the proxy itself, so that the
upstream's callbacks are recorded too before they are forwarded to the client's own URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import tls
from ..auth import make_token
from ..config import Config
from ..domain.errors import INTERNAL, INVALID_REQUEST, NOT_FOUND, UNAVAILABLE, ApiError
from ..spec import Spec, load_spec
from ..web import responses
from . import conformance
from .recording import Recorder, operation_of, parse_json, redact_body, redact_headers

log = logging.getLogger("mock_server")

TIMEOUT_CODE = 5002
MAX_UPSTREAM_BYTES = 32 * 1024 * 1024
CALLBACK_PREFIX = "/__proxy/callbacks/"
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "accept-language", "user-agent")
RETURNED_HEADERS = ("content-type", "retry-after")
MAX_CALLBACK_ROUTES = 100_000


class BodyTooLarge(Exception):
    pass


async def _read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class Proxy:
    """The upstream client, the recorder and what polling has seen of each task."""

    def __init__(self, config: Config, spec: Spec) -> None:
        assert config.proxy_to is not None
        self.config = config
        self.spec = spec
        self.upstream = config.proxy_to.rstrip("/")
        self.recorder = Recorder(config.record_file, config.record_max_bytes)
        timeout = httpx.Timeout(
            config.upstream_timeout_s, connect=min(10.0, config.upstream_timeout_s)
        )
        self.http = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=tls.client_context()
        )
        self.statuses: dict[str, str] = {}
        self.client_callbacks: dict[str, str] = {}  # key of the proxy's route -> client's URL

    def authorization(self, incoming: str | None) -> str | None:
        if self.config.proxy_auth == "resign":
            account = self.config.accounts[0]
            return f"Bearer {make_token(account.access_key, account.secret_key)}"
        return incoming

    def failure(self, code: int, message: str) -> Response:
        return responses.failure(ApiError(code, message), str(uuid.uuid4()), self.spec.http_status)

    def _swap_callback(self, body: Any) -> tuple[Any, str | None]:
        if not isinstance(body, dict) or not isinstance(body.get("callback_url"), str):
            return body, None
        original = body["callback_url"]
        if not original or len(self.client_callbacks) >= MAX_CALLBACK_ROUTES:
            return body, None
        key = secrets.token_urlsafe(12)
        self.client_callbacks[key] = original
        return {**body, "callback_url": self.config.base_url + CALLBACK_PREFIX + key}, original

    def _see(self, task: Any, operation: str) -> None:
        """A status record when a poll shows a task in a status other than the last seen."""
        if not isinstance(task, dict) or not isinstance(task.get("task_id"), str):
            return
        status = task.get("task_status")
        if not isinstance(status, str):
            return
        before = self.statuses.get(task["task_id"])
        if before != status:
            self.statuses[task["task_id"]] = status
            self.recorder.write(
                "status",
                task_id=task["task_id"],
                via=operation,
                before=before,
                after=status,
                created_at=task.get("created_at"),
                updated_at=task.get("updated_at"),
                task_status_msg=task.get("task_status_msg"),
            )

    async def forward(self, request: Request) -> Response:
        started = time.perf_counter()
        operation, _ = operation_of(self.spec.document, request.method, request.url.path)
        try:
            raw = await _read_limited(request.stream(), self.config.max_body_bytes)
        except BodyTooLarge:
            return self.failure(
                INVALID_REQUEST, f"the body is larger than {self.config.max_body_bytes} bytes"
            )
        body = parse_json(raw)
        sent = raw
        client_callback = None
        if operation == "createLipSyncTask":
            swapped, client_callback = self._swap_callback(body)
            if client_callback is not None:
                sent = json.dumps(swapped, ensure_ascii=False).encode()
        headers = {h: request.headers[h] for h in FORWARDED_REQUEST_HEADERS if h in request.headers}
        auth = self.authorization(request.headers.get("authorization"))
        if auth:
            headers["authorization"] = auth
        url = self.upstream + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        status, answer, answer_headers, error = 0, b"", httpx.Headers(), None
        try:
            async with self.http.stream(
                request.method, url, content=sent or None, headers=headers
            ) as upstream:
                status, answer_headers = upstream.status_code, upstream.headers
                answer = await _read_limited(upstream.aiter_bytes(), MAX_UPSTREAM_BYTES)
        except httpx.TimeoutException as exc:
            error = (TIMEOUT_CODE, f"the upstream did not answer in time ({type(exc).__name__})")
        except BodyTooLarge:
            error = (INTERNAL, f"the upstream answer is larger than {MAX_UPSTREAM_BYTES} bytes")
        except (httpx.HTTPError, httpx.InvalidURL, OSError, RuntimeError) as exc:
            # RuntimeError: uvloop's transport raises it for a write on a connection the
            # upstream reset, and anyio passes it on while the transport does not say it is
            # closing yet; it reaches here unwrapped by httpx. Nothing else in this block
            # raises it.
            error = (UNAVAILABLE, f"the upstream cannot be reached: {exc or type(exc).__name__}")
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        answer_body = parse_json(answer)
        violations = (
            conformance.check_response(self.spec, operation, status, answer_body)
            if error is None
            else []
        )
        self.recorder.write(
            "exchange",
            operation=operation,
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            latency_ms=latency_ms,
            request={
                "headers": redact_headers(request.headers),
                "body": redact_body(body),
                "callback_substituted": client_callback is not None,
            },
            response=None
            if error is not None
            else {
                "status": status,
                "headers": redact_headers(answer_headers),
                "body": redact_body(answer_body),
            },
            error=None if error is None else {"code": error[0], "message": error[1]},
            violations=violations,
        )
        if error is not None:
            return self.failure(*error)
        data = answer_body.get("data") if isinstance(answer_body, dict) else None
        if operation in ("createLipSyncTask", "getLipSyncTask"):
            self._see(data, operation)
        elif operation == "listLipSyncTasks" and isinstance(data, list):
            for task in data:
                self._see(task, operation)
        out = {h: answer_headers[h] for h in RETURNED_HEADERS if h in answer_headers}
        out["x-mock-upstream-ms"] = f"{latency_ms:g}"
        if violations:
            out["x-mock-violations"] = conformance.header_value(violations)
        return Response(answer, status, headers=out)

    async def callback(self, request: Request) -> Response:
        target = self.client_callbacks.get(request.path_params["key"])
        if target is None:
            return self.failure(NOT_FOUND, "no task of this proxy uses this callback route")
        try:
            raw = await _read_limited(request.stream(), self.config.max_body_bytes)
        except BodyTooLarge:
            return self.failure(INVALID_REQUEST, "the callback body is too large")
        body = parse_json(raw)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() == "content-type" or k.lower().startswith("webhook-")
        }
        forward_status: int | None = None
        forward_error = None
        try:
            answer = await self.http.post(target, content=raw, headers=headers)
            forward_status = answer.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            forward_error = str(exc) or type(exc).__name__
        self.recorder.write(
            "callback",
            task_id=body.get("task_id") if isinstance(body, dict) else None,
            task_status=body.get("task_status") if isinstance(body, dict) else None,
            headers=redact_headers(request.headers),
            body=redact_body(body),
            violations=conformance.check_callback(self.spec, body),
            forwarded_to=target,
            forward_status=forward_status,
            forward_error=forward_error,
        )
        if forward_status is None:
            return Response(b"the client's callback URL cannot be reached", 502)
        return Response(b"", forward_status if forward_status < 300 else 502)


def create_proxy_app(config: Config, spec: Spec | None = None) -> Starlette:
    spec = spec or load_spec()
    proxy = Proxy(config, spec)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        proxy.recorder.write(
            "session",
            format=1,
            upstream=proxy.upstream,
            auth=config.proxy_auth,
            spec_version=spec.document["info"]["version"],
        )
        try:
            yield
        finally:
            await proxy.http.aclose()
            proxy.recorder.close()

    async def openapi_yaml(request: Request) -> Response:
        return Response(spec.yaml_text, media_type="application/yaml")

    async def openapi_json(request: Request) -> Response:
        return Response(spec.json_text, media_type="application/json")

    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("proxy error", exc_info=exc)
        return proxy.failure(INTERNAL, "internal error in the proxy; see its log")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            Route("/openapi.yaml", openapi_yaml, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route(CALLBACK_PREFIX + "{key}", proxy.callback, methods=["POST"]),
            Route("/{path:path}", proxy.forward, methods=methods),
        ],
        exception_handlers={Exception: internal},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.proxy = proxy
    return app
