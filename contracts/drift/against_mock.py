"""The recorded requests sent to an in-process mock on a manual clock, at their recorded times."""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.testing import MockServer

from .timeline import response_data

_UNSENDABLE = re.compile(r"^\[(redacted|\d+ chars sha256:[0-9a-f]+|\d+ bytes, not JSON)\]$")


class _Receiver:
    """Callback bodies the in-process mock sends, on 127.0.0.1."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                bodies.append(json.loads(raw or b"null"))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _sendable(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_sendable(v) for v in value.values())
    if isinstance(value, list):
        return all(_sendable(v) for v in value)
    return not (isinstance(value, str) and _UNSENDABLE.match(value))


def _substitute(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


@dataclass(slots=True)
class MockAnswers:
    pairs: list[tuple[dict[str, Any], int, Any]] = field(
        default_factory=list
    )  # record, status, body
    callbacks: list[dict[str, Any]] = field(default_factory=list)


def ask_mock(records: list[dict[str, Any]], fixtures: dict[str, Any]) -> MockAnswers:
    """Each sendable recorded request sent to a mock on a manual clock at its recorded time."""
    exchanges = [r for r in records if r["kind"] == "exchange" and r.get("response")]
    out = MockAnswers()
    if not exchanges:
        return out
    receiver = _Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fixtures.yaml"
        path.write_text(yaml.safe_dump(fixtures), encoding="utf-8")
        config = Config(
            clock_mode=ClockMode.MANUAL,
            clock_start_ms=exchanges[0]["at_ms"],
            seed=0,
            fixtures_file=str(path),
        )
        with (
            MockServer(config) as mock,
            httpx.Client(
                base_url=mock.base_url, headers=mock.headers, timeout=30, trust_env=False
            ) as http,
        ):
            ids: dict[str, str] = {}
            now = exchanges[0]["at_ms"]
            for r in exchanges:
                body = r["request"]["body"]
                if not _sendable(body):
                    continue
                if r["at_ms"] > now:
                    mock.admin.advance(r["at_ms"] - now)
                    now = r["at_ms"]
                if isinstance(body, dict) and body.get("callback_url"):
                    body = {**body, "callback_url": receiver.url}
                path_ = "/".join(ids.get(p, p) for p in r["path"].split("/"))
                answer = http.request(
                    r["method"],
                    path_ + (f"?{r['query']}" if r.get("query") else ""),
                    json=_substitute(body, ids) if body is not None else None,
                )
                reply = answer.json()
                out.pairs.append((r, answer.status_code, reply))
                recorded, mine = (
                    response_data(r),
                    reply.get("data") if isinstance(reply, dict) else None,
                )
                for key in ("session_id", "task_id"):
                    if (
                        isinstance(recorded, dict)
                        and isinstance(mine, dict)
                        and key in recorded
                        and key in mine
                    ):
                        ids[recorded[key]] = mine[key]
            lives = fixtures.get("outcomes", [])
            longest = max(
                (o.get("submitted_ms", 0) + o.get("processing_ms", 0) for o in lives), default=0
            )
            mock.admin.advance(longest + 60_000)  # every task to its end; waits for callbacks
    receiver.server.shutdown()
    receiver.server.server_close()
    out.callbacks = list(receiver.bodies)
    return out
