"""A mock in its own process, a loopback media server and callback receivers that misbehave."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mock_server.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "mock-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ENVELOPE_KEYS = {"code", "message", "request_id", "data"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`python -m mock_server` on 127.0.0.1 and a free port, in a process of its own."""

    def __init__(self, *args: str, module: str = "mock_server") -> None:
        self.args = args
        self.module = module  # another entry point, e.g. tests.contracts.broken_mock VARIANT
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="lipsync-mock-", suffix=".log"
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        # The environment must not leak a developer's LIPSYNC_MOCK_* or KLING_* settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIPSYNC_", "KLING_"))}
        for _ in range(3):  # another process may grab the free port before the server binds it
            self.port = free_port()
            self._proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", *self.module.split(), "--port", str(self.port)),
                    *("--log-level", "warning", *self.args),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_ready(timeout_s):
                return self
            self.stop()
        raise RuntimeError(f"the mock did not start:\n{self.log_text()[-4000:]}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/openapi.json", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def rss_kb(self) -> int:
        """Resident set size from /proc/PID/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            # a failing test shows what the server logged (pytest prints captured output)
            print(f"--- log of the server on port {self.port} ---\n{self.log_text()[-6000:]}")
        self.close()


def assert_envelope(response: httpx.Response, code: int) -> dict[str, Any]:
    """The error envelope with `code`, `data` null and the HTTP status the spec maps it to."""
    status = load_spec().http_status[code]
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["code"] == code, body
    assert body["data"] is None, body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["request_id"], str) and body["request_id"], body
    return body


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def empty_wav() -> bytes:
    """A well-formed WAV header with no samples: a zero-length audio file."""
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", 0)
    )


# -- loopback peers ----------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections under a race

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # peers that hang up early are part of the game


class MediaServer:
    """Serves fixed bytes on 127.0.0.1: the mock probes loopback URLs for real."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        served = dict(files)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = served.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class FailingReceiver:
    """A callback receiver that never acknowledges.

    `hang` accepts the connection and never answers, `reset` closes it at once with an RST,
    `500` reads the request and answers 500. `connections` counts accepted connections.
    """

    def __init__(self, kind: str) -> None:
        if kind not in ("hang", "reset", "500"):
            raise ValueError(kind)
        self.kind = kind
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(512)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/callback/{self.kind}"

    def _accept_loop(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.kind == "hang":
                self._held.append(conn)
            elif self.kind == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                threading.Thread(target=self._answer_500, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer_500(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2.0)
            with contextlib.suppress(OSError):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                conn.sendall(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 4\r\nConnection: close\r\n\r\noops"
                )

    def __enter__(self) -> FailingReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self._held:
            conn.close()
