"""The backend on its own: a memory store, a manual clock, no HTTP, no Starlette."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mock_server.domain.backend import (
    CreateTaskInput,
    FaceChooseInput,
    IdentifyFaceInput,
    LipSyncBackend,
    Phases,
    StartState,
)
from mock_server.domain.clock import Clock, ClockMode
from mock_server.domain.errors import ApiError
from mock_server.domain.fixtures import FixtureSet
from mock_server.domain.ids import IdSource
from mock_server.domain.models import AccountId, AudioMeta, MetaSource, TaskEvent, TaskStatus
from mock_server.domain.resolver import MediaResolver
from mock_server.domain.rules import RuleBook
from mock_server.domain.store import MemoryStore
from mock_server.spec import load_spec

ME = AccountId("me")
T0 = 1_722_769_557_708
VIDEO = "https://example.com/speaker.mp4"
SOUND = "https://example.com/speech.mp3"  # registered below: 5 s of mp3


async def _no_fetch(url: str, limit: int) -> bytes:
    raise AssertionError(f"nothing is fetched in these tests: {url}")


async def _no_own_files(url: str) -> bytes | None:
    return None


def backend(fetch: Callable[[str, int], Awaitable[bytes]] = _no_fetch) -> LipSyncBackend:
    spec = load_spec()
    fixtures = FixtureSet()

    def load(into: FixtureSet, faults: object) -> None:
        into.audios_by_url[SOUND] = AudioMeta(5000, 80_000, "mp3", MetaSource.FIXTURE)

    return LipSyncBackend(
        store=MemoryStore(),
        clock=Clock(ClockMode.MANUAL, 1.0, T0),
        ids=IdSource(3),
        resolver=MediaResolver(fixtures, fetch=fetch, own_files=_no_own_files),
        fixtures=fixtures,
        rules=RuleBook(spec.rules.values()),
        phases=Phases(1000, 3000),
        voices=spec.voices,
        start=StartState(ClockMode.MANUAL, 1.0, T0, 3),
        load_fixtures=load,
    )


def choose(face_id: str = "0", sound: str = SOUND, **overrides: int) -> FaceChooseInput:
    values = {"start_ms": 0, "end_ms": 3000, "insert_ms": 0, **overrides}
    return FaceChooseInput(face_id, "", sound, sound_volume=1.0, original_volume=1.0, **values)


def create(b: LipSyncBackend, session_id: str, face: FaceChooseInput, external: str = "") -> Any:
    return asyncio.run(
        b.create_lip_sync_task(ME, CreateTaskInput(session_id, face, False, external, ""))
    )


def identify(b: LipSyncBackend) -> str:
    session = asyncio.run(b.identify_face(ME, IdentifyFaceInput("", VIDEO)))
    return session.session_id


class TestOperations:
    def test_a_task_runs_its_lifecycle_on_the_manual_clock(self) -> None:
        """identify -> create -> submitted; 1 s -> processing; 3 s more -> succeed with a
        result video, each transition stamped at its due time and announced to listeners."""
        b = backend()
        events: list[TaskEvent] = []
        b.on_event(events.append)
        task = create(b, identify(b), choose())
        assert task.status is TaskStatus.SUBMITTED and task.created_at_ms == T0
        assert b.advance_clock(999) == []
        moved = b.advance_clock(1)
        assert [(e.previous, e.task.status) for e in moved] == [
            (TaskStatus.SUBMITTED, TaskStatus.PROCESSING)
        ]
        b.advance_clock(3000)
        done = b.get_lip_sync_task(ME, task.task_id)
        assert done.status is TaskStatus.SUCCEED and done.updated_at_ms == T0 + 4000
        assert done.result_video_id is not None
        assert [e.task.status for e in events] == [
            TaskStatus.SUBMITTED,
            TaskStatus.PROCESSING,
            TaskStatus.SUCCEED,
        ]

    def test_base64_audio_is_kept_under_its_content_hash(self) -> None:
        """The resolver hashes the decoded audio once; the blob store keeps it under that key,
        for the first create and for one that sends the same string again (a cache hit)."""
        import base64

        from mock_server import media
        from mock_server.domain.store import blob_key

        b = backend()
        audio = media.make_audio(media.MediaFormat.MP3, 3000)
        session_id = identify(b)
        for _ in range(2):
            task = create(b, session_id, choose(sound=base64.b64encode(audio).decode()))
            assert task.sound.blob == blob_key(audio)
            assert b.blob(task.sound.blob) == audio

    def test_rules_come_from_the_registry_with_the_spec_codes(self) -> None:
        """A broken request is refused by the rule book: the rule id and code of the spec."""
        b = backend()
        session_id = identify(b)
        with pytest.raises(ApiError) as caught:
            create(b, session_id, choose(end_ms=1500))
        assert (caught.value.rule, caught.value.code) == ("crop-min-length", 1201)
        with pytest.raises(ApiError) as caught:
            create(b, "no-such-session", choose())
        assert (caught.value.rule, caught.value.code) == ("session-known", 1201)
        with pytest.raises(ApiError) as caught:
            b.get_lip_sync_task(ME, "nothing")
        assert (caught.value.rule, caught.value.code) == ("task-exists", 1203)

    def test_a_swapped_rule_changes_what_is_refused(self) -> None:
        """RuleBook.replace is the seam a broken build uses: one rule, nothing else."""
        b = backend()
        session_id = identify(b)
        b.advance_clock(86_400_000)  # the session is now 24 hours old
        with pytest.raises(ApiError) as caught:
            create(b, session_id, choose())
        assert caught.value.rule == "session-valid"
        b._rules.replace("session-valid", lambda c: None)
        assert create(b, session_id, choose()).status is TaskStatus.SUBMITTED


class TestReset:
    def test_reset_forgets_state_and_returns_to_the_start(self) -> None:
        """After a reset: no task, no session, the start-up clock, the fixtures reloaded."""
        b = backend()
        session_id = identify(b)
        create(b, session_id, choose())
        b.advance_clock(10_000)
        hooks: list[str] = []
        b.on_reset(lambda: hooks.append("called"))
        b.reset()
        assert b.list_lip_sync_tasks(None, 1, 10) == []
        assert b.clock_state().now_ms == T0
        assert hooks == ["called"]
        with pytest.raises(ApiError) as caught:
            create(b, session_id, choose())
        assert caught.value.rule == "session-known"
        assert create(b, identify(b), choose()).status is TaskStatus.SUBMITTED  # fixture back

    def test_a_create_awaiting_its_media_during_a_reset_does_not_land(self) -> None:
        """The sound is fetched while a reset happens: the create is refused (session-known)
        and leaves no task behind."""
        fetching = asyncio.Event()
        release = asyncio.Event()

        async def slow_fetch(url: str, limit: int) -> bytes:
            fetching.set()
            await release.wait()
            return b"never probed"

        b = backend(slow_fetch)
        session_id = identify(b)

        async def main() -> ApiError:
            face = choose(sound="http://127.0.0.1:9/speech.mp3")
            inp = CreateTaskInput(session_id, face, False, "", "")
            create_task = asyncio.create_task(b.create_lip_sync_task(ME, inp))
            await fetching.wait()
            b.reset()
            release.set()
            with pytest.raises(ApiError) as caught:
                await create_task
            return caught.value

        error = asyncio.run(main())
        assert error.rule == "session-known"
        assert b.list_lip_sync_tasks(None, 1, 10) == []
