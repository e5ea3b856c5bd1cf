"""`file://` URLs inside `--allow-dir` that are not regular files, against a real process."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .harness import AUTH, ServerProcess, assert_envelope

JSON = {"Content-Type": "application/json", **AUTH}
IDENTIFY = "/v1/videos/identify-face"


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lipsync-allowed-") as d:
        root = Path(d)
        os.mkfifo(root / "fifo.mp4")
        (root / "zero.mp4").symlink_to("/dev/zero")
        (root / "inside.mp4").symlink_to(root / "fifo.mp4")
        (root / "sub").mkdir()
        yield root


def _max_latency_while(base_url: str, busy: threading.Event) -> float:
    """The slowest of GET /openapi.json answers while `busy` is set (the loop's freedom)."""
    worst = 0.0
    with httpx.Client(base_url=base_url, timeout=10) as c:
        while busy.is_set():
            started = time.perf_counter()
            c.get("/openapi.json")
            worst = max(worst, time.perf_counter() - started)
    return worst


class TestSpecialFiles:
    CASES = (
        ("fifo.mp4", "not a regular file"),
        ("inside.mp4", "not a regular file"),  # a link to the FIFO, still inside the folder
        ("zero.mp4", "not inside a folder allowed"),  # a link out of it, to a device
        ("sub", "not a regular file"),
        ("a%00.mp4", "NUL"),
    )

    def test_they_are_refused_at_once_and_nothing_freezes(self, folder: Path) -> None:
        """Before: a FIFO inside --allow-dir froze the whole server until someone wrote to
        it, and `file:///tmp/a%00.mp4` answered 5000 "embedded null byte". Now each is refused
        with 1201 video-url-reachable, fast, while other requests keep being answered."""
        with (
            ServerProcess("--allow-dir", str(folder)) as p,
            httpx.Client(base_url=p.base_url, headers=JSON, timeout=10) as c,
        ):
            busy = threading.Event()
            busy.set()
            worst: list[float] = []
            pinger = threading.Thread(
                target=lambda: worst.append(_max_latency_while(p.base_url, busy))
            )
            pinger.start()
            spent = []
            try:
                for name, reason in self.CASES:
                    url = f"file://{folder}/{name}"
                    started = time.perf_counter()
                    r = c.post(IDENTIFY, json={"video_url": url})
                    spent.append(time.perf_counter() - started)
                    data = assert_envelope(r, 1201)
                    assert "video-url-reachable" in data["message"], (name, data)
                    assert reason in data["message"], (name, data)
            finally:
                busy.clear()
                pinger.join(10)
        print(
            f"\n[special files] {len(self.CASES)} refused, slowest {max(spent) * 1000:.0f} ms; "
            f"loop answered within {worst[0] * 1000:.0f} ms meanwhile"
        )
        assert max(spent) < 2.0
        assert worst[0] < 1.0
