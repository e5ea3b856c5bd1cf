"""The domain on its own: its imports, the lifecycle table, determinism."""

from __future__ import annotations

import dataclasses
import json
import pkgutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import mock_server.domain
from mock_server.domain.clock import Clock, ClockMode, ClockState
from mock_server.domain.lifecycle import ORDER, TRANSITIONS, result_expired, step, units_for
from mock_server.domain.models import (
    RESULT_TTL_MS,
    AccountId,
    Outcome,
    ParentVideo,
    SessionId,
    SoundChoice,
    Task,
    TaskId,
    TaskStatus,
    VideoId,
)
from mock_server.web.app import create_app
from tests.conftest import (
    AUTH,
    TEST_STORE,
    b64_audio,
    create_body,
    face_choose,
    manual_config,
    mock_of,
)

WEB_PACKAGES = ("starlette", "httpx", "httpx2", "yaml", "uvicorn", "jsonschema", "jwt")
DOMAIN_MODULES = [
    f"mock_server.domain.{m.name}" for m in pkgutil.iter_modules(mock_server.domain.__path__)
]


def make_task(
    task_id: str,
    account: str = "acct",
    created_at_ms: int = 0,
    *,
    status: TaskStatus = TaskStatus.SUBMITTED,
    outcome: Outcome | None = None,
    external_task_id: str = "",
    length_ms: int = 3000,
) -> Task:
    return Task(
        task_id=TaskId(task_id),
        account=AccountId(account),
        external_task_id=external_task_id,
        session_id=SessionId("s"),
        face_id="0",
        parent=ParentVideo("", "https://example.com/v.mp4", 9800, 1920, 1080),
        sound=SoundChoice(None, 20_000, 0, length_ms, 0, 1.0, 1.0),
        watermark=False,
        callback_url="",
        outcome=outcome or Outcome(1000, 3000),
        status=status,
        status_msg="",
        created_at_ms=created_at_ms,
        updated_at_ms=created_at_ms,
    )


def fixed_video_id() -> VideoId:
    return VideoId("777")


