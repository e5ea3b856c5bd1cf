"""The control API and faults, driven through a real HTTP client against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mock_server.admin_client import AdminError
from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.testing import MockServer

from .conftest import create_body


@pytest.fixture
def server() -> Iterator[MockServer]:
    """A real mock on a free port with a manual clock."""
    with MockServer(Config(clock_mode=ClockMode.MANUAL, seed=3)) as s:
        yield s


@pytest.fixture
def http(server: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=server.headers, trust_env=False) as c:
        yield c


def new_task(http: httpx.Client, **overrides: Any) -> dict[str, Any]:
    r = http.post("/v1/videos/identify-face", json={"video_url": "https://example.com/a.mp4"})
    session_id = r.json()["data"]["session_id"]
    r = http.post("/v1/videos/advanced-lip-sync", json=create_body(session_id, **overrides))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def status_of(http: httpx.Client, task_id: str) -> str:
    status: str = http.get(f"/v1/videos/advanced-lip-sync/{task_id}").json()["data"]["task_status"]
    return status


class TestClock:
    def test_manual_clock_holds_tasks_until_advanced(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """In manual mode a task stays submitted however long the client waits."""
        task = new_task(http)
        time.sleep(0.3)
        assert status_of(http, task["task_id"]) == "submitted"
        assert server.admin.clock()["mode"] == "manual"

    def test_one_advance_runs_every_phase_in_order(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """Advancing past both phases fires processing then succeed, each at its due time."""
        task = new_task(http)
        moved = server.admin.advance(10_000)
        steps = [(e["from"], e["to"]) for e in moved["events"]]
        assert steps == [("submitted", "processing"), ("processing", "succeed")]
        created = task["created_at"]
        assert [e["at_ms"] - created for e in moved["events"]] == [1000, 4000]
        assert status_of(http, task["task_id"]) == "succeed"

    def test_partial_advance_stops_in_processing(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """An advance shorter than both phases leaves the task processing."""
        task = new_task(http)
        server.admin.advance(1500)
        assert status_of(http, task["task_id"]) == "processing"

    def test_clock_never_goes_backwards(self, server: MockServer) -> None:
        """Setting the time into the past is refused with 1201."""
        now = server.admin.clock()["now_ms"]
        with pytest.raises(AdminError) as err:
            server.admin.set_clock(now_ms=now - 1)
        assert err.value.code == 1201

    def test_real_mode_runs_scaled(self, server: MockServer, http: httpx.Client) -> None:
        """Switching to real time at speed 100 finishes a 4 s task in well under a second."""
        task = new_task(http)
        server.admin.set_clock(mode="real", speed=100)
        deadline = time.monotonic() + 5
        while status_of(http, task["task_id"]) != "succeed":
            assert time.monotonic() < deadline
            time.sleep(0.02)

    def test_session_expires_with_the_clock(self, server: MockServer, http: httpx.Client) -> None:
        """A session identified 24 h earlier on the mock's clock is refused."""
        r = http.post("/v1/videos/identify-face", json={"video_url": "https://example.com/a.mp4"})
        session_id = r.json()["data"]["session_id"]
        server.admin.advance(86_400_000)
        r = http.post("/v1/videos/advanced-lip-sync", json=create_body(session_id))
        assert r.status_code == 400
        assert r.json()["code"] == 1201 and "session-valid" in r.json()["message"]

    def test_result_url_expires_after_30_days(self, server: MockServer, http: httpx.Client) -> None:
        """The result video is served until 30 days after success, then answers 1203."""
        task = new_task(http)
        server.admin.advance(5000)
        video = http.get(f"/v1/videos/advanced-lip-sync/{task['task_id']}").json()["data"]
        url = video["task_result"]["videos"][0]["url"]
        assert httpx.get(url, trust_env=False).status_code == 200
        server.admin.advance(30 * 86_400_000)
        gone = httpx.get(url, trust_env=False)
        assert gone.status_code == 404 and gone.json()["code"] == 1203


