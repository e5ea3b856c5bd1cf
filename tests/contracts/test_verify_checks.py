"""verify's unit checks and callback receiver, offline: what each one calls a break."""

from __future__ import annotations

import argparse
import threading
from typing import Any

import httpx

from contracts.report import CheckKind
from contracts.verify import VerifyReport, add_arguments
from contracts.verify.checks.callbacks import CallbackReceiver, payload_of
from contracts.verify.checks.units import (
    DURATIONS,
    FACE_INTERVALS,
    IDS,
    TASK_FIELDS,
    TIMESTAMPS,
    UnitChecks,
    duration_problems,
    session_problems,
    task_problems,
    timestamp_problems,
)
from contracts.verify.cli import options_from_args
from contracts.verify.target import Answer
from mock_server.spec import load_spec

SPEC = load_spec()
NOW_MS = 1_764_547_200_000  # 2025-12-01


def task(**overrides: Any) -> dict[str, Any]:
    """A succeeded task as the spec shapes it."""
    data: dict[str, Any] = {
        "task_id": "851027346193289226",
        "task_status": "succeed",
        "task_status_msg": "",
        "task_info": {
            "external_task_id": "",
            "parent_video": {"id": "", "url": "https://example.com/a.mp4", "duration": "13.6"},
        },
        "task_result": {"videos": [{"id": "v1", "url": "https://x/v1.mp4", "duration": "13.6"}]},
        "watermark_info": {"enabled": False},
        "final_unit_deduction": "1",
        "created_at": NOW_MS,
        "updated_at": NOW_MS + 4000,
    }
    data.update(overrides)
    return data


def checks_of(problems: Any) -> set[str]:
    return {check for check, _ in problems}


class TestUnitProblems:
    def test_a_documented_task_has_none(self) -> None:
        """A task in milliseconds, seconds and documented words breaks no unit check."""
        assert list(task_problems(SPEC, task(), "data")) == []

    def test_seconds_are_not_milliseconds(self) -> None:
        """A timestamp in Unix seconds is outside the plausible range of milliseconds."""
        (problem,) = timestamp_problems({"created_at": NOW_MS // 1000}, "data")
        assert problem[0] == TIMESTAMPS and "seconds, not milliseconds" in problem[1]

    def test_updated_before_created(self) -> None:
        """updated_at before created_at is a timestamp break."""
        problems = timestamp_problems({"created_at": NOW_MS, "updated_at": NOW_MS - 1}, "d")
        assert checks_of(problems) == {TIMESTAMPS}

    def test_durations_are_strings_of_seconds_inside_the_bounds(self) -> None:
        """A number, or milliseconds written as seconds, is a duration break; "2" to "60" is not."""
        assert checks_of(duration_problems(13.6, "d", 2000, 60000)) == {DURATIONS}
        assert checks_of(duration_problems("13600", "d", 2000, 60000)) == {DURATIONS}
        assert list(duration_problems("2", "d", 2000, 60000)) == []
        assert list(duration_problems("60.000", "d", 2000, 60000)) == []

    def test_ids_are_strings(self) -> None:
        """A task id sent as a JSON number is an id break."""
        assert IDS in checks_of(task_problems(SPEC, task(task_id=851027346193289226), "data"))

    def test_task_fields_follow_the_status(self) -> None:
        """Units charged, videos or a message before success, or a watermark URL nobody asked
        for, are task-field breaks; an unknown status word is one too."""
        running = task(task_status="processing", task_result={"videos": []})
        assert list(task_problems(SPEC, {**running, "final_unit_deduction": "0"}, "d")) == []
        assert checks_of(task_problems(SPEC, running, "d")) == {TASK_FIELDS}
        marked = task()
        marked["task_result"]["videos"][0]["watermark_url"] = "https://x/w.mp4"
        assert checks_of(task_problems(SPEC, marked, "d")) == {TASK_FIELDS}
        assert checks_of(task_problems(SPEC, task(task_status="succeeded"), "d")) == {TASK_FIELDS}

    def test_face_intervals_in_the_video_in_milliseconds(self) -> None:
        """Faces past the video's end, backwards, or in seconds are interval breaks."""
        data = {"session_id": "1", "face_data": [{"face_id": "0", "start_time": 0, "end_time": 13}]}
        assert checks_of(session_problems(data, 13600)) == {FACE_INTERVALS}
        data["face_data"] = [{"face_id": "0", "start_time": 500, "end_time": 14000}]
        assert checks_of(session_problems(data, 13600)) == {FACE_INTERVALS}
        data["face_data"] = [{"face_id": "0", "start_time": 500, "end_time": 13600}]
        assert list(session_problems(data, 13600)) == []


class TestUnitChecksAcrossAnswers:
    def answer(self, data: Any, request_id: str) -> Answer:
        body = {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data}
        return Answer(200, body, "")

    def test_time_moves_forward_and_request_ids_are_new(self) -> None:
        """A task read again with an earlier updated_at, and a reused request_id, are breaks."""
        report = VerifyReport("http://x", seed=1)
        units = UnitChecks(SPEC, report)
        query = "getLipSyncTask"
        units.observe(query, "GET", {}, self.answer(task(), "r1"))
        units.observe(query, "GET", {}, self.answer(task(updated_at=NOW_MS + 1), "r2"))
        units.observe(query, "GET", {}, self.answer(task(), "r2"))
        assert report.failed_checks() == [TIMESTAMPS, IDS]
        assert report.check(TIMESTAMPS, CheckKind.KLING).failed == 1
        assert report.check(IDS, CheckKind.KLING).failed == 1


class TestCallbackReceiver:
    def test_it_keeps_what_it_receives_and_wakes_waiters(self) -> None:
        """A POST is answered 200, kept with its headers, and wakes a waiting check."""
        receiver = CallbackReceiver()
        try:
            woken = threading.Event()

            def wait() -> None:
                if receiver.wait_for(lambda got: len(got) == 1, 10):
                    woken.set()

            waiter = threading.Thread(target=wait)
            waiter.start()
            sent = httpx.post(
                receiver.base_url + "/callbacks/t",
                json={"task_status": "succeed"},
                headers={"Webhook-Id": "msg_1"},
                trust_env=False,
            )
            waiter.join(10)
            assert sent.status_code == 200 and woken.is_set()
            (delivery,) = receiver.of("/callbacks/t")
            assert delivery.headers["webhook-id"] == "msg_1"
            assert payload_of(delivery) == {"task_status": "succeed"}
        finally:
            receiver.close()


class TestCallbackOptions:
    def test_flags_reach_the_options(self) -> None:
        """--webhook-secret, --callback-url/-port/-timeout and --no-callbacks set the options."""
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(
            [
                "--base-url",
                "http://127.0.0.1:9",
                "--api-key",
                "k",
                "--webhook-secret",
                "whsec_dGVzdA==",
                "--callback-url",
                "https://hooks.example.com/in",
                "--callback-port",
                "8765",
                "--callback-timeout",
                "3",
                "--no-callbacks",
            ]
        )
        options = options_from_args(args, lambda _line: None)
        assert (options.webhook_secret, options.callback_url) == (
            "whsec_dGVzdA==",
            "https://hooks.example.com/in",
        )
        assert (options.callback_port, options.callback_timeout_s, options.callbacks) == (
            8765,
            3.0,
            False,
        )
