"""A real mock on a SQLite file, killed with SIGKILL under load: what it acknowledged survives."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from .conftest import AUTH, create_body
from .hostile.harness import assert_envelope

TASKS = "/v1/videos/advanced-lip-sync"
RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
THREADS = 8
LOAD_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """`python -m mock_server` on a SQLite file, started and stopped by the test."""

    def __init__(self, db: Path, log: Path, *extra: str) -> None:
        self.extra = extra
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._db = db
        self._log = log
        self._out: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._out = self._log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mock_server",
                "--port",
                str(self.port),
                "--store",
                f"sqlite:{self._db}",
                "--seed",
                "1",
                "--submit-delay",
                "0.5",
                "--processing-delay",
                "5",
                "--log-level",
                "warning",
                *self.extra,
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self._log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/openapi.json", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the mock did not start: {self._log.read_text()}")

    def stop(self) -> None:
        """SIGTERM and wait: a clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self._out is not None:
            self._out.close()
            self._out = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A mock process on a fresh SQLite file; killed at the end whatever happens."""
    s = Server(tmp_path / "db", tmp_path / "mock.log")
    try:
        yield s
    finally:
        s.kill()


def load(
    base_url: str, worker: int, stop: threading.Event, out: dict[str, Any], errors: list[str]
) -> None:
    """Creates tasks until stopped or the server dies; keeps each 200 and the status it saw."""
    mine: dict[str, dict[str, str]] = {}
    try:
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=5, trust_env=False) as http:
            url = f"https://example.com/{worker}.mp4"
            r = http.post("/v1/videos/identify-face", json={"video_url": url})
            session_id = r.json()["data"]["session_id"]
            out[f"session-{worker}"] = session_id
            n = 0
            while not stop.is_set():
                external = f"w{worker}-{n}"
                r = http.post(TASKS, json=create_body(session_id, external_task_id=external))
                if r.status_code != 200:
                    errors.append(r.text)
                    return
                mine[r.json()["data"]["task_id"]] = {"external": external, "seen": "submitted"}
                if n % 3 == 0:  # poll an older task: a status a client saw must never regress
                    older = list(mine.values())[n // 2]
                    r = http.get(f"{TASKS}/{older['external']}")
                    if r.status_code != 200:
                        errors.append(r.text)
                        return
                    older["seen"] = r.json()["data"]["task_status"]
                n += 1
    except httpx.HTTPError:
        pass  # killed mid-request: that create was never acknowledged
    finally:
        out.update(mine)  # dict.update of another dict is atomic under the GIL


def all_tasks(http: httpx.Client) -> list[Any]:
    """Every task of every account, page by page (the control API's pages hold 1000)."""
    listed: list[Any] = []
    for page in range(1, 1000):
        found = get(http, "/__admin/tasks", pageNum=page, pageSize=1000)
        listed += found
        if len(found) < 1000:
            return listed
    raise AssertionError("more than 999 pages of tasks")


def get(http: httpx.Client, path: str, **params: Any) -> Any:
    r = http.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.mark.slow
class TestKill:
    def test_acknowledged_tasks_survive_sigkill(self, server: Server) -> None:
        """Every create answered 200 before a SIGKILL is there after a restart, once, with a
        status that never went back, moving on; new ids do not collide with stored ones."""
        server.start()
        acked: dict[str, Any] = {}
        errors: list[str] = []
        stop = threading.Event()
        workers = [
            threading.Thread(target=load, args=(server.base_url, w, stop, acked, errors))
            for w in range(THREADS)
        ]
        for w in workers:
            w.start()
        time.sleep(LOAD_S)
        server.kill()  # mid-load: every worker has a request in flight
        stop.set()
        for w in workers:
            w.join()
        assert not errors, errors[:3]

        sessions = {acked.pop(f"session-{w}") for w in range(THREADS) if f"session-{w}" in acked}
        tasks: dict[str, Any] = dict(acked)
        assert len(tasks) > 50, "the load produced too few tasks to mean anything"

        server.start()
        with httpx.Client(base_url=server.base_url, headers=AUTH, trust_env=False) as http:
            in_flight = 0
            for task_id, known in tasks.items():
                data = get(http, f"{TASKS}/{task_id}")
                assert data["task_info"]["external_task_id"] == known["external"]
                assert RANK[data["task_status"]] >= RANK[known["seen"]], (task_id, known)
                in_flight += data["task_status"] in ("submitted", "processing")
            assert in_flight, "no task was left in flight to move on after the restart"

            listed = all_tasks(http)
            ids = [t["task_id"] for t in listed]
            externals = [t["task_info"]["external_task_id"] for t in listed]
            assert len(ids) == len(set(ids)) and len(externals) == len(set(externals))
            assert set(tasks) <= set(ids)

            r = http.post("/v1/videos/identify-face", json={"video_url": "https://e.com/0.mp4"})
            new_session = r.json()["data"]["session_id"]
            assert new_session not in sessions
            r = http.post(TASKS, json=create_body(new_session, external_task_id="after"))
            assert r.status_code == 200, r.text
            assert r.json()["data"]["task_id"] not in ids
            r = http.post(TASKS, json=create_body(new_session, external_task_id="w0-0"))
            assert r.json()["code"] == 1201  # external ids from before the kill are still taken

            deadline, statuses = time.monotonic() + 15, {"submitted"}
            while time.monotonic() < deadline:
                statuses = {t["task_status"] for t in all_tasks(http)}
                if statuses <= {"succeed"}:
                    break
                time.sleep(0.2)
            assert statuses == {"succeed"}, "tasks stopped moving after the restart"


T0 = 1_722_769_557_708


def clock(base_url: str) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, trust_env=False) as http:
        data: dict[str, Any] = get(http, "/__admin/clock")
        return data


