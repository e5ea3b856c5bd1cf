"""Attacks on the server process itself: held connections, its command line, its control API."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time

import httpx

from tests.hostile.harness import API_KEY, AUTH, ServerProcess, assert_envelope

HALF_SENT = 3000
HEADER_TIMEOUT_S = 1.0
PARTIAL_HEAD = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _open_half_sent(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each sent the start of a request head and never finish it."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(PARTIAL_HEAD)
        sock.setblocking(False)
        held.append(sock)
    return held


def _still_open(held: list[socket.socket], wait_s: float) -> int:
    """How many of `held` the server has not closed after `wait_s` seconds (EOF or reset)."""
    selector = selectors.DefaultSelector()
    for each in held:
        selector.register(each, selectors.EVENT_READ)
    open_: set[socket.socket] = set(held)
    deadline = time.monotonic() + wait_s
    while open_ and (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(timeout=left):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return len(open_)


class TestHeldConnections:
    def test_half_sent_requests_are_dropped(self) -> None:
        """3000 connections that never finish their headers are closed; others still get answers."""
        with ServerProcess("--header-timeout", str(HEADER_TIMEOUT_S)) as server:
            held = _open_half_sent(server.port, HALF_SENT)
            try:
                started = time.perf_counter()
                answer = httpx.get(server.base_url + "/openapi.json", timeout=10, trust_env=False)
                answer_ms = (time.perf_counter() - started) * 1000
                left = _still_open(held, HEADER_TIMEOUT_S + 4)
            finally:
                for sock in held:
                    sock.close()
            print(
                f"\nhalf-sent: {left}/{HALF_SENT} open after {HEADER_TIMEOUT_S + 4:g} s; "
                f"a fresh request meanwhile {answer_ms:.0f} ms"
            )
            assert answer.status_code == 200
            assert answer_ms < 3000
            assert left == 0
            assert server.running

    def test_silent_and_idle_connections_are_dropped(self) -> None:
        """Connections that send nothing, or go quiet after an answer, are closed in time."""
        with ServerProcess("--header-timeout", str(HEADER_TIMEOUT_S)) as server:
            silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
            idle = []
            for _ in range(50):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
                idle.append(sock)
            for sock in silent + idle:
                sock.setblocking(False)
            try:
                started = time.monotonic()
                left = _still_open(silent + idle, HEADER_TIMEOUT_S + 4)
                took = time.monotonic() - started
            finally:
                for sock in silent + idle:
                    sock.close()
            print(f"\nsilent/idle: {left}/250 open after {took:.1f} s")
            assert left == 0
            assert took < HEADER_TIMEOUT_S + 3

    def test_a_busy_connection_is_kept_and_closed_once_it_goes_quiet(self) -> None:
        """The deadline counts from the last answer: a connection polling every 0.3 s for
        longer than the deadline, and one request that takes longer than it, stay open."""
        with ServerProcess(
            "--header-timeout", str(HEADER_TIMEOUT_S), "--api-latency", "fixed:1.5"
        ) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.settimeout(5)
            request = (
                f"GET /v1/videos/advanced-lip-sync HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {API_KEY}\r\n\r\n"
            ).encode()
            poll = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
            try:
                answers = 0
                started = time.monotonic()
                for message in [poll] * 8 + [request]:  # 8 x 0.3 s, then one 1.5 s answer
                    sock.sendall(message)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += (chunk := sock.recv(65536))
                        assert chunk, f"closed while busy, after {answers} answers"
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    while len(rest) < length:
                        rest += (chunk := sock.recv(65536))
                        assert chunk, f"closed while busy, after {answers} answers"
                    assert head.startswith(b"HTTP/1.1 200"), head[:40]
                    answers += 1
                    time.sleep(0.3)
                busy_s = time.monotonic() - started
                quiet = time.monotonic()
                sock.setblocking(False)
                left = _still_open([sock], HEADER_TIMEOUT_S + 3)
                closed_after = time.monotonic() - quiet
            finally:
                sock.close()
        print(
            f"\none connection: {answers} answers over {busy_s:.1f} s (deadline "
            f"{HEADER_TIMEOUT_S:g} s), closed {closed_after:.1f} s after going quiet"
        )
        assert answers == 9 and busy_s > 3 * HEADER_TIMEOUT_S
        assert left == 0


class TestPipelining:
    def test_pipelined_requests_never_read_hold_bounded_memory(self) -> None:
        """4 connections each pipeline 20,000 polls and read no answer: the server parses
        what waits in its queue and a read's worth, not everything the clients send (the
        same attack held +166 MB, +204 MB before round 2's serving changes)."""
        with ServerProcess() as server:
            before = server.rss_kb()
            request = (
                f"GET /v1/videos/advanced-lip-sync HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {API_KEY}\r\n\r\n"
            ).encode()
            socks = []
            try:
                for _ in range(4):
                    sock = socket.create_connection(("127.0.0.1", server.port))
                    sock.setblocking(False)
                    socks.append(sock)
                    with contextlib.suppress(BlockingIOError):
                        for _ in range(20_000):
                            sock.send(request)
                time.sleep(3)
                grown_mb = (server.rss_kb() - before) / 1024
                started = time.perf_counter()
                answer = httpx.get(server.base_url + "/openapi.json", timeout=10, trust_env=False)
                other_ms = (time.perf_counter() - started) * 1000
            finally:
                for sock in socks:
                    sock.close()
        print(f"\npipelined, never read: RSS +{grown_mb:.1f} MB; another client {other_ms:.0f} ms")
        assert answer.status_code == 200 and other_ms < 3000
        assert grown_mb < 80

    def test_a_long_pipeline_that_is_read_is_answered_whole_and_in_order(self) -> None:
        """3,000 pipelined requests on one connection, read as they come: all answered."""
        with (
            ServerProcess() as server,
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        ):
            requests = b"".join(
                f"GET /v1/videos/advanced-lip-sync/9{i:017d} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {API_KEY}\r\n\r\n".encode()
                for i in range(3_000)
            )
            sender = threading.Thread(target=sock.sendall, args=(requests,))
            sender.start()
            data = b""
            while data.count(b"HTTP/1.1 ") < 3_000 or not data.endswith(b"}"):
                chunk = sock.recv(1 << 20)
                assert chunk, f"closed after {data.count(b'HTTP/1.1 ')} answers"
                data += chunk
            sender.join(10)
        answers = data.split(b"HTTP/1.1 ")[1:]
        assert len(answers) == 3_000
        assert all(f"9{i:017d}".encode() in a for i, a in enumerate(answers))


