"""drift: a recording of a differently built and configured upstream, and what it names."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import drift
from tests.hostile.harness import ROOT, ServerProcess
from tests.recorded import (
    CALLBACKS_PER_TASK,
    EXTERNAL_IDS,
    PROCESSING_S,
    SUBMIT_S,
    CallbackReceiver,
    Session,
    record_session,
    run_client,
)

# What the upstream was built and set up to do differently, and nothing else.
EXPECTED = {
    ("unknown-code", "spec", "getLipSyncTask", "code 1209"),
    ("code", "mock", "getLipSyncTask", "code 1209"),
    ("field-added", "spec", "getLipSyncTask", "data.task_status_message"),
    ("field-missing", "spec", "getLipSyncTask", "data.task_status_msg"),
    ("field-added", "mock", "getLipSyncTask", "data.task_status_message"),
    ("field-missing", "mock", "getLipSyncTask", "data.task_status_msg"),
    ("field-added", "spec", "listLipSyncTasks", "data[].task_status_message"),
    ("field-missing", "spec", "listLipSyncTasks", "data[].task_status_msg"),
    ("field-added", "mock", "listLipSyncTasks", "data[].task_status_message"),
    ("field-missing", "mock", "listLipSyncTasks", "data[].task_status_msg"),
    ("field-added", "spec", "callback", "task_status_message"),
    ("field-added", "mock", "callback", "task_status_message"),
    ("field-missing", "mock", "callback", "task_status_msg"),
    ("phase", "mock", "createLipSyncTask", "submitted"),
    ("phase", "mock", "createLipSyncTask", "processing"),
    ("outcome", "mock", "createLipSyncTask", "task_status"),
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Session]:
    return record_session(tmp_path_factory.mktemp("drift"))


def _status_msg(task: dict[str, Any]) -> str:
    return str(task.get("task_status_msg", task.get("task_status_message", "")))


class TestDrift:
    def test_names_exactly_the_differences_built_in(self, broken: tuple[Path, Session]) -> None:
        """The renamed field, the unknown code, the delays and the failures; nothing more."""
        started = time.monotonic()
        report = drift.drift_report(broken[0])
        took = time.monotonic() - started
        print(f"\n{report.to_text()}\ndrift took {took:.2f} s")
        found = {(d.kind, d.against, d.operation, d.where) for d in report.differences}
        assert found == EXPECTED
        assert report.replayed == report.exchanges == len(broken[1].answers)
        assert report.callbacks == CALLBACKS_PER_TASK * len(EXTERNAL_IDS)
        phases = {p.phase: p for p in report.phases}
        assert phases["submitted"].p50_ms == SUBMIT_S * 1000
        assert phases["processing"].p50_ms == PROCESSING_S * 1000
        assert report.suggested_options[:4] == [
            "--submit-delay",
            f"{SUBMIT_S:g}",
            "--processing-delay",
            f"{PROCESSING_S:g}",
        ]
        assert report.outcomes == {"succeed": 2, "failed": 2}
        assert took < 30

    def test_a_faithful_upstream_has_no_drift(self, tmp_path: Path) -> None:
        """The mock as shipped behind the proxy: the report finds no difference at all."""
        recording, _ = record_session(tmp_path, broken=False, submit_s=1.0, processing_s=3.0)
        report = drift.drift_report(recording)
        assert report.differences == [], report.to_text()
        assert report.replayed > 0

    def test_fixtures_out_reproduces_the_recorded_behaviour(
        self, broken: tuple[Path, Session], tmp_path: Path
    ) -> None:
        """The mock started with --fixtures-out's file fails, succeeds and times tasks alike."""
        out = tmp_path / "fixtures.yaml"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "contracts",
                "drift",
                str(broken[0]),
                "--format",
                "json",
                "--fixtures-out",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert len(json.loads(done.stdout)["differences"]) == len(EXPECTED)
        assert yaml.safe_load(out.read_text())["outcomes"]
        recorded = broken[1]
        with ServerProcess("--fixtures", str(out)) as mock, CallbackReceiver() as receiver:
            again = run_client(mock.base_url, receiver.url)
            assert receiver.wait_for(CALLBACKS_PER_TASK * len(EXTERNAL_IDS))
        for external in EXTERNAL_IDS:
            before, after = recorded.tasks[external], again.tasks[external]
            assert after["task_status"] == before["task_status"]
            assert _status_msg(after) == _status_msg(before)
        for calls in (recorded.callbacks, receiver.bodies):
            stamps: dict[str, dict[str, int]] = {}
            for body in calls:
                stamps.setdefault(body["task_id"], {})[body["task_status"]] = body["updated_at"]
            for seen in stamps.values():
                end = seen.get("succeed", seen.get("failed", 0))
                assert seen["processing"] - seen["submitted"] == SUBMIT_S * 1000
                assert end - seen["processing"] == PROCESSING_S * 1000

    def test_an_unreadable_recording_exits_2(self, tmp_path: Path) -> None:
        """A file that is not JSON lines gets one line on stderr and status 2."""
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"kind": "session"}\nnot json\n')
        done = subprocess.run(
            [sys.executable, "-m", "contracts", "drift", str(bad)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0 and "bad.jsonl:2" in done.stderr


class TestSuggestions:
    def test_spread_durations_suggest_the_recorded_distribution(self, tmp_path: Path) -> None:
        """Phases that vary and a slow upstream: the recorded distributions are suggested."""
        recording = tmp_path / "spread.jsonl"
        lines: list[dict[str, Any]] = [{"kind": "session", "at_ms": 1}]
        for i, (sub, proc) in enumerate([(300, 2000), (900, 2100), (1500, 2050)]):
            task = {"task_id": f"t{i}", "created_at": 1000, "task_status": "submitted"}
            lines.append(
                {
                    "kind": "exchange",
                    "at_ms": 2,
                    "operation": "createLipSyncTask",
                    "method": "POST",
                    "path": "/v1/videos/advanced-lip-sync",
                    "query": "",
                    "latency_ms": 120.0,
                    "request": {"body": "[redacted]"},
                    "response": {
                        "status": 200,
                        "body": {"code": 0, "data": {**task, "updated_at": 1000}},
                    },
                }
            )
            for status, stamp in (("processing", 1000 + sub), ("succeed", 1000 + sub + proc)):
                lines.append(
                    {
                        "kind": "callback",
                        "at_ms": 3,
                        "body": {**task, "task_status": status, "updated_at": stamp},
                    }
                )
        recording.write_text("\n".join(map(json.dumps, lines)) + "\n")
        report = drift.drift_report(recording)
        options = report.suggested_options
        assert options[:2] == ["--submit-delay-dist", f"recorded:{recording}"]
        assert options[2:4] == ["--processing-delay", "2.05"]
        assert "--api-latency" in options
        assert report.replayed == 0  # a redacted body is not sent to the mock
