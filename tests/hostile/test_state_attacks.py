"""Attacks on the mock's state and its control API, each against a real server process.

Every test prints the figure it holds (tasks left, RSS growth, connections kept) and fails when
the figure leaves its bound.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from mock_server import media

from .harness import AUTH, ServerProcess, assert_envelope

JSON = {"Content-Type": "application/json", **AUTH}
OTHER = {"Content-Type": "application/json", "Authorization": "Bearer other-api-key"}
IDENTIFY = "/v1/videos/identify-face"
TASKS = "/v1/videos/advanced-lip-sync"
SOUND = "https://example.com/speech.mp3"
MB = 1024 * 1024


def _identify(
    c: httpx.Client, url: str = "https://example.com/a.mp4", headers: dict[str, str] | None = None
) -> Any:
    r = c.post(IDENTIFY, json={"video_url": url}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _create_body(session: Any, **overrides: Any) -> dict[str, Any]:
    face = session["face_data"][0]
    body: dict[str, Any] = {
        "session_id": session["session_id"],
        "face_choose": [
            {
                "face_id": face["face_id"],
                "sound_file": SOUND,
                "sound_start_time": 0,
                "sound_end_time": 2000,
                "sound_insert_time": face["start_time"],
            }
        ],
    }
    body.update(overrides)
    return body


def _task_count(c: httpx.Client) -> int:
    return len(c.get("/__admin/tasks").json()["data"])


@pytest.fixture(scope="module")
def proc() -> Iterator[ServerProcess]:
    with ServerProcess("--account", "other-ak:other-sk:other-api-key", "--clock", "manual") as p:
        yield p


class TestCallbacksCannotReachTheMock:
    ALIASES = (
        "127.0.0.1",
        "localhost",
        "127.1",
        "127.0.0.2",
        "2130706433",
        "0x7f000001",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
    )

    def test_a_callback_to_the_control_api_is_refused_and_nothing_is_wiped(
        self, proc: ServerProcess
    ) -> None:
        """Before: a create with callback_url .../__admin/reset was accepted and its first
        callback wiped every account's tasks and the journal. Now each alias is refused at
        create with 1201 callback-url-not-self, and every task stays."""
        with httpx.Client(base_url=proc.base_url, headers=JSON) as c:
            mine = _identify(c)
            theirs = _identify(c, headers=OTHER)
            assert c.post(TASKS, json=_create_body(mine)).status_code == 200
            assert c.post(TASKS, json=_create_body(theirs), headers=OTHER).status_code == 200
            before = _task_count(c)
            refused = 0
            for host in self.ALIASES:
                for path in ("/__admin/reset", "/__admin/fixtures"):
                    body = _create_body(mine, callback_url=f"http://{host}:{proc.port}{path}")
                    r = c.post(TASKS, json=body)
                    data = assert_envelope(r, 1201)
                    assert "callback-url-not-self" in data["message"], data
                    refused += 1
            c.post("/__admin/clock/advance", json={"ms": 10_000})
            after = _task_count(c)
            fixtures = c.get("/__admin/fixtures").json()["data"]["summary"]
        print(f"\n[self-callback] {refused} aliases refused; tasks {before} -> {after}")
        assert after == before == 2
        assert fixtures == {"videos": 0, "audios": 0, "outcomes": 0}


class TestControlApiInputs:
    BAD = (
        ("/__admin/fixtures", {"videos": [1]}),
        ("/__admin/fixtures", {"videos": [{"url": "u", "duration_ms": 5000, "faces": [1]}]}),
        ("/__admin/fixtures", {"videos": [{"url": "u", "duration_ms": 10**30}]}),
        ("/__admin/fixtures", {"outcomes": "all"}),
        ("/__admin/clock/advance", {"ms": 1000, "timeout_s": "x"}),
        ("/__admin/clock/advance", {"ms": 10**30}),
        ("/__admin/clock/advance", {"ms": 1.5}),
        ("/__admin/clock", {"speed": 1e308}),
        ("/__admin/clock", {"speed": "fast"}),
        ("/__admin/clock", {"now_ms": 10**30}),
        ("/__admin/clock", {"mode": "warp"}),
        ("/__admin/faults", {"kind": "latency", "latency_ms": 10**12}),
        ("/__admin/faults", {"kind": "error", "code": 5000, "times": -1}),
        ("/__admin/faults", {"kind": "rate_limit", "rate_per_s": 1e308}),
        ("/__admin/callbacks/chaos", {"delay_ms": 10**20}),
        ("/__admin/callbacks/chaos", {"duplicate": "yes"}),
    )

    def test_bad_bodies_get_1201_on_a_connection_that_stays_open(self, proc: ServerProcess) -> None:
        """Before: wrong types and huge numbers answered a bare 500 and reset the keep-alive
        connection; speed 1e308 made every later request answer 5000. Now: 1201, the same
        connection answers the next request, and the API still works."""
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
        reused = 0
        try:
            for path, body in self.BAD:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                answer = conn.getresponse()
                raw = answer.read()
                assert answer.status == 400, (path, body, answer.status, raw[:200])
                envelope = json.loads(raw)
                assert envelope["code"] == 1201 and envelope["request_id"], (path, body, envelope)
                reused += 1
        finally:
            conn.close()
        with httpx.Client(base_url=proc.base_url, headers=JSON) as c:
            assert c.get(TASKS).status_code == 200
            assert c.get("/__admin/clock").json()["data"]["speed"] == 1.0
            assert c.get("/__admin/journal?limit=99999999999999999999").status_code == 400
            assert c.get("/__admin/tasks?pageSize=0").status_code == 400
        print(f"\n[control-api] {reused} bad bodies refused on one keep-alive connection")
        assert reused == len(self.BAD)

    def test_a_huge_control_body_is_refused_before_it_is_buffered(
        self, proc: ServerProcess
    ) -> None:
        """Before: /__admin/* bodies were read whole (a 300 MB POST: +590 MB RSS). Now the
        control API reads at most 1 MB, then answers 1200 body-size."""
        size = 200 * MB
        chunk = b" " * MB
        before = proc.rss_kb()

        def body() -> Iterator[bytes]:
            yield b'{"videos": ['
            for _ in range(size // MB):
                yield chunk

        status: int | None = None
        try:
            r = httpx.post(
                proc.base_url + "/__admin/fixtures",
                content=body(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            status = r.status_code
            assert r.json()["code"] == 1200
        except httpx.TransportError:
            status = None  # the server answered and closed while the client was still sending
        growth_mb = (proc.rss_kb() - before) / 1024
        print(f"\n[control-api] {size // MB} MB body: HTTP {status}, RSS {growth_mb:+.1f} MB")
        assert proc.running
        assert growth_mb < 32
        assert httpx.get(proc.base_url + "/__admin/clock").status_code == 200


class _SlowSound:
    """A loopback server whose MP3 arrives after `delay_s`: a create awaits it meanwhile."""

    def __init__(self, delay_s: float) -> None:
        mp3 = media.make_audio(media.MediaFormat.MP3, 3000)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(delay_s)
                self.send_response(200)
                self.send_header("Content-Length", str(len(mp3)))
                self.end_headers()
                self.wfile.write(mp3)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/slow.mp3"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TestResetIsConsistent:
    def test_a_create_in_flight_during_a_reset_does_not_land_without_its_session(
        self, proc: ServerProcess
    ) -> None:
        """Before: a reset while a create awaited its sound left a task whose session was
        gone. Now that create answers 1201 session-known and no task exists after the reset."""
        slow = _SlowSound(1.0)
        try:
            with httpx.Client(base_url=proc.base_url, headers=JSON, timeout=30) as c:
                session = _identify(c)
                answers: list[httpx.Response] = []
                body = _create_body(session)
                body["face_choose"][0]["sound_file"] = slow.url
                worker = threading.Thread(target=lambda: answers.append(c.post(TASKS, json=body)))
                worker.start()
                time.sleep(0.3)
                assert c.post("/__admin/reset").status_code == 200
                worker.join(10)
                left = _task_count(c)
        finally:
            slow.close()
        data = assert_envelope(answers[0], 1201)
        print(f"\n[reset] in-flight create answered {data['code']}; tasks left {left}")
        assert "session-known" in data["message"]
        assert left == 0

    def test_a_reset_forgets_rendered_results(self) -> None:
        """Before: with a fixed seed, the task created after a reset got the same task id and
        was served the older task's cached video. Now the result matches its own parent."""
        durations: list[int] = []
        with (
            ServerProcess("--seed", "5", "--clock", "manual") as p,
            httpx.Client(base_url=p.base_url, headers=JSON, timeout=60) as c,
        ):
            for url in ("https://example.com/first.mp4", "https://example.com/second.mp4"):
                session = _identify(c, url)
                task = c.post(TASKS, json=_create_body(session)).json()["data"]
                c.post("/__admin/clock/advance", json={"ms": 4000})
                got = c.get(f"{TASKS}/{task['task_id']}").json()["data"]
                video = httpx.get(got["task_result"]["videos"][0]["url"], timeout=60)
                assert video.status_code == 200
                parent_ms = round(float(got["task_info"]["parent_video"]["duration"]) * 1000)
                durations.append(abs(media.probe_bytes(video.content).duration_ms - parent_ms))
                c.post("/__admin/reset")
        print(f"\n[reset] |result - parent| duration per task: {durations} ms")
        assert all(d <= 200 for d in durations)


def _read_answer(sock: socket.socket) -> str:
    """One whole HTTP answer (head and Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


class TestSlowBodies:
    def test_a_body_that_never_finishes_is_refused_in_time(self) -> None:
        """Before: a body announced with Content-Length and never finished held its request
        (and a connection) as long as the client liked. Now it is answered 1200 once
        --body-timeout passes, and the server answers others meanwhile."""
        with ServerProcess("--body-timeout", "1") as p:
            socks = []
            started = time.monotonic()
            for path in (TASKS, "/__admin/fixtures"):
                s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
                s.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mock-api-key\r\n"
                    'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":'.encode()
                )
                socks.append(s)
            assert httpx.get(p.base_url + "/openapi.json", timeout=5).status_code == 200
            answers = []
            for s in socks:
                answers.append(_read_answer(s))
                s.close()
            spent = time.monotonic() - started
        print(f"\n[slow body] {len(answers)} stalled bodies answered after {spent:.2f} s")
        for answer in answers:
            assert answer.startswith("HTTP/1.1 400"), answer[:200]
            assert '"code":1200' in answer and "did not arrive within 1 s" in answer
        assert spent < 5


class TestCountBudgets:
    def test_tasks_and_sessions_stop_at_their_limits(self) -> None:
        """Before: every identify-face and create was kept, without bound (about 1 KB each:
        a loop of cheap requests grows the mock by a gigabyte per million). Now past
        --max-sessions / --max-tasks they answer 1102 (HTTP 429) naming the option, state is
        unchanged, and a reset makes room again."""
        with (
            ServerProcess("--max-sessions", "2", "--max-tasks", "3", "--clock", "manual") as p,
            httpx.Client(base_url=p.base_url, headers=JSON, timeout=10) as c,
        ):
            first = _identify(c, "https://example.com/one.mp4")
            _identify(c, "https://example.com/two.mp4")
            third = c.post(IDENTIFY, json={"video_url": "https://example.com/three.mp4"})
            data = assert_envelope(third, 1102)
            assert "--max-sessions" in data["message"]
            codes = [c.post(TASKS, json=_create_body(first)).json()["code"] for _ in range(5)]
            kept = _task_count(c)
            c.post("/__admin/reset")
            again = c.post(IDENTIFY, json={"video_url": "https://example.com/three.mp4"})
        after = again.status_code
        print(f"\n[budgets] creates answered {codes}; tasks kept {kept}; after reset {after}")
        assert codes == [0, 0, 0, 1102, 1102]
        assert kept == 3
        assert again.status_code == 200