class TestControlPlane:
    def test_token_guards_the_control_api_of_a_process(self) -> None:
        """With --admin-token a reset (or a journal read) without it is 401 and wipes nothing."""
        with ServerProcess("--admin-token", "hostile-test-token") as server:
            with httpx.Client(base_url=server.base_url, trust_env=False, timeout=10) as http:
                assert http.get("/v1/videos/advanced-lip-sync", headers=AUTH).status_code == 200
                before = http.get(
                    "/__admin/journal", headers={"X-Admin-Token": "hostile-test-token"}
                ).json()["data"]
                for attempt in (
                    {},
                    {"X-Admin-Token": API_KEY},
                    {"Authorization": f"Bearer {API_KEY}"},
                ):
                    assert_envelope(
                        http.post("/__admin/reset", headers=attempt),
                        1001 if "X-Admin-Token" not in attempt else 1000,
                    )
                    assert_envelope(
                        http.get("/__admin/journal", headers=attempt),
                        1001 if "X-Admin-Token" not in attempt else 1000,
                    )
                after = http.get(
                    "/__admin/journal", headers={"X-Admin-Token": "hostile-test-token"}
                ).json()["data"]
            print(f"\njournal entries before/after 6 refused calls: {len(before)}/{len(after)}")
            assert len(after) == len(before) >= 1


class TestGarbage:
    def test_garbage_after_a_request_is_answered_in_order_with_the_envelope(self) -> None:
        """A request then bytes that are no HTTP: its answer first, then a 1200 envelope."""
        with ServerProcess() as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(
                    b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage\r\n\r\n"
                )
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200]
            refusal = received.index(b"HTTP/1.1 400 Bad Request\r\n")
            head, _, body = received[refusal:].partition(b"\r\n\r\n")
            assert b"content-type: application/json" in head
            envelope = json.loads(body)
            assert envelope["code"] == 1200 and envelope["data"] is None, envelope
            assert server.running
