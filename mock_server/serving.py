"""The HTTP server the mock runs on: uvicorn with httptools and uvloop, with a header deadline.

uvicorn offers `timeout_keep_alive`, but its timer only runs between two requests: a
connection that never sends a byte, or sends half a request head and stops, is held forever
(its `data_received` cancels the timer and nothing arms another until a response is done).
Granian (hyper) has a real header-read timeout, but on a GIL build of Python it serves from a
child process, which would hide the mock's memory from its own hostile tests and break the
in-thread `MockServer`. So the mock keeps uvicorn and uses its documented `http=` option, which
takes a protocol class: uvicorn's own httptools protocol plus one timer per connection that
closes it when no request head arrived within the deadline of it opening or of its last
response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import uuid
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .domain.errors import INVALID_REQUEST

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5
ONE_WRITE_MAX = 64 * 1024
MAX_PIPELINED = 32  # requests queued behind the one being answered, before reading pauses


class OneWriteTransport:
    """The connection's transport, except that what is written in one turn of the event loop
    leaves in one `send()` at the end of the turn: uvicorn writes a response's head and its
    body separately, and on loopback each write is a system call. Measured on a poll with 32
    connections: 54 us of server CPU per answer, against 70 us when each response is sent as
    soon as it is complete (the turn's answers then leave one by one, and the loop wakes more
    often); the price is one turn of latency on a lone connection (~15 us).
    Past ONE_WRITE_MAX bytes pending, a write goes out at once, so the transport's own flow
    control sees a large body as it did. Everything else is the transport's (attribute lookups
    fall through to it)."""

    __slots__ = ("_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._size = 0
        self._loop = loop

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size > ONE_WRITE_MAX:
            self.flush()

    def flush(self) -> None:
        """Send what is pending now: at the end of the turn, on close, past ONE_WRITE_MAX."""
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._size = [], 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a request head must arrive within `header_timeout_s`.

    One timer per connection, for its whole life: a request only notes when the connection
    began waiting for a head (`_waiting_since`, None while a request is in hand), and the
    timer, when it fires, closes a connection that waited too long or sleeps until the
    earliest moment it could have. Arming and cancelling a timer per request cost more than
    a poll's routing does."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None
    _waiting_since: float | None = None
    _pending_400: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        one_write: Any = OneWriteTransport(transport, self.loop)
        super().connection_made(one_write)
        self._waiting_since = self.loop.time()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._check_head)

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if len(self.pipeline) >= MAX_PIPELINED:
            # uvicorn resumes reading after every answer, however many requests wait: a client
            # that pipelines without reading its answers would have every request it sends
            # parsed and queued (~2 KB each: 20,000 requests held 40 MB). Reading waits until
            # the queue is short again; what one read brings in is still parsed.
            self.flow.pause_reading()
        if self._pending_400 is not None and not self.pipeline:
            self._write_400(self._pending_400)
        elif not self.transport.is_closing() and not self.pipeline:
            self._waiting_since = self.loop.time()

    def send_400_response(self, msg: str) -> None:
        # httptools parses a whole chunk at once, so bytes that follow a lying Content-Length
        # would get their 400 before the request in front of them is answered: answers would
        # come out of order. That request is answered first; then the 400, then the close.
        if (self.cycle is not None and not self.cycle.response_complete) or self.pipeline:
            self._pending_400 = msg
            self.flow.pause_reading()
            return
        self._write_400(msg)

    def _write_400(self, msg: str) -> None:
        self._pending_400 = None
        body = json.dumps(
            {
                "code": INVALID_REQUEST,
                "message": f"not an HTTP/1.1 request: {msg}",
                "request_id": str(uuid.uuid4()),
                "data": None,
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _check_head(self) -> None:
        if self.transport.is_closing():
            self._head_timer = None
            return
        since, now = self._waiting_since, self.loop.time()
        if since is not None and now - since >= self.header_timeout_s:
            self._head_timer = None
            self.transport.close()
            return
        wait = self.header_timeout_s if since is None else since + self.header_timeout_s - now
        self._head_timer = self.loop.call_later(wait, self._check_head)


def protocol_class(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    return type(
        "HeaderDeadlineProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout_s": header_timeout_s},
    )


class Server(uvicorn.Server):
    """uvicorn's server, except that a signal ends it with status 0.

    uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, so a terminal shows a
    KeyboardInterrupt traceback and a supervisor sees -SIGTERM for a clean stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def server_config(
    app: Any,
    *,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
    log_level: str = "warning",
    log_config: dict[str, Any] | None = None,
) -> uvicorn.Config:
    """One place for the settings the CLI and `MockServer` share (access log off: the mock
    logs each API request itself)."""
    return uvicorn.Config(
        app,
        http=protocol_class(header_timeout_s),
        loop="auto",  # uvloop where installed (uvicorn[standard] brings it, not on Windows)
        lifespan="on",
        access_log=False,
        log_level=log_level,
        log_config=log_config,
        timeout_keep_alive=keep_alive_s,
        timeout_graceful_shutdown=10,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (port 0 picks one), not listening yet: connections are
    refused until the server serves; OSError says why the address cannot be had."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    # IPPROTO_TCP explicitly, or asyncio leaves Nagle on and keep-alive requests stall ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
