"""Proxy mode: requests reach the upstream, answers are checked, everything is recorded."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server import cli
from mock_server.admin_client import AdminClient
from mock_server.proxy import recording
from mock_server.proxy.replay import Replay
from mock_server.spec import load_spec
from mock_server.testing import MockServer
from tests.hostile.harness import AUTH, ROOT, FailingReceiver, ServerProcess, assert_envelope
from tests.recorded import (
    CALLBACKS_PER_TASK,
    EXTERNAL_IDS,
    FAILED_MESSAGE,
    PROCESSING_S,
    SUBMIT_S,
    UNKNOWN_TASK,
    CallbackReceiver,
    Session,
    create_body,
    identify_body,
    record_session,
)


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, Any]], Session, Path]:
    started = time.monotonic()
    path, session = record_session(tmp_path_factory.mktemp("proxy"))
    records = recording.read(path)
    print(
        f"\nrecorded {len(records)} records ({Counter(r['kind'] for r in records)}) of "
        f"{len(session.answers)} requests in {time.monotonic() - started:.2f} s"
    )
    return records, session, path


class TestRecording:
    def test_every_request_is_one_exchange_in_order(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """Each answer the client got is one exchange record, same status, same body, in order."""
        records, session, _ = recorded
        exchanges = [r for r in records if r["kind"] == "exchange"]
        assert len(exchanges) == len(session.answers)
        for record, answer in zip(exchanges, session.answers, strict=True):
            assert record["path"] == answer.request.url.path
            assert record["response"]["status"] == answer.status_code
            assert record["response"]["body"] == answer.json()
        stamps = [r["at_ms"] for r in records]
        assert stamps == sorted(stamps)
        assert records[0]["kind"] == "session"

    def test_violations_are_in_the_header_and_the_record(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """The renamed field and the unknown code are named in x-mock-violations and the file."""
        records, session, _ = recorded
        polls = [a for a in session.answers if a.request.url.path.count("/") == 4]
        assert polls and all(
            "task_status_msg" in a.headers["x-mock-violations"] for a in polls[:-1]
        )
        unknown = next(
            r for r in records if r.get("response", {}) and r["response"]["status"] == 404
        )
        assert (
            "code 1209 is not in the spec's error table (x-kling-errors)" in unknown["violations"]
        )
        identify = next(r for r in records if r.get("operation") == "identifyFace")
        assert identify["violations"] == []
        assert "x-mock-violations" not in session.answers[0].headers
        assert float(session.answers[0].headers["x-mock-upstream-ms"]) > 0

    def test_status_changes_seen_by_polling(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """Every task has a status record per change polling saw, ending in its final status."""
        records, session, _ = recorded
        for external, task in session.tasks.items():
            changes = [
                r for r in records if r["kind"] == "status" and r["task_id"] == task["task_id"]
            ]
            assert changes[0]["after"] == "submitted" and changes[0]["before"] is None
            assert changes[-1]["after"] == ("failed" if external.startswith("fail") else "succeed")
            assert all(a["after"] == b["before"] for a, b in itertools.pairwise(changes))

    def test_callbacks_are_recorded_and_forwarded(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """The upstream calls the proxy's route; the client's own URL gets the same bodies."""
        records, session, _ = recorded
        callbacks = [r for r in records if r["kind"] == "callback"]
        assert len(callbacks) == CALLBACKS_PER_TASK * len(EXTERNAL_IDS)
        assert all(c["forward_status"] == 200 for c in callbacks)
        assert sorted(map(json.dumps, (c["body"] for c in callbacks))) == sorted(
            map(json.dumps, session.callbacks)
        )
        failed = [c["body"] for c in callbacks if c["task_status"] == "failed"]
        assert [b["task_status_message"] for b in failed] == [FAILED_MESSAGE] * 2
        created = [r for r in records if r.get("operation") == "createLipSyncTask"]
        assert all(r["request"]["callback_substituted"] for r in created)
        # the client's own URL is what the file keeps as the request
        assert all(r["request"]["body"]["callback_url"].endswith("/hook") for r in created)

    def test_no_secret_reaches_the_file(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """The API key the client sent is nowhere in the recording; Authorization is redacted."""
        records, _, path = recorded
        text = path.read_text(encoding="utf-8")
        assert "mock-api-key" not in text
        exchanges = [r for r in records if r["kind"] == "exchange"]
        assert all(r["request"]["headers"]["authorization"] == "[redacted]" for r in exchanges)
        print(f"recording: {len(text)} bytes")
        assert len(text) < 400_000


class TestRedaction:
    def test_secret_keys_and_long_strings(self) -> None:
        """Secret-named keys are blanked; a long string keeps only its length and hash."""
        body = {"api_key": "k", "nested": [{"SecretKey": "s"}], "sound_file": "A" * 5000, "n": 1}
        out = recording.redact_body(body)
        assert out["api_key"] == "[redacted]" and out["nested"][0]["SecretKey"] == "[redacted]"
        assert out["sound_file"].startswith("[5000 chars sha256:") and out["n"] == 1
        assert recording.redact_body(body) == out


class TestUpstream:
    def test_resign_signs_with_the_configured_keys(self) -> None:
        """With --proxy-auth resign, a client without credentials is let in by the upstream."""
        with MockServer() as upstream:
            account = upstream.account
            proxy = ServerProcess(
                *("--proxy-to", upstream.base_url, "--proxy-auth", "resign"),
                *("--access-key", account.access_key, "--secret-key", account.secret_key),
            )
            with proxy:
                answer = httpx.post(
                    proxy.base_url + "/v1/audio/tts",
                    json={"text": "hi", "voice_id": "genshin_vindi2", "voice_language": "zh"},
                    timeout=10,
                    trust_env=False,
                )
                assert answer.status_code == 200, answer.text
                bare = httpx.post(
                    upstream.base_url + "/v1/audio/tts", json={}, timeout=10, trust_env=False
                )
                assert_envelope(bare, 1001)

    @pytest.mark.parametrize(
        "failure",
        [
            httpx.ReadError("connection reset by peer"),
            ConnectionResetError(104, "Connection reset by peer"),
            RuntimeError("unable to perform operation on <TCPTransport closed=True>"),
        ],
        ids=["httpx", "oserror", "uvloop-runtimeerror"],
    )
    def test_an_upstream_transport_failure_is_5001_not_5000(self, failure: Exception) -> None:
        """However the transport reports a reset upstream connection, the client gets 5001."""
        from starlette.testclient import TestClient

        from mock_server.config import Config
        from mock_server.proxy.app import create_proxy_app

        def fail(request: httpx.Request) -> httpx.Response:
            raise failure

        app = create_proxy_app(Config(proxy_to="http://127.0.0.1:9"))
        app.state.proxy.http = httpx.AsyncClient(transport=httpx.MockTransport(fail))
        with TestClient(app) as client:
            answer = client.get("/v1/videos/advanced-lip-sync", headers=AUTH)
        assert answer.status_code == load_spec().http_status[5001], answer.text
        assert answer.json()["code"] == 5001 and answer.json()["data"] is None
        assert "the upstream cannot be reached" in answer.json()["message"]

    def test_unreachable_and_hanging_upstreams_get_the_envelope(self) -> None:
        """A closed port answers 5001 (503); an upstream that never answers 5002 (504) in time."""
        with FailingReceiver("reset") as closed, FailingReceiver("hang") as hang:
            base = closed.url.rsplit("/callback", 1)[0]
            with ServerProcess("--proxy-to", base) as proxy:
                answer = httpx.get(proxy.base_url + "/v1/videos/advanced-lip-sync", timeout=10)
                assert_envelope(answer, 5001)
            base = hang.url.rsplit("/callback", 1)[0]
            with ServerProcess("--proxy-to", base, "--upstream-timeout", "0.5") as proxy:
                started = time.monotonic()
                answer = httpx.get(proxy.base_url + "/v1/videos/advanced-lip-sync", timeout=10)
                waited = time.monotonic() - started
                assert_envelope(answer, 5002)
                print(f"hanging upstream answered after {waited:.2f} s (timeout 0.5 s)")
                assert waited < 3.0

    def test_a_body_over_the_limit_is_not_sent(self) -> None:
        """The request body limit holds in proxy mode: 1200 before the upstream is asked."""
        with FailingReceiver("hang") as hang:
            base = hang.url.rsplit("/callback", 1)[0]
            with ServerProcess("--proxy-to", base, "--max-body-mb", "0.01") as proxy:
                answer = httpx.post(
                    proxy.base_url + "/v1/videos/identify-face", content=b"x" * 20_000, timeout=10
                )
                assert_envelope(answer, 1200)
                assert hang.connections == 0

    def test_the_proxy_adds_little_latency(self, tmp_path: Path) -> None:
        """Checking and recording an answer costs the proxy a few ms per request (p50)."""
        body = {"video_url": "https://example.com/v.mp4"}
        with (
            ServerProcess() as upstream,
            ServerProcess(
                "--proxy-to", upstream.base_url, "--record", str(tmp_path / "r")
            ) as proxy,
        ):
            p50 = {}
            for name, base in (("direct", upstream.base_url), ("proxy", proxy.base_url)):
                with httpx.Client(base_url=base, headers=AUTH, trust_env=False) as http:
                    http.post("/v1/videos/identify-face", json=body)
                    took = []
                    for _ in range(100):
                        started = time.perf_counter()
                        assert http.post("/v1/videos/identify-face", json=body).status_code == 200
                        took.append((time.perf_counter() - started) * 1000)
                p50[name] = sorted(took)[50]
        print(f"\nidentify-face p50: direct {p50['direct']:.2f} ms, proxy {p50['proxy']:.2f} ms")
        assert p50["proxy"] < p50["direct"] + 15

    def test_an_unknown_callback_route_is_refused(self) -> None:
        """Only the routes the proxy handed out forward callbacks; any other is a 1203."""
        with MockServer() as upstream, ServerProcess("--proxy-to", upstream.base_url) as proxy:
            answer = httpx.post(proxy.base_url + "/__proxy/callbacks/guess", json={}, timeout=10)
            assert_envelope(answer, 1203)


class TestRecordingBudget:
    def test_the_recording_stops_at_its_limit_and_the_proxy_goes_on(self, tmp_path: Path) -> None:
        """--record-max-mb 0.01: the file stays within 10 KiB and one marker line; every
        request is still proxied; the readers take the file (replay finds its exchanges)."""
        path = tmp_path / "capped.jsonl"
        limit = int(0.01 * 1024 * 1024)
        with (
            ServerProcess() as upstream,
            ServerProcess(
                "--proxy-to", upstream.base_url, "--record", str(path), "--record-max-mb", "0.01"
            ) as proxy,
            httpx.Client(base_url=proxy.base_url, headers=AUTH, timeout=10) as http,
        ):
            statuses = [http.get("/v1/videos/advanced-lip-sync").status_code for _ in range(60)]
            size = path.stat().st_size
            records = recording.read(path)
        kinds = Counter(r["kind"] for r in records)
        print(f"\n60 requests proxied, recording {size} B for a {limit} B limit; {dict(kinds)}")
        assert statuses == [200] * 60
        assert records[-1]["kind"] == "truncated" and kinds["truncated"] == 1
        assert 5 <= kinds["exchange"] < 60
        last_line = path.read_text().splitlines()[-1]
        assert size - len(last_line) - 1 <= limit
        assert Replay.from_file(path, load_spec(), lambda: 0) is not None


class TestOptions:
    @pytest.mark.parametrize(
        ("argv", "fragment"),
        [
            (["--record", "x.jsonl"], "--record FILE needs --proxy-to URL"),
            (["--proxy-to", "ftp://example.com"], "--proxy-to"),
            (["--proxy-to", "http://127.0.0.1:9", "--replay", "x"], "exclude each other"),
            (["--proxy-auth", "sign"], "--proxy-auth"),
            (["--upstream-timeout", "0"], "--upstream-timeout"),
        ],
    )
    def test_bad_proxy_options_are_one_line(self, argv: list[str], fragment: str) -> None:
        """Each bad combination or value is refused with one line naming the option."""
        with pytest.raises(cli.UsageError) as refused:
            cli.config_from_args(argv)
        assert fragment in str(refused.value) and "\n" not in str(refused.value)


class TestReplay:
    def test_replayed_requests_are_journaled(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """Each request a replaying mock answers is one journal entry, as on the API: the
        operation, the status and code the client got, its request id, the account, the body
        summary and hash, the polled status (it kept none before)."""
        _, session, path = recorded
        with (
            ServerProcess("--replay", str(path), "--clock", "manual") as replay,
            httpx.Client(base_url=replay.base_url, headers=AUTH, trust_env=False) as http,
        ):
            hit = http.post("/v1/videos/identify-face", json=identify_body())
            miss = http.post("/v1/videos/identify-face", json={"video_url": "https://other"})
            refused = http.get("/v1/videos/advanced-lip-sync", headers={"Authorization": "x"})
            task_id = next(iter(session.tasks.values()))["task_id"]
            polled = http.get(f"/v1/videos/advanced-lip-sync/{task_id}")
            admin = AdminClient(replay.base_url)
            try:
                entries = admin.journal()
            finally:
                admin.close()
        print(
            f"\nreplay journal: {[(e['operation'], e['http_status'], e['code']) for e in entries]}"
        )
        assert len(entries) == 4
        first, second, third, fourth = entries
        assert (first["operation"], first["http_status"], first["code"]) == ("identifyFace", 200, 0)
        assert first["request_id"] == hit.json()["request_id"]
        assert first["account"] == "mock-access-key"
        assert first["body_sha256"] and first["body"] == identify_body()
        assert second["code"] == miss.json()["code"] != 0 and second["request_id"] == "replay-miss"
        assert third["code"] == refused.json()["code"] != 0 and third["account"] is None
        assert fourth["operation"] == "getLipSyncTask"
        assert fourth["task_status"] == polled.json()["data"]["task_status"]

    def test_replay_reads_bodies_within_the_api_limits(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """A replaying mock takes --max-body-mb and --body-timeout like the API: a body past
        the limit, or one that never finishes, is 1200 (it was held as long as the client
        liked, and up to 64 MB were read)."""
        _, _, path = recorded
        with ServerProcess(
            "--replay", str(path), "--max-body-mb", "0.01", "--body-timeout", "1"
        ) as replay:
            big = httpx.post(
                replay.base_url + "/v1/videos/identify-face",
                headers=AUTH,
                json={"video_url": "x" * 20_000},
                timeout=10,
            )
            with socket.create_connection(("127.0.0.1", replay.port), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/videos/identify-face HTTP/1.1\r\nHost: x\r\n"
                    + f"Authorization: {AUTH['Authorization']}\r\n".encode()
                    + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
                started = time.monotonic()
                head = sock.recv(65536)
                waited = time.monotonic() - started
        print(
            f"\nreplay: 20 KB body -> {big.status_code}; unfinished body answered in {waited:.2f} s"
        )
        assert_envelope(big, 1200)
        assert "larger than 10485 bytes" in big.json()["message"]
        assert head.startswith(b"HTTP/1.1 400") and b'"code":1200' in head
        assert 0.9 <= waited < 5

    def test_replay_answers_and_plays_lifecycles_on_the_clock(
        self, recorded: tuple[list[dict[str, Any]], Session, Path]
    ) -> None:
        """Recorded answers by operation and body; statuses and callbacks move with the clock."""
        records, session, path = recorded
        first = session.answers
        started = time.monotonic()
        with (
            ServerProcess("--replay", str(path), "--clock", "manual") as replay,
            CallbackReceiver() as receiver,
            httpx.Client(base_url=replay.base_url, headers=AUTH, trust_env=False) as http,
        ):
            admin = AdminClient(replay.base_url)
            identified = http.post("/v1/videos/identify-face", json=identify_body())
            assert identified.headers["x-mock-replay"] == "hit"
            assert identified.json() == first[0].json()
            session_id = identified.json()["data"]["session_id"]
            ids = {}
            for external in EXTERNAL_IDS:
                created = http.post(
                    "/v1/videos/advanced-lip-sync",
                    json=create_body(session_id, external, receiver.url),
                )
                assert created.json()["data"]["task_info"]["external_task_id"] == external
                ids[external] = created.json()["data"]["task_id"]
            assert ids == {e: t["task_id"] for e, t in session.tasks.items()}

            def statuses() -> dict[str, str]:
                return {
                    e: http.get(f"/v1/videos/advanced-lip-sync/{ids[e]}").json()["data"][
                        "task_status"
                    ]
                    for e in EXTERNAL_IDS
                }

            def recorded_at(offset_ms: int) -> dict[str, str]:
                """Each task's status as the recorded polls saw it `offset_ms` after creation."""
                out = {}
                for external, task in session.tasks.items():
                    seen = "submitted"
                    for r in records:
                        if (
                            r["kind"] == "status"
                            and r["task_id"] == task["task_id"]
                            and r["updated_at"] - r["created_at"] <= offset_ms
                        ):
                            seen = r["after"]
                    out[external] = seen
                return out

            assert statuses() == recorded_at(0) == dict.fromkeys(EXTERNAL_IDS, "submitted")
            admin.advance(int(SUBMIT_S * 1000), wait_callbacks=False)
            assert statuses() == recorded_at(int(SUBMIT_S * 1000))
            admin.advance(int(PROCESSING_S * 1000), wait_callbacks=False)
            for external in EXTERNAL_IDS:
                final = http.get(f"/v1/videos/advanced-lip-sync/{ids[external]}")
                assert final.json() == {**final.json(), "data": session.tasks[external]}
            assert receiver.wait_for(CALLBACKS_PER_TASK * len(EXTERNAL_IDS))
            assert sorted(map(json.dumps, receiver.bodies)) == sorted(
                map(json.dumps, session.callbacks)
            )
            unknown = http.get(f"/v1/videos/advanced-lip-sync/{UNKNOWN_TASK}")
            assert (unknown.status_code, unknown.json()["code"]) == (404, 1209)
            bare = httpx.post(replay.base_url + "/v1/videos/identify-face", json=identify_body())
            assert_envelope(bare, 1001)  # the mock's accounts guard the replay too
            miss = http.post("/v1/videos/identify-face", json={"video_url": "https://x.test/a.mp4"})
            assert_envelope(miss, 1200)
            assert miss.headers["x-mock-replay"] == "miss"
            admin.close()
        print(f"replayed {len(EXTERNAL_IDS)} lifecycles in {time.monotonic() - started:.2f} s")

    def test_a_recording_without_exchanges_is_refused_at_start(self, tmp_path: Path) -> None:
        """--replay of an empty or broken file ends the process with one line, status 2."""
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        done = subprocess.run(
            [sys.executable, "-m", "mock_server", "--replay", str(empty), "--port", "0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert "holds no exchange" in done.stderr and done.stderr.strip().count("\n") == 0

    def test_a_late_first_poll_still_starts_submitted(self) -> None:
        """When the recording's first poll already saw `processing`, replay answers the
        create's status until that poll's time, then the poll."""
        created = {
            "task_id": "t1",
            "task_status": "submitted",
            "created_at": 1000,
            "updated_at": 1000,
        }
        polled = {
            **created,
            "task_status": "processing",
            "updated_at": 1300,
            "task_result": {"videos": []},
        }
        records: list[dict[str, Any]] = [
            {
                "kind": "exchange",
                "at_ms": 1,
                "operation": "createLipSyncTask",
                "method": "POST",
                "path": "/v1/videos/advanced-lip-sync",
                "query": "",
                "request": {"body": {}},
                "response": {"status": 200, "body": {"code": 0, "data": created}},
            },
            {
                "kind": "exchange",
                "at_ms": 500,
                "operation": "getLipSyncTask",
                "method": "GET",
                "path": "/v1/videos/advanced-lip-sync/t1",
                "query": "",
                "request": {"body": None},
                "response": {"status": 200, "body": {"code": 0, "data": polled}},
            },
        ]
        clock = [0]
        replay = Replay(records, load_spec(), lambda: clock[0])
        replay.created("t1", None)

        def status() -> str:
            answer = replay.poll_answer("t1")
            assert answer is not None
            return str(answer[0]["data"]["task_status"])

        assert status() == "submitted"
        clock[0] = 299
        assert status() == "submitted"
        clock[0] = 300
        assert status() == "processing"
