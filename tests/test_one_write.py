"""One send() per response: the transport wrapper the mock's server writes through."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from mock_server.serving import ONE_WRITE_MAX, OneWriteTransport
from mock_server.testing import MockServer


class Recorder:
    """A transport that keeps what reaches it, one item per write()."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def test_what_one_turn_writes_leaves_in_one_write() -> None:
    async def scenario() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        inner = Recorder()
        t: Any = OneWriteTransport(inner, loop)  # type: ignore[arg-type]
        seen = []
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        seen.append(list(inner.writes))  # nothing yet: the turn is not over
        await asyncio.sleep(0)
        seen.append(list(inner.writes))
        t.write(b"x" * (ONE_WRITE_MAX + 1))  # a large body goes out at once
        seen.append(list(inner.writes))
        t.write(b"head")
        t.write(b"body")
        t.flush()  # what the protocol does when a response is complete: no wait for the turn
        seen.append(list(inner.writes))
        t.write(b"tail")
        t.close()  # closing sends what is pending first
        seen.append(list(inner.writes))
        assert inner.closed and t.get_extra_info("peername") == ("127.0.0.1", 1)
        return seen

    before_turn, after_turn, large, flushed, closed = asyncio.run(scenario())
    assert before_turn == []
    assert after_turn == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert len(large) == 2 and len(large[1]) == ONE_WRITE_MAX + 1
    assert flushed[-1] == b"headbody"
    assert closed[-1] == b"tail"


def test_pipelined_requests_are_answered_whole_and_in_order() -> None:
    with MockServer() as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        request = (
            f"GET /v1/videos/advanced-lip-sync/{{}} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {server.headers['Authorization']}\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"".join(request.format(f"9{i:017d}").encode() for i in range(20)))
            data = b""
            while data.count(b"HTTP/1.1 ") < 20 or not data.endswith(b"}"):
                chunk = s.recv(65536)
                assert chunk, "the connection closed early"
                data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    print(f"\n20 pipelined requests, {len(data)} bytes back")
    assert len(answers) == 20
    for i, answer in enumerate(answers):
        assert answer.startswith(b"404 ") or answer.startswith(b"400 "), answer[:40]
        assert f"9{i:017d}".encode() in answer  # in order: each names its own task id
