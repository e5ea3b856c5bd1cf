"""The request pipeline every API and control-API route runs: auth, faults, body, schema,
the handler, the envelope and the journal."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..auth import Principal
from ..domain.errors import INTERNAL, INVALID_REQUEST, ApiError
from ..logs import log_request
from . import responses
from .compose import Mock
from .journal import RAW_BODY, url_path

log = logging.getLogger("mock_server")

Handler = Callable[["Call"], Awaitable[tuple[Any, dict[str, str] | None]]]


@dataclass(slots=True)
class Call:
    """One API request as the handlers see it."""

    mock: Mock
    request: Request
    principal: Principal
    body: dict[str, Any]
    request_id: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_NOT_PARSED = object()
ORJSON_MIN_BYTES = 1024  # below it json is as quick as orjson plus the check that follows it
EXACT_CHECK_NODES = 1000
_INT64 = float(2**63)


def _parse(raw: bytes) -> Any:
    """`json.loads(raw, parse_constant=_reject_constant)`, the same value every time.

    A large body (base64 audio) is parsed by orjson, ~5x faster on long strings, when what it
    gives is what json gives: orjson refuses what json refuses or decodes otherwise (NaN,
    1e400, lone surrogates, UTF-16, nesting past 1024), and those go to json for its answer and
    its message; it turns an integer past 64 bits into a float, so a value holding a float that
    large (or more than EXACT_CHECK_NODES values to look at) is parsed again by json. A body
    with that many commas holds that many values: it goes to json at once, so no body is
    parsed twice in full (10 MB of `[1,1,...]`: parsed twice, 342 ms against json's 223 ms).
    """
    if len(raw) >= ORJSON_MIN_BYTES and raw.count(b",") < EXACT_CHECK_NODES:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = _NOT_PARSED
        if value is not _NOT_PARSED and _no_big_float(value):
            return value
    # json.loads(raw, parse_constant=...) exactly, without a new decoder per request
    return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


def _no_big_float(value: Any) -> bool:
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > EXACT_CHECK_NODES:
            return False
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and abs(item) >= _INT64:
            return False
    return True


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw body, at most `limit` bytes and within `timeout_s`, or ApiError (1200):
    checked against Content-Length before a byte is read, and while it is read. The bytes are
    left in the scope too, for the journal's size and hash."""
    declared = header(request, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(INVALID_REQUEST, f"Content-Length is not a number: {declared!r}")
        if int(declared) > limit:
            raise _too_big(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_big(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            INVALID_REQUEST,
            f"the body did not arrive within {timeout_s:g} s ({size} bytes received)",
        ) from None
    raw = b"".join(chunks)
    request.scope[RAW_BODY] = raw
    return raw


async def read_json(
    request: Request, limit: int, allow_empty: bool = False, timeout_s: float = 30.0
) -> dict[str, Any]:
    """The body as a JSON object; size is checked before and while it is read, never after.

    `allow_empty`: an empty body is the empty object (the control API's bodiless POSTs)."""
    ctype = header(request, b"content-type")
    if ctype is not None and ctype.split(";")[0].strip().lower() != "application/json":
        raise ApiError.rule_broken(
            "body-json", f"Content-Type must be application/json, got {ctype!r}", INVALID_REQUEST
        )
    raw = await read_body(request, limit, timeout_s)
    if allow_empty and not raw.strip():
        return {}
    try:
        body = _parse(raw)
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


def header(request: Request, name: bytes) -> str | None:
    """`request.headers.get(name)` for a lower-case name, without building a Headers object."""
    for key, value in request.scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class Endpoint:
    """One API operation as a pure ASGI app: auth, faults, body, schema, the handler, the
    envelope sent, the journal. Starlette routes to it (HEAD, and with `--replay` in front),
    and the front (web/front.py) calls it straight for GET and POST."""

    __slots__ = ("__name__", "body_schema", "handler", "mock", "operation_id")

    def __init__(
        self, mock: Mock, operation_id: str, handler: Handler, body_schema: str | None = None
    ) -> None:
        self.mock = mock
        self.operation_id = operation_id
        self.handler = handler
        self.body_schema = body_schema
        self.__name__ = operation_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(Request(scope, receive))
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def answer(self, request: Request) -> Response:
        mock, operation_id, body_schema = self.mock, self.operation_id, self.body_schema
        started = time.perf_counter()
        request_id = mock.backend.request_id()
        path = url_path(request)
        principal: Principal | None = None
        body: Any = None
        refusal: ApiError | None = None
        answered_status: str | None = None
        try:
            principal = mock.auth.authenticate(header(request, b"authorization"))
            latency_ms = mock.backend.before_request(operation_id, path, principal.account)
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            if body_schema is not None:
                body = await read_json(
                    request, mock.config.max_body_bytes, timeout_s=mock.config.body_timeout_s
                )
                mock.spec.validate_body(operation_id, body_schema, body)
            data, headers = await self.handler(
                Call(mock, request, principal, body or {}, request_id)
            )
            if operation_id == "getLipSyncTask" and isinstance(data, dict):
                answered_status = data.get("task_status")
            response = responses.success(request_id, data, headers)
        except ApiError as error:
            # A copy without the traceback: its frames hold the request body (up to 10 MB).
            refusal = ApiError(error.code, error.message, error.rule)
            response = responses.failure(error, request_id, mock.spec.http_status)
        except Exception:  # a bug in the mock still answers with the envelope
            log.exception("internal error in %s", operation_id)
            refusal = ApiError(INTERNAL, "internal error in the mock; see its log")
            response = responses.failure(refusal, request_id, mock.spec.http_status)
        answered(
            mock,
            request,
            operation_id,
            principal,
            body,
            response,
            refusal,
            request_id,
            started,
            path,
            answered_status,
        )
        return response


def answered(
    mock: Mock,
    request: Request,
    operation: str | None,
    principal: Principal | None,
    body: Any,
    response: Response,
    refusal: ApiError | None,
    request_id: str,
    started: float,
    path: str | None = None,
    task_status: str | None = None,
) -> None:
    """What every answered request leaves: a journal entry and one log line. `path`: the
    request's path when the caller has it already (the API's hot path)."""
    path = url_path(request) if path is None else path
    mock.journal.record(
        request,
        operation=operation,
        principal=principal,
        body=body,
        http_status=response.status_code,
        error=refusal,
        request_id=request_id,
        started=started,
        path=path,
        task_status=task_status,
    )
    log_request(
        request.scope["method"],
        path,
        operation=operation,
        principal=principal,
        http_status=response.status_code,
        error=refusal,
        request_id=request_id,
        started=started,
    )


def mock_of(request: Request) -> Mock:
    mock: Mock = request.app.state.mock
    return mock