class TestFaults:
    @pytest.mark.parametrize(
        ("code", "status"),
        [
            (1100, 429),
            (1101, 429),
            (1102, 429),
            (1103, 403),
            (1301, 400),
            (1302, 429),
            (1303, 429),
            (5000, 500),
            (5001, 503),
            (5002, 504),
        ],
    )
    def test_error_fault_answers_code_for_next_n(
        self, server: MockServer, http: httpx.Client, code: int, status: int
    ) -> None:
        """An error fault answers its documented code and status N times, then lets go."""
        task = new_task(http)
        server.admin.add_fault("error", code=code, times=2, operation="getLipSyncTask")
        for _ in range(2):
            r = http.get(f"/v1/videos/advanced-lip-sync/{task['task_id']}")
            assert (r.status_code, r.json()["code"]) == (status, code)
            assert r.json()["request_id"]
        assert http.get(f"/v1/videos/advanced-lip-sync/{task['task_id']}").status_code == 200
        assert server.admin.faults()[0]["hits"] == 2

    def test_error_fault_matches_route_and_account_only(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """A fault for another account or another operation leaves these requests alone."""
        task = new_task(http)
        server.admin.add_fault("error", code=5000, account="someone-else")
        server.admin.add_fault("error", code=5000, operation="createLipSyncTask")
        assert http.get(f"/v1/videos/advanced-lip-sync/{task['task_id']}").status_code == 200
        server.admin.clear_faults()
        assert server.admin.faults() == []

    def test_latency_fault_delays_answers(self, server: MockServer, http: httpx.Client) -> None:
        """A latency fault adds its delay to matching requests."""
        server.admin.add_fault("latency", latency_ms=300, operation="listLipSyncTasks")
        started = time.perf_counter()
        assert http.get("/v1/videos/advanced-lip-sync").status_code == 200
        assert time.perf_counter() - started >= 0.3
        server.admin.clear_faults()
        started = time.perf_counter()
        http.get("/v1/videos/advanced-lip-sync")
        assert time.perf_counter() - started < 0.3

    def test_rate_limit_answers_1302_above_rate(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """Above R requests per second per account, requests get 1302 with HTTP 429."""
        server.admin.add_fault("rate_limit", rate_per_s=5)
        codes = [http.get("/v1/videos/advanced-lip-sync").json()["code"] for _ in range(8)]
        assert codes[:5] == [0] * 5
        assert set(codes[5:]) == {1302}
        server.admin.clear_faults()
        assert http.get("/v1/videos/advanced-lip-sync").json()["code"] == 0

    def test_concurrency_limit_answers_1303(self, server: MockServer, http: httpx.Client) -> None:
        """With one task in flight and a limit of one, the next create gets 1303 until it ends."""
        server.admin.add_fault("concurrency_limit", max_in_flight=1)
        new_task(http)
        r = http.post("/v1/videos/identify-face", json={"video_url": "https://example.com/b.mp4"})
        body = create_body(r.json()["data"]["session_id"])
        refused = http.post("/v1/videos/advanced-lip-sync", json=body)
        assert (refused.status_code, refused.json()["code"]) == (429, 1303)
        server.admin.advance(10_000)
        assert http.post("/v1/videos/advanced-lip-sync", json=body).status_code == 200

    def test_task_failure_fault_fails_with_message(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """A forced failure ends the next task failed with the given task_status_msg."""
        server.admin.add_fault("task_failure", message="risk control", times=1)
        failing = new_task(http)
        fine = new_task(http)
        server.admin.advance(10_000)
        data = http.get(f"/v1/videos/advanced-lip-sync/{failing['task_id']}").json()["data"]
        assert (data["task_status"], data["task_status_msg"]) == ("failed", "risk control")
        assert data["task_result"]["videos"] == []
        assert status_of(http, fine["task_id"]) == "succeed"

    def test_slow_task_fault_stretches_processing(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """A slow-task fault keeps the task processing for the given time."""
        server.admin.add_fault("slow_task", processing_ms=600_000)
        task = new_task(http)
        server.admin.advance(300_000)
        assert status_of(http, task["task_id"]) == "processing"
        server.admin.advance(301_000)
        assert status_of(http, task["task_id"]) == "succeed"

    def test_bad_fault_is_refused(self, server: MockServer) -> None:
        """An unknown kind, an undocumented code or an unknown key gets 1201."""
        for bad in ({"kind": "meteor"}, {"kind": "error", "code": 418}, {"kind": "error", "x": 1}):
            with pytest.raises(AdminError) as err:
                server.admin.post_fault(bad)
            assert err.value.code == 1201

    def test_faults_from_fixtures(self, server: MockServer, http: httpx.Client) -> None:
        """Faults registered with fixtures behave like those added directly."""
        server.admin.add_fixtures({"faults": [{"kind": "error", "code": 5001, "times": 1}]})
        r = http.get("/v1/videos/advanced-lip-sync")
        assert (r.status_code, r.json()["code"]) == (503, 5001)


class TestStateAndJournal:
    def test_journal_lists_requests(self, server: MockServer, http: httpx.Client) -> None:
        """The journal holds each request's operation, account, auth kind and answer code."""
        new_task(http)
        http.get("/v1/videos/advanced-lip-sync/unknown")
        entries = server.admin.journal()
        assert [e["operation"] for e in entries] == [
            "identifyFace",
            "createLipSyncTask",
            "getLipSyncTask",
        ]
        assert entries[-1]["code"] == 1203 and entries[-1]["http_status"] == 404
        assert entries[-1]["rule"] == "task-exists" and "unknown" in entries[-1]["message"]
        assert entries[0]["message"] == "" and entries[0]["rule"] is None
        assert {e["auth"] for e in entries} == {"api_key"}
        assert server.admin.journal(code=1203)[0]["path"] == "/v1/videos/advanced-lip-sync/unknown"
        assert len(server.admin.journal(operation="identifyFace")) == 1

    def test_journal_summarises_base64_audio(self, server: MockServer, http: httpx.Client) -> None:
        """Base64 audio is not kept in the journal, only its length."""
        http.post(
            "/v1/videos/advanced-lip-sync",
            json=create_body(
                "x",
                face_choose=[
                    {
                        "face_id": "0",
                        "sound_file": "A" * 5000,
                        "sound_start_time": 0,
                        "sound_end_time": 3000,
                        "sound_insert_time": 0,
                    }
                ],
            ),
        )
        body = server.admin.journal(operation="createLipSyncTask")[0]["body"]
        assert body["face_choose"][0]["sound_file"] == "<base64 5000 chars>"

    def test_admin_lists_tasks_of_every_account(
        self, server: MockServer, http: httpx.Client
    ) -> None:
        """/__admin/tasks shows tasks with their account."""
        task = new_task(http)
        listed = server.admin.tasks()
        assert [(t["task_id"], t["account"]) for t in listed] == [
            (task["task_id"], server.account.account)
        ]

    def test_reset_forgets_everything(self, server: MockServer, http: httpx.Client) -> None:
        """After reset the tasks, journal and faults are gone."""
        task = new_task(http)
        server.admin.add_fault("latency", latency_ms=1)
        server.admin.reset()
        assert server.admin.tasks() == [] and server.admin.faults() == []
        assert server.admin.journal() == []
        assert http.get(f"/v1/videos/advanced-lip-sync/{task['task_id']}").status_code == 404

    def test_fixture_registration(self, server: MockServer, http: httpx.Client) -> None:
        """A video registered through the control API drives identify-face."""
        server.admin.add_fixtures(
            {
                "videos": [
                    {
                        "url": "https://example.com/reg.mp4",
                        "duration_ms": 9000,
                        "session_id": "42",
                        "faces": [{"face_id": "0", "start_time": 100, "end_time": 8000}],
                    }
                ]
            }
        )
        r = http.post("/v1/videos/identify-face", json={"video_url": "https://example.com/reg.mp4"})
        assert r.headers["x-mock-media-source"] == "fixture"
        data = r.json()["data"]
        assert data["session_id"] == "42"
        assert data["face_data"][0]["start_time"] == 100
        assert server.admin.fixtures()["summary"]["videos"] == 1

    def test_admin_spec_is_served_and_valid(self, server: MockServer) -> None:
        """The control API's own OpenAPI document is served and valid."""
        from openapi_spec_validator import validate

        doc = httpx.get(server.base_url + "/__admin/openapi.json", trust_env=False).json()
        validate(doc)
        assert "/__admin/clock/advance" in doc["paths"]


class TestFixturesFileFaults:
    def test_faults_in_the_fixtures_file_apply_from_start_and_after_reset(
        self, tmp_path: Any
    ) -> None:
        """`faults:` in the --fixtures file are active at start-up and again after a reset."""
        path = tmp_path / "fixtures.yaml"
        path.write_text("faults:\n  - {kind: error, code: 5001, times: 1}\n", encoding="utf-8")
        with (
            MockServer(Config(clock_mode=ClockMode.MANUAL, fixtures_file=str(path))) as server,
            httpx.Client(base_url=server.base_url, headers=server.headers, trust_env=False) as c,
        ):
            for _ in range(2):
                first = c.get("/v1/videos/advanced-lip-sync")
                assert (first.status_code, first.json()["code"]) == (503, 5001)
                assert c.get("/v1/videos/advanced-lip-sync").json()["code"] == 0
                server.admin.reset()

    def test_a_bad_fault_in_the_fixtures_file_stops_start_up(self, tmp_path: Any) -> None:
        """An unknown fault kind in the fixtures file is refused with a message naming it."""
        path = tmp_path / "fixtures.yaml"
        path.write_text("faults:\n  - {kind: meteor}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=r"faults\[0\].*kind"):
            MockServer(Config(fixtures_file=str(path)))