class TestLayers:
    def test_domain_imports_no_web_or_yaml(self) -> None:
        """Importing every domain module pulls in no web framework, HTTP client, YAML or JWT."""
        code = (
            "import importlib, json, sys\n"
            f"for name in {DOMAIN_MODULES!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        loaded = set(json.loads(out))
        assert "mock_server" in loaded
        assert loaded.isdisjoint(WEB_PACKAGES), sorted(loaded & set(WEB_PACKAGES))

    def test_backend_is_among_the_checked_modules(self) -> None:
        """The import check covers the backend, rules, resolver, store and lifecycle."""
        for name in ("backend", "rules", "resolver", "store", "lifecycle", "models"):
            assert f"mock_server.domain.{name}" in DOMAIN_MODULES


class TestLifecycleTable:
    def test_transitions_are_the_documented_ones(self) -> None:
        """submitted -> processing -> succeed | failed, and nothing leaves a terminal status."""
        assert dict(TRANSITIONS) == {
            TaskStatus.SUBMITTED: (TaskStatus.PROCESSING,),
            TaskStatus.PROCESSING: (TaskStatus.SUCCEED, TaskStatus.FAILED),
            TaskStatus.SUCCEED: (),
            TaskStatus.FAILED: (),
        }

    def test_every_transition_moves_forward(self) -> None:
        """Each allowed transition increases the status order, so statuses never go back."""
        for source, targets in TRANSITIONS.items():
            for target in targets:
                assert ORDER[target] > ORDER[source]
            assert (targets == ()) is source.terminal

    def test_submitted_steps_to_processing_at_its_due_time(self) -> None:
        """The first step is to processing, stamped when it was due rather than when observed."""
        task = step(make_task("1", created_at_ms=100), fixed_video_id)
        assert (task.status, task.updated_at_ms) == (TaskStatus.PROCESSING, 1100)
        assert task.result_video_id is None
        assert task.next_due_ms() == 4100

    def test_processing_steps_to_success_with_a_result(self) -> None:
        """Success stamps the due time, a result video id and the deduction units."""
        processing = make_task("1", status=TaskStatus.PROCESSING, length_ms=12_000)
        done = step(processing, fixed_video_id)
        assert done.status is TaskStatus.SUCCEED
        assert (done.updated_at_ms, done.result_video_id, done.units) == (4000, "777", "3")
        assert done.next_due_ms() is None

    def test_processing_steps_to_failure_with_a_message(self) -> None:
        """A failing outcome ends in failed with its message, or "failed" when none is given."""
        for message, expected in (("policy", "policy"), ("", "failed")):
            outcome = Outcome(1000, 3000, TaskStatus.FAILED, message)
            task = make_task("1", status=TaskStatus.PROCESSING, outcome=outcome)
            failed = step(task, fixed_video_id)
            assert (failed.status, failed.status_msg) == (TaskStatus.FAILED, expected)
            assert failed.result_video_id is None and failed.units == "0"

    @pytest.mark.parametrize("status", [TaskStatus.SUCCEED, TaskStatus.FAILED])
    def test_terminal_tasks_do_not_step(self, status: TaskStatus) -> None:
        """Stepping a finished task returns it unchanged."""
        task = make_task("1", status=status)
        assert step(task, fixed_video_id) is task

    def test_outcome_processing_stays_processing(self) -> None:
        """An outcome of `processing` keeps a task processing forever (a stuck job)."""
        outcome = Outcome(1000, 3000, TaskStatus.PROCESSING)
        task = make_task("1", status=TaskStatus.PROCESSING, outcome=outcome)
        assert step(task, fixed_video_id) is task

    @pytest.mark.parametrize(
        ("length_ms", "units"), [(2000, "1"), (5000, "1"), (5001, "2"), (60_000, "12")]
    )
    def test_units_per_started_five_seconds(self, length_ms: int, units: str) -> None:
        """One unit per started 5 s of inserted sound, at least one."""
        assert units_for(make_task("1", length_ms=length_ms)) == units

    def test_result_expires_30_days_after_success(self) -> None:
        """Results are kept for 30 days after the task finished, then gone."""
        done = dataclasses.replace(make_task("1"), status=TaskStatus.SUCCEED, updated_at_ms=50)
        assert not result_expired(done, 50 + RESULT_TTL_MS - 1)
        assert result_expired(done, 50 + RESULT_TTL_MS)
        assert not result_expired(make_task("2"), 50 + RESULT_TTL_MS)


# -- determinism ----------------------------------------------------------------------------


def _session_of(response: bytes) -> str:
    session: str = json.loads(response)["data"]["session_id"]
    return session


def _scenario(client: TestClient, pause_s: float) -> Iterator[bytes]:
    """One fixed request sequence; `pause_s` lets the background ticker fire transitions."""
    backend = mock_of(client).backend
    identified = client.post(
        "/v1/videos/identify-face", json={"video_url": "https://example.com/speaker.mp4"}
    )
    yield identified.content
    session = _session_of(identified.content)
    yield client.post(
        "/v1/audio/tts", json={"text": "a" * 50, "voice_id": "uk_boy1", "voice_language": "en"}
    ).content
    bodies = [
        create_body(session),
        create_body(session, external_task_id="order-1", watermark_info={"enabled": True}),
        create_body(
            session, face_choose=[face_choose(sound_file=b64_audio(2500), sound_end_time=2500)]
        ),
    ]
    task_ids = []
    for body in bodies:
        created = client.post("/v1/videos/advanced-lip-sync", json=body)
        task_ids.append(json.loads(created.content)["data"]["task_id"])
        yield created.content
        backend.advance_clock(700)
    yield client.post("/v1/videos/advanced-lip-sync", json=bodies[1]).content  # refused
    for advance_ms in (0, 1500, 5000):
        backend.advance_clock(advance_ms)
        time.sleep(pause_s)
        for task_id in task_ids:
            yield client.get(f"/v1/videos/advanced-lip-sync/{task_id}").content
        yield client.get("/v1/videos/advanced-lip-sync", params={"pageSize": 2}).content
    yield client.get("/v1/videos/advanced-lip-sync/order-1").content
    yield client.get("/nowhere").content


class TestDeterminism:
    def test_same_seed_and_manual_clock_give_identical_bytes(self) -> None:
        """Two fresh mocks with one seed answer the same requests with the same bytes,
        whether or not the background ticker fired transitions before the reads."""
        runs = []
        for pause_s in (0.0, 0.35):
            with TestClient(create_app(manual_config(seed=42)), headers=AUTH) as c:
                runs.append(list(_scenario(c, pause_s)))
        assert len(runs[0]) == len(runs[1])
        for i, (first, second) in enumerate(zip(*runs, strict=True)):
            assert first == second, f"response {i} differs"

    def test_another_seed_gives_other_ids(self) -> None:
        """The seed is what fixes the ids: another seed gives another session id."""
        sessions = []
        for seed in (1, 2):
            with TestClient(create_app(manual_config(seed=seed)), headers=AUTH) as c:
                sessions.append(_session_of(next(_scenario(c, 0.0))))
        assert sessions[0] != sessions[1]


class TestStoreUnderTest:
    def test_in_process_mocks_use_the_named_store(self, client: TestClient) -> None:
        """In-process mocks run on the store LIPSYNC_TEST_STORE names (memory by default)."""
        expected = {"memory": "MemoryStore", "sqlite": "SqliteStore"}[TEST_STORE]
        assert mock_of(client).backend.store_kind == expected


class TestRuleBook:
    def test_registry_and_spec_name_the_same_domain_rules(self) -> None:
        """Every `check: domain` rule of the spec has one function, and no function is extra."""
        from mock_server.domain.rules import REGISTRY, RuleBook
        from mock_server.spec import load_spec

        spec = load_spec()
        domain = {r.id for r in spec.rules.values() if r.check == "domain"}
        assert set(REGISTRY) == domain
        RuleBook(spec.rules.values())  # does not raise

    def test_a_spec_without_a_registered_rule_is_refused_at_start(self) -> None:
        """A rule added to the spec without its function fails loudly, not silently unchecked."""
        from mock_server.domain.rules import RuleBook, SpecRule

        with pytest.raises(ValueError, match="no function for \\['new-rule'\\]"):
            RuleBook([SpecRule("new-rule", "domain", 1201)])

    def test_the_rules_bounds_are_the_spec_boundaries(self) -> None:
        """The limits the rule functions use are the `boundary` values the spec publishes."""
        from mock_server.domain import rules
        from mock_server.spec import load_spec

        b = {r.id: r.boundary for r in load_spec().rules.values()}
        assert b["sound-duration"] == [rules.MIN_MEDIA_MS, rules.MAX_MEDIA_MS]
        assert b["video-duration"] == [rules.MIN_MEDIA_MS, rules.MAX_MEDIA_MS]
        assert b["video-resolution"] == [rules.MIN_SIDE, rules.MAX_SIDE]
        assert b["sound-size"] == rules.MAX_SOUND_BYTES
        assert b["video-size"] == rules.MAX_VIDEO_BYTES
        assert b["crop-min-length"] == rules.MIN_CROP_MS
        assert b["insert-face-overlap"] == rules.MIN_OVERLAP_MS

    def test_rules_run_in_the_spec_order_within_a_stage(self) -> None:
        """With two rules broken, the one the spec lists first is the one reported."""
        from mock_server.domain.errors import ApiError
        from mock_server.domain.rules import DomainRule, RuleBook, SpecRule, Stage

        registry = {
            "b": DomainRule("b", "op", Stage.REQUEST, lambda c: "b broken"),
            "a": DomainRule("a", "op", Stage.REQUEST, lambda c: "a broken"),
        }
        book = RuleBook([SpecRule("a", "domain", 1201), SpecRule("b", "domain", 1203)], registry)
        with pytest.raises(ApiError) as caught:
            book.check("op", Stage.REQUEST, object())
        assert (caught.value.rule, caught.value.code) == ("a", 1201)
        book.replace("a", lambda c: None)
        with pytest.raises(ApiError) as caught:
            book.check("op", Stage.REQUEST, object())
        assert (caught.value.rule, caught.value.code) == ("b", 1203)
        book.check("op", Stage.MEDIA, object())  # nothing registered there: nothing raised

    def test_the_media_stage_context_is_the_request_one_with_its_media(self) -> None:
        """CreateContext.with_media is dataclasses.replace spelt out: every field carried over."""
        from mock_server.domain.models import Audio, AudioId, AudioMeta, MetaSource, Session
        from mock_server.domain.resolver import derive_video
        from mock_server.domain.rules import CreateContext, MediaFacts

        session = Session(
            SessionId("1"), AccountId("a"), "v", "https://x/v.mp4", derive_video("k"), 5
        )
        ctx = CreateContext(
            "face_choose[0]", "1", "0", "7", "https://x/s.mp3", 10, 3010, 20, "https://cb",
            "ext", 30, session, True, lambda url: url == "self", None, None,
        )  # fmt: skip
        # A field added to CreateContext must be added to with_media too.
        assert len(dataclasses.fields(CreateContext)) == 16
        audio = Audio(AudioId("7"), None, AudioMeta(4000, 1, "mp3", MetaSource.FIXTURE), 1)
        facts = MediaFacts("face_choose[0].sound_file", "https://x/s.mp3", duration_ms=4000)
        for now, a, s in ((31, audio, None), (32, None, facts), (33, audio.meta, None)):
            assert ctx.with_media(now, a, s) == dataclasses.replace(
                ctx, now_ms=now, audio=a, sound=s
            )

    @pytest.mark.parametrize(
        ("width", "height"),
        [(1280, 720), (720, 1280), (1920, 1080), (512, 720), (511, 720), (2160, 1080),
         (2161, 1080), (1000, 1000), (720, 720), (1080, 2160), (600, 600), (0, 0)],
    )  # fmt: skip
    def test_video_resolution_is_720p_or_1080p_within_the_sides(
        self, width: int, height: int
    ) -> None:
        """A side of 720 or 1080, both sides within [512, 2160]: the documented rule."""
        from mock_server.domain.rules import IdentifyContext, MediaFacts, video_resolution

        facts = MediaFacts("video_url", "u", width=width, height=height)
        kept = video_resolution(IdentifyContext("", "u", 0, facts)) is None
        sides = (width, height)
        assert kept == (all(512 <= s <= 2160 for s in sides) and bool({720, 1080} & set(sides)))


class TestClock:
    @pytest.mark.parametrize("speed", [0, -1, 1e308, float("inf"), float("nan"), True, "fast"])
    def test_speeds_that_cannot_run_are_refused(self, speed: object) -> None:
        """A speed that is not a positive finite number up to MAX_SPEED is a ValueError, and
        the clock keeps its old speed."""
        clock = Clock(ClockMode.MANUAL, 2.0, 0)
        with pytest.raises(ValueError, match="clock speed"):
            clock.set_mode(ClockMode.REAL, speed)  # type: ignore[arg-type]
        assert (clock.mode, clock.speed) == (ClockMode.MANUAL, 2.0)

    def test_a_speed_of_1e308_is_refused_by_the_control_api(self, client: TestClient) -> None:
        """POST /__admin/clock {"speed": 1e308} is 1201 naming the bound; the API still works."""
        r = client.post("/__admin/clock", json={"mode": "real", "speed": 1e308})
        assert r.status_code == 400 and r.json()["code"] == 1201, r.text
        assert "speed: 1e+308 is greater than the maximum of 1000000" in r.json()["message"]
        assert client.get("/v1/videos/advanced-lip-sync").json()["code"] == 0

    def test_every_change_reaches_the_listeners(self) -> None:
        """advance, set_time, set_mode, reset and restore each tell the listeners the state."""
        clock = Clock(ClockMode.MANUAL, 1.0, 1000)
        seen: list[ClockState] = []
        clock.listeners.append(seen.append)
        clock.advance(5)
        clock.set_time(2000)
        clock.set_mode(ClockMode.MANUAL, 3.0)
        clock.reset(ClockMode.MANUAL, 1.0, 7)
        clock.restore(ClockState(ClockMode.MANUAL, 4.0, 9000, 0.0))
        assert [(s.anchor_ms, s.speed) for s in seen] == [
            (1005, 1.0),
            (2000, 1.0),
            (2000, 3.0),
            (7, 1.0),
            (9000, 4.0),
        ]
        assert seen[-1] == clock.state() and clock.now_ms() == 9000

    def test_a_wall_clock_set_back_does_not_move_the_timeline_back(self) -> None:
        """A real-mode state saved with a wall time in the future resumes at its anchor."""
        clock = Clock()
        clock.restore(ClockState(ClockMode.REAL, 1.0, 5_000, time.time() + 3600))
        assert 5_000 <= clock.now_ms() < 6_000
