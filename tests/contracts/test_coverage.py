"""coverage: a happy-path suite scores low and names what it never tried; the kit's scenarios
take the example client to the documented figure; gates, formats and the pytest option."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.coverage import Coverage, Segment, main, measure
from contracts.scenarios import (
    CallbackChaos,
    InjectedError,
    Scenario,
    injectable_codes,
    is_retryable,
)
from examples.kling_client import CallbackReceiver, KlingError
from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.testing import MockServer
from tests.test_example_client import SOUND, VIDEO, VirtualTime, make_client

pytest_plugins = ["pytester"]

SECRET = "whsec_dGVzdHNlY3JldGtleWZvcmNvdmVyYWdl"
EXAMPLE_CLIENT_FIGURE = 69.0  # the README's documented floor for the example client
SHORT_VIDEO = "https://example.com/coverage/too-short.mp4"


@pytest.fixture
def mock() -> Iterator[MockServer]:
    """A signing mock on a manual clock, quick to give up on a silent receiver."""
    config = Config(
        port=0,
        clock_mode=ClockMode.MANUAL,
        webhook_secret=SECRET,
        callback_attempts=1,
        callback_timeout_s=0.5,
    )
    with MockServer(config) as server:
        yield server


def segment(mock: MockServer) -> Segment:
    return Segment.from_admin(mock.admin, signed=True)


def lip_sync(mock: MockServer, receiver: CallbackReceiver | None, scenario: Scenario) -> None:
    """Reset, play the scenario, run the example client; a typed error is an outcome."""
    mock.admin.reset()
    scenario.play(mock.admin)
    clock = VirtualTime(mock.admin, wait_callbacks=not scenario.callbacks.reorder)
    with make_client(mock, clock) as client, contextlib.suppress(KlingError, ValueError):
        client.lip_sync(VIDEO, SOUND, callback=receiver)


def happy_path(mock: MockServer) -> Coverage:
    """The suite most teams write first: one lip-sync that works."""
    with CallbackReceiver(SECRET) as receiver:
        lip_sync(mock, receiver, Scenario())
        return measure([segment(mock)])


CERTIFICATION = [
    Scenario(callbacks=CallbackChaos(duplicate=True)),
    Scenario(errors=(InjectedError(5000, "getLipSyncTask"), InjectedError(5002))),
    Scenario(errors=(InjectedError(5001, "identifyFace", times=2),)),
    Scenario(errors=(InjectedError(1302, "createLipSyncTask"),)),
    Scenario(max_in_flight=0),
    Scenario(failure="Failure to pass the risk control system"),
    Scenario(processing_ms=20 * 60_000),  # past the client's 900 s: TaskTimeout
    Scenario(callbacks=CallbackChaos(reorder=True)),
    Scenario(callbacks=CallbackChaos(drop=True)),
    # every non-retryable code the mock can inject, one scenario each (the client stops at it)
    *(
        Scenario(errors=(InjectedError(code),))
        for code in injectable_codes()
        if not is_retryable(code)
    ),
]


def certification(mock: MockServer) -> Coverage:
    """The example client through the kit's scenarios, measured before every reset."""
    segments: list[Segment] = []
    with CallbackReceiver(SECRET) as receiver:
        for scenario in CERTIFICATION:
            receiver.clear()
            lip_sync(mock, receiver, scenario)
            if scenario.callbacks.reorder:  # held statuses go out after the terminal one
                await_deliveries(mock, 3)
            segments.append(segment(mock))
        # late callbacks: the mock delays each delivery
        mock.admin.reset()
        mock.admin.set_chaos(delay_ms=20)
        lip_sync_keep(mock, receiver)
        segments.append(segment(mock))
    # a receiver that refuses (it knows another secret), and one that is gone
    with CallbackReceiver("whsec_b3RoZXJzZWNyZXRrZXk=") as refusing:
        lip_sync(mock, refusing, Scenario())
        segments.append(segment(mock))
    gone = CallbackReceiver(SECRET).start()
    gone.stop()
    lip_sync(mock, gone, Scenario())
    segments.append(segment(mock))
    # the user's video is too short: the client surfaces the 1201 naming video-duration
    mock.admin.reset()
    mock.admin.add_fixtures({"videos": [{"url": SHORT_VIDEO, "duration_ms": 1000}]})
    with make_client(mock, VirtualTime(mock.admin)) as client, contextlib.suppress(KlingError):
        client.identify_face(video_url=SHORT_VIDEO)
    segments.append(segment(mock))
    return measure(segments)