def post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, trust_env=False) as http:
        r = http.post(path, json=body)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


class TestClockRestart:
    @pytest.mark.parametrize("end", ["sigterm", "sigkill"])
    def test_a_manual_clock_comes_back_where_it_was(self, tmp_path: Path, end: str) -> None:
        """A manual clock advanced by the control API is at the same time after a restart
        (clean or SIGKILL), in manual mode; it never jumps to wall time."""
        args = ("--clock", "manual", "--clock-start", str(T0))
        s = Server(tmp_path / "db", tmp_path / "mock.log", *args)
        try:
            s.start()
            post(s.base_url, "/__admin/clock/advance", {"ms": 3_600_000})
            post(s.base_url, "/__admin/clock", {"now_ms": T0 + 7_200_000})
            before = clock(s.base_url)
            s.stop() if end == "sigterm" else s.kill()
            s.start()
            after = clock(s.base_url)
            print(f"\n[clock restart {end}] before {before['now_ms']}, after {after['now_ms']}")
            assert (after["mode"], after["now_ms"]) == ("manual", T0 + 7_200_000)
            post(s.base_url, "/__admin/reset", {})
            s.kill()
            s.start()
            assert clock(s.base_url)["now_ms"] == T0  # a reset is saved too
        finally:
            s.kill()

    def test_a_scaled_clock_keeps_mode_speed_and_offset(self, tmp_path: Path) -> None:
        """A clock switched to real mode at 60x and jumped ahead keeps its mode, speed and
        offset after a restart: the time read after it is never earlier than before it."""
        args = ("--clock", "manual", "--clock-start", str(T0))
        s = Server(tmp_path / "db", tmp_path / "mock.log", *args)
        try:
            s.start()
            post(s.base_url, "/__admin/clock", {"mode": "real", "speed": 60})
            before = clock(s.base_url)
            s.stop()
            s.start()
            after = clock(s.base_url)
            assert (after["mode"], after["speed"]) == ("real", 60)
            assert before["now_ms"] <= after["now_ms"] < T0 + 86_400_000  # not wall time
        finally:
            s.kill()


class TestLockedFile:
    def test_a_lock_held_by_another_process_is_a_5001_envelope(self, tmp_path: Path) -> None:
        """While another process holds the SQLite file exclusively, a create is answered 5001
        (HTTP 503, naming the file) within 3 s, the loop keeps serving other requests, and
        once the lock is gone the same request succeeds."""
        s = Server(tmp_path / "db", tmp_path / "mock.log")
        try:
            s.start()
            other = sqlite3.connect(tmp_path / "db", isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            with httpx.Client(base_url=s.base_url, headers=AUTH, trust_env=False) as http:
                started = time.perf_counter()
                r = http.post("/v1/videos/identify-face", json={"video_url": "https://e.com/a.mp4"})
                waited = time.perf_counter() - started
                print(f"\n[sqlite locked] answered {r.status_code} in {waited:.2f} s: {r.text}")
                body = assert_envelope(r, 5001)
                assert "locked by another process" in body["message"] and waited < 3.0
                assert http.get("/openapi.json").status_code == 200
                other.execute("ROLLBACK")
                other.close()
                r = http.post("/v1/videos/identify-face", json={"video_url": "https://e.com/a.mp4"})
                assert r.status_code == 200, r.text
            assert "Traceback" not in (tmp_path / "mock.log").read_text()
        finally:
            s.kill()
