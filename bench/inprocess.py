"""The mock's own cost per request, with no socket and no HTTP server: its ASGI app called directly.

`python bench/inprocess.py` prints microseconds per request for each workload of `make bench`
(the same bodies, a JWT), best of 5 repeats; `--profile WORKLOAD` prints cProfile's top
functions for one of them. What this measures is what the mock adds on top of uvicorn's own
~27 us per request (a raw ASGI app on the same stack): routing, auth, validation, the domain,
the envelope, the journal. Quiet and repeatable where wrk on the shared machine is not, so it is
the before/after measure of each change in bench/PROFILING.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mock_server import media
from mock_server.auth import make_token
from mock_server.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Config
from mock_server.web.app import create_app

TASKS = "/v1/videos/advanced-lip-sync"
VIDEO_URL = "https://example.com/videos/speaker.mp4"
SOUND_URL = "https://example.com/audio/speech-6s.mp3"
JWT = ("Bearer " + make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, lifetime_s=1800)).encode()

Call = Callable[[], Awaitable[tuple[int, bytes]]]


def request(app: Any, method: str, path: str, body: bytes = b"") -> Call:
    path, _, query = path.partition("?")
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"authorization", JWT),
        (b"accept", b"application/json"),
    ]
    if body:
        headers += [(b"content-type", b"application/json")]
        headers += [(b"content-length", str(len(body)).encode())]
    template = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "state": {},
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def call() -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return message

        async def send(msg: dict[str, Any]) -> None:
            sent.append(msg)

        await app(dict(template), receive, send)
        return sent[0]["status"], sent[1]["body"]

    return call


async def workloads(app: Any) -> dict[str, Call]:
    status, raw = await request(
        app, "POST", "/v1/videos/identify-face", json.dumps({"video_url": VIDEO_URL}).encode()
    )()
    assert status == 200, raw
    session_id = json.loads(raw)["data"]["session_id"]

    def create(sound: str) -> bytes:
        face = {
            "face_id": "0",
            "sound_file": sound,
            "sound_start_time": 0,
            "sound_end_time": 3000,
            "sound_insert_time": 0,
        }
        doc = {"session_id": session_id, "face_choose": [face], "external_task_id": ""}
        return json.dumps(doc, separators=(",", ":")).encode()

    b64 = base64.b64encode(media.make_audio(media.MediaFormat.MP3, 3000)).decode()
    status, raw = await request(app, "POST", TASKS, create(SOUND_URL))()
    assert status == 200, raw
    task_id = json.loads(raw)["data"]["task_id"]
    return {
        "query_one": request(app, "GET", f"{TASKS}/{task_id}"),
        "list_30": request(app, "GET", f"{TASKS}?pageNum=1&pageSize=30"),
        "create_b64": request(app, "POST", TASKS, create(b64)),
        "create_url": request(app, "POST", TASKS, create(SOUND_URL)),
        "identify_face": request(
            app, "POST", "/v1/videos/identify-face", json.dumps({"video_url": VIDEO_URL}).encode()
        ),
    }


async def per_request_us(call: Call, n: int) -> float:
    status, raw = await call()
    assert status == 200, raw
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await call()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


async def main_async(args: argparse.Namespace) -> None:
    # No ticker and no callbacks: the app is called without its lifespan.
    config = Config(seed=1, submit_delay_s=1, processing_delay_s=3, max_tasks=10_000_000)
    app = create_app(config)
    calls = await workloads(app)
    if args.profile:
        call = calls[args.profile]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.n):
            await call()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(40)
        print(out.getvalue())
        return
    for name in args.workloads.split(","):
        us = await per_request_us(calls[name], args.n)
        print(f"{name:<14} {us:7.1f} us per request (in process, best of 5 x {args.n})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workloads", default="query_one,list_30,create_b64,create_url,identify_face")
    p.add_argument("--profile", choices=["query_one", "list_30", "create_b64", "create_url",
                                          "identify_face"])  # fmt: skip
    p.add_argument("--sort", default="tottime")
    p.add_argument("-n", type=int, default=2000)
    asyncio.run(main_async(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
