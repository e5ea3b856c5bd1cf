"""Phase durations and API latency drawn from a distribution with the seed."""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

import httpx
import pytest

from mock_server import cli
from mock_server.config import Config
from mock_server.domain import latency
from mock_server.domain.clock import ClockMode
from mock_server.domain.models import AccountId
from mock_server.testing import MockServer
from tests.recorded import create_body, identify_body

TASKS = 40


def _phases(config: Config, count: int = TASKS) -> list[tuple[int, int]]:
    """The planned (submitted, processing) ms of `count` tasks created on a fresh mock."""
    with (
        MockServer(config) as server,
        httpx.Client(base_url=server.base_url, headers=server.headers, trust_env=False) as http,
    ):
        session = http.post("/v1/videos/identify-face", json=identify_body()).json()["data"]
        out = []
        for i in range(count):
            body = create_body(session["session_id"], f"t-{i}", "")
            task_id = http.post("/v1/videos/advanced-lip-sync", json=body).json()["data"]["task_id"]
            task = server.mock.backend.get_lip_sync_task(AccountId(server.account.account), task_id)
            out.append((task.outcome.submitted_ms, task.outcome.processing_ms))
        return out


def _manual(**changes: object) -> Config:
    return Config(clock_mode=ClockMode.MANUAL, clock_start_ms=1_700_000_000_000, **changes)  # type: ignore[arg-type]


class TestPhaseDistributions:
    def test_same_seed_same_durations_other_seed_others(self) -> None:
        """With a seed the drawn durations repeat exactly; another seed draws others."""
        dists = {"submit_delay_dist": "uniform:0.5:2", "processing_delay_dist": "lognormal:3:0.5"}
        first = _phases(_manual(seed=7, **dists))
        again = _phases(_manual(seed=7, **dists))
        other = _phases(_manual(seed=8, **dists))
        assert first == again and first != other
        submitted = [s for s, _ in first]
        processing = [p for _, p in first]
        assert all(500 <= s <= 2000 for s in submitted)
        median = statistics.median(processing)
        print(
            f"\nuniform 0.5-2 s: {min(submitted)}..{max(submitted)} ms; lognormal(3 s, 0.5): "
            f"median {median:.0f} ms over {TASKS} tasks"
        )
        assert 2000 <= median <= 4500
        assert len(set(processing)) > TASKS // 2

    def test_without_a_distribution_the_fixed_delays_hold(self) -> None:
        """No distribution option: every task takes --submit-delay and --processing-delay."""
        assert set(_phases(_manual(submit_delay_s=0.25, processing_delay_s=0.5), 5)) == {(250, 500)}

    def test_recorded_draws_only_recorded_durations(self, tmp_path: Path) -> None:
        """recorded:FILE draws each phase from the durations that recording shows."""
        recording = tmp_path / "r.jsonl"
        lines = []
        for i, (sub, proc) in enumerate([(300, 600), (450, 900), (700, 1200)]):
            task = {
                "task_id": f"t{i}",
                "created_at": 1000,
                "task_status": "submitted",
                "updated_at": 1000,
            }
            lines.append(
                {
                    "kind": "exchange",
                    "at_ms": 1,
                    "latency_ms": 40 + i,
                    "response": {"status": 200, "body": {"code": 0, "data": task}},
                }
            )
            for status, stamp in (("processing", 1000 + sub), ("succeed", 1000 + sub + proc)):
                lines.append(
                    {
                        "kind": "callback",
                        "at_ms": 2,
                        "body": {**task, "task_status": status, "updated_at": stamp},
                    }
                )
        recording.write_text("\n".join(map(json.dumps, lines)) + "\n")
        drawn = _phases(
            _manual(
                seed=1,
                submit_delay_dist=f"recorded:{recording}",
                processing_delay_dist=f"recorded:{recording}",
            ),
            20,
        )
        assert {s for s, _ in drawn} <= {300, 450, 700}
        assert {p for _, p in drawn} <= {600, 900, 1200}
        assert len({s for s, _ in drawn}) > 1
        assert cli.config_from_args(["--api-latency", f"recorded:{recording}"]).api_latency


class TestApiLatency:
    def test_api_answers_wait_control_api_does_not(self) -> None:
        """fixed:0.15 delays every /v1/ answer by 150 ms; /__admin/ answers at once."""
        with (
            MockServer(Config(api_latency="fixed:0.15")) as server,
            httpx.Client(base_url=server.base_url, headers=server.headers, trust_env=False) as http,
        ):
            http.get("/__admin/clock")  # the control API's first answer loads its spec
            started = time.perf_counter()
            http.get("/v1/videos/advanced-lip-sync")
            api_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            http.get("/__admin/clock")
            admin_ms = (time.perf_counter() - started) * 1000
        print(f"\n/v1/ {api_ms:.0f} ms, /__admin/ {admin_ms:.0f} ms (latency fixed:0.15)")
        assert api_ms >= 150 and admin_ms < 150


class TestParse:
    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("gauss:1", "unknown distribution"),
            ("fixed", "takes 1 number"),
            ("uniform:2:1", "LOW 2 above HIGH 1"),
            ("lognormal:0:1", "MEDIAN > 0"),
            ("fixed:-1", "expected seconds"),
            ("recorded:", "needs the recording"),
        ],
    )
    def test_bad_distributions_say_why(self, text: str, fragment: str) -> None:
        """Each malformed distribution is refused with a message naming the problem."""
        with pytest.raises(ValueError, match=fragment):
            latency.parse(text, lambda path: [])
        with pytest.raises(cli.UsageError):
            cli.config_from_args(["--submit-delay-dist", text])

    def test_draws_stay_in_bounds(self) -> None:
        """uniform stays within its bounds; fixed is exact; lognormal is never negative."""
        rng = random.Random(3)
        uniform = latency.parse("uniform:1:2", lambda p: [])
        assert all(1000 <= uniform.draw_ms(rng) <= 2000 for _ in range(1000))
        assert latency.parse("fixed:2.5", lambda p: []).draw_ms(rng) == 2500
        lognormal = latency.parse("lognormal:1:3", lambda p: [])
        assert all(0 <= lognormal.draw_ms(rng) <= latency.MAX_MS for _ in range(1000))
