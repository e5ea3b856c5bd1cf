"""A recorded session shared by the proxy, replay and drift tests: a "real" upstream (a broken
build of the mock, other delays, a fixtures file that fails some tasks), the proxy in front of
it, and a client that identifies a face, creates tasks with callbacks and polls them."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.hostile.harness import AUTH, ServerProcess

VIDEO_URL = "https://example.com/videos/speaker.mp4"
SOUND_URL = "https://example.com/audio/speech-6s.mp3"
SUBMIT_S, PROCESSING_S = 0.3, 0.6  # the upstream's delays; the mock's defaults are 1 s and 3 s
FAILED_MESSAGE = "the face turns away from the camera"
EXTERNAL_IDS = ("ok-1", "ok-2", "fail-1", "fail-2")
UNKNOWN_TASK = "000000000000000000"
CALLBACKS_PER_TASK = 3  # submitted, processing, succeed|failed
UPSTREAM_FIXTURES = f"""
outcomes:
  - {{external_task_id: fail-1, status: failed, message: "{FAILED_MESSAGE}"}}
  - {{external_task_id: fail-2, status: failed, message: "{FAILED_MESSAGE}"}}
"""


class CallbackReceiver:
    """Collects the JSON bodies POSTed to it on 127.0.0.1; answers 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with outer.arrived:
                    outer.bodies.append(body)
                    outer.arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout_s: float = 15.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout_s)

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Session:
    """What the client saw: final task bodies by external id, the answers, the callbacks."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: list[httpx.Response] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def identify_body() -> dict[str, Any]:
    return {"video_url": VIDEO_URL}


def create_body(session_id: str, external_id: str, callback_url: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "face_choose": [
            {
                "face_id": "0",
                "sound_file": SOUND_URL,
                "sound_start_time": 0,
                "sound_end_time": 3000,
                "sound_insert_time": 0,
            }
        ],
        "external_task_id": external_id,
        "callback_url": callback_url,
    }


def run_client(base_url: str, callback_url: str, deadline_s: float = 20.0) -> Session:
    """Identify, create four tasks, poll them to their end, ask for an unknown task, list."""
    out = Session()
    started = time.monotonic()
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=10.0, trust_env=False) as http:

        def send(method: str, path: str, body: Any = None) -> httpx.Response:
            answer = http.request(method, path, json=body)
            out.answers.append(answer)
            return answer

        session_id = send("POST", "/v1/videos/identify-face", identify_body()).json()["data"][
            "session_id"
        ]
        ids = {}
        for external in EXTERNAL_IDS:
            created = send(
                "POST",
                "/v1/videos/advanced-lip-sync",
                create_body(session_id, external, callback_url),
            )
            ids[external] = created.json()["data"]["task_id"]
        pending = set(EXTERNAL_IDS)
        while pending and time.monotonic() - started < deadline_s:
            for external in sorted(pending):
                task = send("GET", f"/v1/videos/advanced-lip-sync/{ids[external]}").json()["data"]
                if task["task_status"] in ("succeed", "failed"):
                    out.tasks[external] = task
                    pending.discard(external)
            time.sleep(0.05)
        send("GET", f"/v1/videos/advanced-lip-sync/{UNKNOWN_TASK}")
        send("GET", "/v1/videos/advanced-lip-sync?pageNum=1&pageSize=10")
    out.seconds = time.monotonic() - started
    return out


def record_session(
    tmp: Path,
    *,
    broken: bool = True,
    submit_s: float = SUBMIT_S,
    processing_s: float = PROCESSING_S,
) -> tuple[Path, Session]:
    """Record `run_client` through the proxy in front of the upstream: by default the broken
    build with other delays and failing tasks; `broken=False` is the mock as it ships."""
    fixtures = tmp / "upstream.yaml"
    fixtures.write_text(UPSTREAM_FIXTURES if broken else "{}", encoding="utf-8")
    recording = tmp / "session.jsonl"
    upstream = ServerProcess(
        *("--submit-delay", str(submit_s), "--processing-delay", str(processing_s)),
        *("--fixtures", str(fixtures)),
        module="tests.contracts.broken_mock renamed-field-unknown-code"
        if broken
        else "mock_server",
    )
    with upstream, CallbackReceiver() as receiver:
        proxy = ServerProcess("--proxy-to", upstream.base_url, "--record", str(recording))
        with proxy:
            session = run_client(proxy.base_url, receiver.url)
            # submitted, processing and the end of each task
            assert receiver.wait_for(CALLBACKS_PER_TASK * len(EXTERNAL_IDS)), receiver.bodies
            session.callbacks = list(receiver.bodies)
    return recording, session