def await_deliveries(mock: MockServer, count: int, timeout_s: float = 5.0) -> None:
    """Wait until the mock has recorded `count` delivery attempts."""
    deadline = time.monotonic() + timeout_s
    while len(mock.admin.callbacks()) < count:
        assert time.monotonic() < deadline, mock.admin.callbacks()
        time.sleep(0.01)


def lip_sync_keep(mock: MockServer, receiver: CallbackReceiver) -> None:
    """Run the client without resetting the mock (its chaos stays)."""
    with make_client(mock, VirtualTime(mock.admin)) as client:
        client.lip_sync(VIDEO, SOUND, callback=receiver)


class TestHappyPath:
    def test_scores_low_and_names_what_is_missing(self, mock: MockServer) -> None:
        """One successful lip-sync covers under a quarter and lists failed-task, 1303, chaos."""
        cov = happy_path(mock)
        print(cov.text())
        assert cov.total < 25
        missing = {i for d in ("statuses", "errors", "conditions") for i in cov.missing(d)}
        assert {"failed-task", "1303", "duplicate-callback", "stuck-task"} <= missing
        assert {"succeeded-task", "submitted->processing", "receiver-2xx"} <= cov.covered_ids()
        assert "failed-task" in cov.text() and "never called" in cov.text()

    def test_cli_gates_from_saved_files(
        self, mock: MockServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """From saved files, --require names the missing items and exits 1; JUnit says why."""
        happy_path(mock)
        files = {}
        for name, data in (
            ("journal", mock.admin.journal()),
            ("callbacks", mock.admin.callbacks()),
            ("tasks", mock.admin.tasks()),
        ):
            files[name] = tmp_path / f"{name}.json"
            files[name].write_text(json.dumps({"code": 0, "data": data}))
        argv = [f"--{k}={v}" for k, v in files.items()] + ["--signed"]
        junit = tmp_path / "cov.xml"
        assert main([*argv, "--require", "failed-task,1303", "--junit-xml", str(junit)]) == 1
        out = capsys.readouterr().out
        assert "required but never happened: failed-task, 1303" in out
        assert 'message="required but never happened: failed-task"' in junit.read_text()
        assert main([*argv, "--require", "succeeded-task", "--fail-under", "10"]) == 0
        capsys.readouterr()
        assert main([*argv, "--fail-under", "90", "--report", "json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is False and report["total_percent"] < 90
        assert main([*argv, "--require", "no-such-item"]) == 2

    def test_html_is_self_contained(self, mock: MockServer, tmp_path: Path) -> None:
        """The HTML page carries every dimension, no script and no external asset."""
        page = happy_path(mock).html(required=["failed-task"])
        assert page.startswith("<!DOCTYPE html>") and "<script" not in page
        assert "src=" not in page and "href=" not in page
        for name in ("operations", "rules", "statuses", "errors", "conditions", "receiver"):
            assert f"<h2>{name}: " in page


class TestTheExampleClient:
    def test_reaches_the_documented_figure(self, mock: MockServer) -> None:
        """Through the kit's scenarios the example client reaches the README's figure."""
        started = time.perf_counter()
        cov = certification(mock)
        elapsed = time.perf_counter() - started
        print(cov.text())
        print(f"measured over {cov.segments} resets in {elapsed:.1f} s")
        assert cov.total >= EXAMPLE_CLIENT_FIGURE
        for name in ("statuses", "receiver"):
            assert cov.percent(name) == 100, (name, cov.missing(name))
        # the client refreshes its token 5 minutes early, so no scenario makes it see a 1004
        assert cov.missing("conditions") == ["expired-token"]
        assert cov.unmet(["failed-task", "1303", "duplicate-callback", "stuck-task"]) == []


PLUGIN_SUITE = """
from examples.kling_client import KlingClient, Sound
from contracts import strategies

VIDEO = "https://example.com/p/speaker.mp4"
SOUND = Sound(sound_file=strategies.DERIVED_SOUND_URL, end_ms=3000)

def test_happy(lipsync_mock):
    advance = lambda s: lipsync_mock.admin.advance(round(s * 1000))
    with KlingClient(lipsync_mock.base_url, api_key=lipsync_mock.api_key, sleep=advance) as c:
        c.lip_sync(VIDEO, SOUND)

def test_session(lipsync_mock_session):
    mock = lipsync_mock_session
    mock.admin.add_fault("error", code=1303, times=1)
    with KlingClient(mock.base_url, api_key=mock.api_key, sleep=lambda s: None) as c:
        c.identify_face(video_url=VIDEO)
    mock.admin.reset()  # measured before it forgets
    mock.admin.add_fault("error", code=5001, times=1)
    with KlingClient(mock.base_url, api_key=mock.api_key, sleep=lambda s: None) as c:
        c.identify_face(video_url=VIDEO)
"""


class TestPytestOption:
    def test_aggregates_every_mock_and_gates(self, pytester: pytest.Pytester) -> None:
        """--lipsync-coverage merges both fixtures (a reset in the body too) and fails under."""
        pytester.makepyfile(test_suite=PLUGIN_SUITE)
        result = pytester.runpytest_inprocess(
            "-p",
            "no:cacheprovider",
            "--lipsync-coverage",
            "--lipsync-coverage-require=1303,succeeded-task",
            "--lipsync-coverage-fail-under=95",
        )
        result.stdout.fnmatch_lines(["*lipsync contract coverage*", "TOTAL*", "*FAILED*"])
        out = result.stdout.str()
        # the 1303 before the session mock's reset in the test body, the 5001 after it
        assert "identifyFace         0: 3, 1303: 1, 5001: 1" in out, out
        assert "createLipSyncTask    0: 1" in out
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=2)

    def test_off_by_default(self, pytester: pytest.Pytester) -> None:
        """Without the option nothing is measured or printed."""
        pytester.makepyfile(test_suite=PLUGIN_SUITE)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        assert "lipsync contract coverage" not in result.stdout.str()
        assert result.ret == pytest.ExitCode.OK


class TestMeasure:
    def test_state_round_trips_and_merges(self, mock: MockServer) -> None:
        """An xdist worker's state rebuilds the same coverage; merging two doubles the hits."""
        cov = happy_path(mock)
        again = Coverage.from_state(json.loads(json.dumps(cov.state())))
        assert again.to_dict() == cov.to_dict()
        again.merge(cov)
        assert again.hits["succeeded-task"] == 2 * cov.hits["succeeded-task"]
        assert again.segments == 2

    def test_dimensions_pick_the_figure(self, mock: MockServer) -> None:
        """--dimensions counts only the named ones; an unknown one is refused by name."""
        happy_path(mock)
        only = measure([segment(mock)], ["statuses"])
        assert only.total == only.percent("statuses") == 62.5
        with pytest.raises(ValueError, match="unknown dimension 'status'"):
            measure([segment(mock)], ["status"])

    def test_polled_statuses_come_from_the_task_times(self) -> None:
        """Without callbacks, a query's answer is read off created_at/updated_at and the delay."""
        task = {"task_id": "t1", "task_status": "succeed", "created_at": 0, "updated_at": 4000}
        journal = [
            {"seq": 1, "operation": "createLipSyncTask", "clock_ms": 0, "code": 0},
            {
                "seq": 2,
                "operation": "getLipSyncTask",
                "path": "/v1/videos/advanced-lip-sync/t1",
                "clock_ms": 500,
                "code": 0,
            },
            {
                "seq": 3,
                "operation": "getLipSyncTask",
                "path": "/v1/videos/advanced-lip-sync/t1",
                "clock_ms": 2000,
                "code": 0,
            },
        ]
        cov = measure([Segment(journal, tasks=[task])])
        assert cov.hits["submitted-task"] == 2 and cov.hits["processing-task"] == 1
        assert "succeeded-task" not in cov.covered_ids()
        assert cov.hits["stuck-task"] == 1  # the client's last look was an unfinished task
        journal.append({**journal[2], "seq": 4, "clock_ms": 4000})
        cov = measure([Segment(journal, tasks=[task])])
        assert {"succeeded-task", "processing->succeed"} <= cov.covered_ids()
        assert "stuck-task" not in cov.covered_ids()
