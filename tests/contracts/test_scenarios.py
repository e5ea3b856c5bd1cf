"""Scenarios: the value type, how the strategy shrinks, and what `play` installs on a mock."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from contracts.scenarios import (
    RETRYABLE_CODES,
    CallbackChaos,
    InjectedError,
    Scenario,
    http_status_of,
    injectable_codes,
    lipsync_scenarios,
    operation_ids,
)
from mock_server.testing import MockServer

from ..conftest import create_body

# Hypothesis' `find` stops at the first example unless told to shrink.
SHRINK = settings(database=None, max_examples=500, phases=[Phase.generate, Phase.shrink])


def minimal(condition: Any, **kwargs: Any) -> Scenario:
    found: Scenario = find(lipsync_scenarios(**kwargs), condition, settings=SHRINK)
    return found


class TestScenarioValue:
    def test_default_scenario_reads_as_such(self) -> None:
        """The default scenario has an empty repr, installs no fault and says so."""
        assert repr(Scenario()) == "Scenario()"
        assert Scenario().is_default and Scenario().faults() == []
        assert str(Scenario()) == "default behaviour: no faults, default timings"

    def test_repr_shows_only_changes_and_round_trips(self) -> None:
        """The repr names only what differs from the default and evaluates back to the value."""
        scenario = Scenario(
            processing_ms=600_000,
            errors=(InjectedError(5001, "getLipSyncTask", times=2), InjectedError(1201)),
            callbacks=CallbackChaos(duplicate=True),
        )
        text = repr(scenario)
        assert text == (
            "Scenario(processing_ms=600000, errors=(InjectedError(5001, 'getLipSyncTask', "
            "times=2), InjectedError(1201)), callbacks=CallbackChaos(duplicate=True))"
        )
        names = {
            "Scenario": Scenario,
            "InjectedError": InjectedError,
            "CallbackChaos": CallbackChaos,
        }
        assert eval(text, names) == scenario

    def test_str_is_prose(self) -> None:
        """str() describes the behaviour with codes, statuses and operations."""
        scenario = Scenario(failure="risk", errors=(InjectedError(5001, "getLipSyncTask", None),))
        assert str(scenario) == ("fails with 'risk'; 5001 (HTTP 503) on getLipSyncTask every time")

    def test_faults_are_control_api_bodies(self) -> None:
        """Each field becomes the documented fault body, errors first in scenario order."""
        scenario = Scenario(
            submitted_ms=0,
            processing_ms=90_000,
            failure="Failure to pass the risk control system",
            errors=(InjectedError(1302, "createLipSyncTask"),),
            rate_limit_per_s=5.0,
            max_in_flight=1,
        )
        assert scenario.faults() == [
            {"kind": "error", "code": 1302, "operation": "createLipSyncTask", "times": 1},
            {"kind": "slow_task", "submitted_ms": 0, "processing_ms": 90_000},
            {"kind": "task_failure", "message": "Failure to pass the risk control system"},
            {"kind": "rate_limit", "rate_per_s": 5.0},
            {"kind": "concurrency_limit", "max_in_flight": 1},
        ]

    def test_http_status_comes_from_the_spec(self) -> None:
        """Injected codes carry the HTTP status of the documented error table."""
        assert [InjectedError(c).http_status for c in (1103, 1201, 1302, 5001, 5002)] == [
            403,
            400,
            429,
            503,
            504,
        ]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"code": 418}, "not an injectable documented code"),
            ({"code": 1004}, "not an injectable documented code"),
            ({"code": 5001, "operation": "deleteTask"}, "unknown operation 'deleteTask'"),
            ({"code": 5001, "times": 0}, "times must be >= 1 or None"),
        ],
    )
    def test_bad_injections_are_refused(self, kwargs: dict[str, Any], message: str) -> None:
        """Undocumented or non-injectable codes, unknown operations and times 0 are refused."""
        with pytest.raises(ValueError, match=message):
            InjectedError(**kwargs)

    def test_non_retryable_codes(self) -> None:
        """non_retryable_codes lists the injected codes a client must not resend."""
        scenario = Scenario(errors=(InjectedError(5001), InjectedError(1201), InjectedError(1302)))
        assert scenario.non_retryable_codes == {1201}
        assert sorted(RETRYABLE_CODES) == [1302, 1303, 5000, 5001, 5002]


class TestStrategy:
    def test_everything_shrinks_to_the_default(self) -> None:
        """With nothing required, the minimal scenario is the default one."""
        assert minimal(lambda s: True) == Scenario()

    def test_one_error_shrinks_to_the_smallest_injection(self) -> None:
        """Needing an error gives one injection: the first code, any operation, once."""
        assert minimal(lambda s: bool(s.errors)) == Scenario(errors=(InjectedError(1100),))

    def test_needing_a_code_keeps_only_that_code(self) -> None:
        """Needing 5001 somewhere shrinks to exactly one 5001 on any request, once."""
        found = minimal(lambda s: 5001 in s.injected_codes)
        assert found == Scenario(errors=(InjectedError(5001),))

    def test_timings_shrink_to_zero_after_default(self) -> None:
        """Needing a slow phase shrinks to a 0 ms phase with everything else default."""
        assert minimal(lambda s: s.processing_ms is not None) == Scenario(processing_ms=0)

    def test_callback_chaos_shrinks_to_the_needed_flag(self) -> None:
        """Needing reordered callbacks keeps only reorder on."""
        found = minimal(lambda s: s.callbacks.reorder)
        assert found == Scenario(callbacks=CallbackChaos(reorder=True))

    @settings(max_examples=50, database=None)
    @given(scenario=lipsync_scenarios())
    def test_only_documented_codes_and_operations(self, scenario: Scenario) -> None:
        """Every generated injection uses a documented, injectable code and a known operation."""
        for error in scenario.errors:
            assert error.code in injectable_codes()
            assert error.http_status == http_status_of(error.code) >= 400
            assert error.operation is None or error.operation in operation_ids()

    @settings(max_examples=30, database=None)
    @given(
        scenario=lipsync_scenarios(
            codes=[5001],
            operations=["getLipSyncTask"],
            timings=False,
            failures=False,
            rate_limits=False,
            callbacks=False,
        )
    )
    def test_options_narrow_the_space(self, scenario: Scenario) -> None:
        """codes, operations and the switches limit what is generated."""
        assert {(e.code, e.operation) for e in scenario.errors} <= {(5001, "getLipSyncTask")}
        assert scenario == Scenario(errors=scenario.errors)

    def test_unknown_codes_are_refused(self) -> None:
        """Asking for a code the mock cannot inject fails early with the usable ones."""
        with pytest.raises(ValueError, match=r"\[1000\] cannot be injected"):
            lipsync_scenarios(codes=[1000])


def _status(mock: MockServer, task_id: str) -> tuple[int, int]:
    r = httpx.get(f"{mock.base_url}/v1/videos/advanced-lip-sync/{task_id}", headers=mock.headers)
    return r.status_code, r.json()["code"]


def _new_task(mock: MockServer) -> dict[str, Any]:
    with httpx.Client(base_url=mock.base_url, headers=mock.headers) as http:
        r = http.post("/v1/videos/identify-face", json={"video_url": "https://example.com/s.mp4"})
        created = http.post(
            "/v1/videos/advanced-lip-sync", json=create_body(r.json()["data"]["session_id"])
        )
        data: dict[str, Any] = created.json()["data"]
        return data


class TestPlay:
    def test_play_installs_the_faults_and_chaos(self, lipsync_mock_session: MockServer) -> None:
        """After play, the mock lists the scenario's faults and callback chaos."""
        admin = lipsync_mock_session.admin
        scenario = Scenario(
            processing_ms=1000,
            errors=(InjectedError(5001, "getLipSyncTask", times=2),),
            callbacks=CallbackChaos(duplicate=True, drop=True),
        )
        scenario.play(admin)
        installed = [
            {k: v for k, v in f.items() if k not in ("id", "hits")} for f in admin.faults()
        ]
        assert [f["kind"] for f in installed] == ["error", "slow_task"]
        assert installed[0]["code"] == 5001 and installed[0]["times"] == 2
        chaos = httpx.get(lipsync_mock_session.base_url + "/__admin/callbacks/chaos").json()
        assert chaos["data"]["global"]["duplicate"] and chaos["data"]["global"]["drop"]

    def test_play_replaces_the_previous_scenario(self, lipsync_mock_session: MockServer) -> None:
        """Playing the default scenario after another removes its faults and chaos."""
        admin = lipsync_mock_session.admin
        Scenario(errors=(InjectedError(5000),), callbacks=CallbackChaos(reorder=True)).play(admin)
        Scenario().play(admin)
        assert admin.faults() == []
        chaos = httpx.get(lipsync_mock_session.base_url + "/__admin/callbacks/chaos").json()
        assert not chaos["data"]["global"]["reorder"]

    def test_injected_errors_answer_code_and_status(self, lipsync_mock_session: MockServer) -> None:
        """A played 5001 x2 on task queries answers HTTP 503 twice, then the task."""
        task = _new_task(lipsync_mock_session)
        Scenario(errors=(InjectedError(5001, "getLipSyncTask", times=2),)).play(
            lipsync_mock_session.admin
        )
        answers = [_status(lipsync_mock_session, task["task_id"]) for _ in range(3)]
        assert answers == [(503, 5001), (503, 5001), (200, 0)]

    def test_timings_and_failure_shape_the_task(self, lipsync_mock_session: MockServer) -> None:
        """A played slow, failing scenario keeps the task processing, then fails it."""
        mock = lipsync_mock_session
        Scenario(submitted_ms=0, processing_ms=60_000, failure="too blurry").play(mock.admin)
        task = _new_task(mock)
        mock.admin.advance(59_000)
        assert mock.admin.tasks()[0]["task_status"] == "processing"
        mock.admin.advance(1_000)
        listed = mock.admin.tasks()[0]
        assert (listed["task_id"], listed["task_status"], listed["task_status_msg"]) == (
            task["task_id"],
            "failed",
            "too blurry",
        )


class TestHypothesisPattern:
    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(scenario=lipsync_scenarios(callbacks=False), page=st.integers(1, 3))
    def test_session_mock_reset_per_example(
        self, lipsync_mock_session: MockServer, scenario: Scenario, page: int
    ) -> None:
        """The documented pattern: a session mock, reset and played for every example."""
        lipsync_mock_session.admin.reset()
        scenario.play(lipsync_mock_session.admin)
        r = httpx.get(
            f"{lipsync_mock_session.base_url}/v1/videos/advanced-lip-sync?pageNum={page}",
            headers=lipsync_mock_session.headers,
        )
        code = r.json()["code"]
        assert code == 0 or code in scenario.injected_codes | {1302}
        assert r.status_code == (200 if code == 0 else http_status_of(code))
