"""The lip-sync backend: one method per API operation and per control-API action.

It owns its parts (store, clock, ids, resolver, fixtures, faults, rule book): the web layer
calls its methods and never reaches through to them. A create runs forward: the request's
rules, then the media, then the media's rules, then the store.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import media
from .clock import Clock, ClockMode
from .errors import RESOURCE_DEPLETED, ApiError
from .faults import Fault, FaultRegistry
from .fixtures import FixtureSet
from .ids import IdSource
from .lifecycle import step
from .models import (
    EVERY_ENTRY,
    AccountId,
    Audio,
    AudioId,
    AudioMeta,
    BlobKey,
    DeliveryAttempt,
    JournalEntry,
    JournalQuery,
    MetaSource,
    Outcome,
    ParentVideo,
    Session,
    SessionId,
    SoundChoice,
    Task,
    TaskEvent,
    TaskId,
    TaskStatus,
    VideoId,
    VideoMeta,
)
from .resolver import MediaResolver, video_facts
from .rules import (
    CreateContext,
    IdentifyContext,
    MediaFacts,
    QueryContext,
    RuleBook,
    Stage,
    TtsContext,
)
from .store import DuplicateExternalId, Store


@dataclass(frozen=True, slots=True)
class IdentifyFaceInput:
    video_id: str
    video_url: str


@dataclass(frozen=True, slots=True)
class FaceChooseInput:
    face_id: str
    audio_id: str
    sound_file: str
    start_ms: int
    end_ms: int
    insert_ms: int
    sound_volume: float
    original_volume: float


@dataclass(frozen=True, slots=True)
class CreateTaskInput:
    session_id: str
    face: FaceChooseInput
    watermark: bool
    external_task_id: str
    callback_url: str


@dataclass(frozen=True, slots=True)
class TtsInput:
    text: str
    voice_id: str
    voice_language: str
    voice_speed: float


@dataclass(frozen=True, slots=True)
class Phases:
    """Default time a task spends in `submitted` and in `processing`."""

    submitted_ms: int = 1000
    processing_ms: int = 3000
    # When set, each task draws its own durations instead (`--submit-delay-dist`, ...).
    draw_submitted: Callable[[], int] | None = None
    draw_processing: Callable[[], int] | None = None

    def planned(self) -> tuple[int, int]:
        """The durations of one new task's phases."""
        return (
            self.submitted_ms if self.draw_submitted is None else self.draw_submitted(),
            self.processing_ms if self.draw_processing is None else self.draw_processing(),
        )


@dataclass(frozen=True, slots=True)
class StartState:
    """What a reset returns to: the start-up clock and seed."""

    clock_mode: ClockMode = ClockMode.REAL
    clock_speed: float = 1.0
    clock_start_ms: int | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """How many tasks and sessions the mock keeps at most (every account together)."""

    max_tasks: int = 1_000_000
    max_sessions: int = 1_000_000


@dataclass(frozen=True, slots=True)
class ClockState:
    now_ms: int
    mode: ClockMode
    speed: float
    next_due_ms: int | None


Listener = Callable[[TaskEvent], None]
ResetHook = Callable[[], None]
FixtureLoader = Callable[[FixtureSet, FaultRegistry], None]


FACE_FIELD = "face_choose[0]"  # the API takes exactly one face
SOUND_FIELD = f"{FACE_FIELD}.sound_file"


def result_video_id(task_id: TaskId) -> VideoId:
    """The result video's 18-digit id, derived from the task id.

    Not drawn from the seeded id source: transitions fire from the ticker as well as from
    requests, so a draw here would make every later id depend on wall-clock timing.
    """
    digest = hashlib.sha256(f"result-video:{task_id}".encode()).digest()
    return VideoId(str(10**17 + int.from_bytes(digest[:8], "big") % (9 * 10**17)))


class LipSyncBackend:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        ids: IdSource,
        resolver: MediaResolver,
        fixtures: FixtureSet,
        rules: RuleBook,
        phases: Phases,
        voices: Mapping[str, str],
        start: StartState = StartState(),
        load_fixtures: FixtureLoader = lambda fixtures, faults: None,
        limits: Limits = Limits(),
    ) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids
        self._resolver = resolver
        self._fixtures = fixtures
        self._rules = rules
        self._phases = phases
        self._voices = dict(voices)
        self._start = start
        self._load_fixtures = load_fixtures
        self._limits = limits
        self._tasks_kept = store.count_tasks(None)  # counted here: SQLite's COUNT(*) is O(n)
        self._sessions_kept = store.count_sessions()
        self._faults = FaultRegistry()
        self._listeners: list[Listener] = []
        self._reset_hooks: list[ResetHook] = []
        self._generation = 0  # bumped by reset: work begun before it must not land after it
        load_fixtures(fixtures, self._faults)

    # -- wiring ------------------------------------------------------------------------------

    def on_event(self, listener: Listener) -> None:
        """Call `listener` with every status change (the callback dispatcher)."""
        self._listeners.append(listener)

    def on_reset(self, hook: ResetHook) -> None:
        """Call `hook` on every reset (journal, callbacks, caches of rendered files)."""
        self._reset_hooks.append(hook)

    def close(self) -> None:
        self._store.close()

    # -- API operations ------------------------------------------------------------------------

    async def identify_face(self, account: AccountId, inp: IdentifyFaceInput) -> Session:
        op = "identifyFace"
        ctx = IdentifyContext(inp.video_id, inp.video_url, self._clock.now_ms())
        self._rules.check(op, Stage.REQUEST, ctx)
        if inp.video_url:
            resolved = await self._resolver.video_from_url(inp.video_url)
            facts, video = resolved.facts, resolved.meta
        else:
            video = self._video_by_id(account, inp.video_id)
            facts = (
                MediaFacts("video_id", inp.video_id, known=False)
                if video is None
                else video_facts(video, "video_id", inp.video_id)
            )
        now = self._clock.now_ms()
        self._rules.check(op, Stage.MEDIA, IdentifyContext(inp.video_id, inp.video_url, now, facts))
        assert video is not None  # no rule broken: the media resolved
        sid = SessionId(
            video.session_id
            or self._ids.unused_numeric(
                lambda i: self._store.get_session(account, SessionId(i)) is not None
            )
        )
        session = Session(sid, account, inp.video_id, inp.video_url, video, now)
        new = self._store.get_session(account, sid) is None
        if new and self._sessions_kept >= self._limits.max_sessions:
            raise self._full("sessions", self._limits.max_sessions, "--max-sessions")
        self._store.put_session(session)
        self._sessions_kept += new
        return session

    @staticmethod
    def _full(what: str, limit: int, option: str) -> ApiError:
        return ApiError(
            RESOURCE_DEPLETED,
            f"the mock keeps at most {limit} {what} ({option}), and holds that many: "
            "POST /__admin/reset, or start it with a larger limit",
        )

    def _video_by_id(self, account: AccountId, video_id: str) -> VideoMeta | None:
        """A result video of this account's succeeded tasks, a registered video, or None."""
        task = self._store.task_by_result_video(VideoId(video_id))
        if task is None or task.account != account or task.status is not TaskStatus.SUCCEED:
            return self._resolver.video_from_id(video_id)  # another account's video is not ours
        parent = self._store.get_session(task.account, task.session_id)
        return VideoMeta(
            duration_ms=task.parent.duration_ms,
            width=task.parent.width,
            height=task.parent.height,
            size_bytes=task.parent.duration_ms * 250,
            format="mp4",
            faces=parent.video.faces if parent else (),
            source=MetaSource.GENERATED,
            created_at_ms=task.updated_at_ms,
        )

    async def create_lip_sync_task(self, account: AccountId, inp: CreateTaskInput) -> Task:
        op = "createLipSyncTask"
        generation = self._generation
        fc = inp.face
        ctx = CreateContext(
            field=FACE_FIELD,
            session_id=inp.session_id,
            face_id=fc.face_id,
            audio_id=fc.audio_id,
            sound_file=fc.sound_file,
            start_ms=fc.start_ms,
            end_ms=fc.end_ms,
            insert_ms=fc.insert_ms,
            callback_url=inp.callback_url,
            external_task_id=inp.external_task_id,
            now_ms=self._clock.now_ms(),
            session=self._store.get_session(account, SessionId(inp.session_id)),
            external_task_taken=self._external_id_taken(account, inp.external_task_id),
            own_address=self._resolver.own_address,
        )
        self._rules.check(op, Stage.REQUEST, ctx)
        data: bytes | None = None
        data_key: BlobKey | None = None
        audio_meta: AudioMeta | None
        if fc.audio_id:
            audio = self._audio_by_id(account, fc.audio_id)
            ctx = ctx.with_media(ctx.now_ms, audio, None)
            audio_meta = audio.meta if isinstance(audio, Audio) else audio
        else:
            sound = await self._resolver.sound(fc.sound_file, SOUND_FIELD)
            ctx = ctx.with_media(self._clock.now_ms(), None, sound.facts)
            audio_meta, data, data_key = sound.meta, sound.data, sound.key
        if generation != self._generation:  # a reset while the media resolved: look again
            ctx = dataclasses.replace(
                ctx,
                session=self._store.get_session(account, SessionId(inp.session_id)),
                external_task_taken=self._external_id_taken(account, inp.external_task_id),
            )
            self._rules.check(op, Stage.REQUEST, ctx)
        self._rules.check(op, Stage.MEDIA, ctx)
        assert audio_meta is not None and ctx.face is not None
        session, now = ctx.session, self._clock.now_ms()
        assert session is not None
        self._faults.check_in_flight(account, self._store.count_in_flight(account))
        blob = self._store.put_blob(data, data_key) if data is not None else audio_meta.blob
        task = Task(
            task_id=TaskId(
                self._ids.unused_numeric(lambda i: self._store.get_task(TaskId(i)) is not None)
            ),
            account=account,
            external_task_id=inp.external_task_id,
            session_id=session.session_id,
            face_id=fc.face_id,
            parent=ParentVideo(
                session.video_id,
                session.video_url,
                session.video.duration_ms,
                session.video.width,
                session.video.height,
            ),
            sound=SoundChoice(
                blob=blob,
                audio_duration_ms=audio_meta.duration_ms,
                start_ms=fc.start_ms,
                end_ms=fc.end_ms,
                insert_ms=fc.insert_ms,
                sound_volume=fc.sound_volume,
                original_volume=fc.original_volume,
            ),
            watermark=inp.watermark,
            callback_url=inp.callback_url,
            outcome=self._outcome_for(account, inp.external_task_id, session.video_url),
            status=TaskStatus.SUBMITTED,
            status_msg="",
            created_at_ms=now,
            updated_at_ms=now,
        )
        if self._tasks_kept >= self._limits.max_tasks:
            raise self._full("tasks", self._limits.max_tasks, "--max-tasks")
        try:
            self._store.insert_task(task)
        except DuplicateExternalId:  # a concurrent create took it between check and insert
            self._rules.check(op, Stage.REQUEST, dataclasses.replace(ctx, external_task_taken=True))
            raise
        self._tasks_kept += 1
        self._emit(TaskEvent(task, None))
        return task

    def _external_id_taken(self, account: AccountId, external_id: str) -> bool:
        return (
            bool(external_id) and self._store.task_by_external_id(account, external_id) is not None
        )

    def _audio_by_id(self, account: AccountId, audio_id: str) -> Audio | AudioMeta | None:
        fixture = self._fixtures.audios_by_id.get(audio_id)
        if fixture is not None:
            return fixture
        audio = self._store.get_audio(AudioId(audio_id))
        if audio is None or audio.account not in (None, account):
            return None
        return audio

    def _outcome_for(self, account: AccountId, external_id: str, video_url: str) -> Outcome:
        rule = self._fixtures.outcome_for(external_id, video_url)
        submitted_ms, processing_ms = self._phases.planned()
        if rule is None:
            outcome = Outcome(submitted_ms, processing_ms)
        else:
            outcome = Outcome(
                submitted_ms if rule.submitted_ms is None else rule.submitted_ms,
                processing_ms if rule.processing_ms is None else rule.processing_ms,
                rule.status,
                rule.message,
            )
        return self._faults.outcome_for(account, external_id, outcome)

    def get_lip_sync_task(self, account: AccountId, task_or_external_id: str) -> Task:
        self.advance()
        task = self._store.get_task(TaskId(task_or_external_id))
        if task is None or task.account != account:
            task = self._store.task_by_external_id(account, task_or_external_id)
        self._rules.check("getLipSyncTask", Stage.REQUEST, QueryContext(task_or_external_id, task))
        assert task is not None
        return task

    def list_lip_sync_tasks(
        self,
        account: AccountId | None,
        page_num: int,
        page_size: int,
        external_task_id: str = "",
    ) -> list[Task]:
        """A page of an account's tasks, newest first; account None: every account's.

        With `external_task_id`, only the account's task of that id (at most one: the id is
        unique per account), paged the same way."""
        self.advance()
        offset = (page_num - 1) * page_size
        if external_task_id and account is not None:
            task = self._store.task_by_external_id(account, external_task_id)
            return [task][offset : offset + page_size] if task is not None else []
        return self._store.list_tasks(account, offset, page_size)

    def create_tts(self, account: AccountId, inp: TtsInput) -> Audio:
        ctx = TtsContext(inp.voice_id, inp.voice_language, self._voices.get(inp.voice_id))
        self._rules.check("createTts", Stage.REQUEST, ctx)
        speed = round(min(2.0, max(0.8, inp.voice_speed)), 1)
        data = media.synthesize_speech(inp.text, speed)
        meta = AudioMeta(
            duration_ms=media.speech_duration_ms(inp.text, speed),
            size_bytes=len(data),
            format="mp3",
            source=MetaSource.GENERATED,
            blob=self._store.put_blob(data),
        )
        audio_id = self._ids.unused_numeric(lambda i: self._store.get_audio(AudioId(i)) is not None)
        # The task and its audio are two ids, as documented: a client that sends the task id
        # as audio_id is refused (audio-id-known), as the real service would.
        task_id = self._ids.unused_numeric(
            lambda i: i == audio_id or self._store.get_audio(AudioId(i)) is not None
        )
        audio = Audio(AudioId(audio_id), account, meta, self._clock.now_ms(), task_id)
        self._store.put_audio(audio)
        return audio

    # -- what the file server needs ------------------------------------------------------------

    def now_ms(self) -> int:
        return self._clock.now_ms()

    def request_id(self) -> str:
        return self._ids.request_id()

    def audio_bytes(self, audio_id: str) -> bytes | None:
        """The MP3 of a TTS audio, or None."""
        audio = self._store.get_audio(AudioId(audio_id))
        if audio is None or audio.meta.blob is None:
            return None
        return self._store.get_blob(audio.meta.blob)

    def result_task(self, video_id: str) -> Task | None:
        """The task whose result video this is, when it succeeded."""
        task = self._store.task_by_result_video(VideoId(video_id))
        if task is None or task.status is not TaskStatus.SUCCEED:
            return None
        return task

    def blob(self, key: BlobKey) -> bytes | None:
        return self._store.get_blob(key)

    # -- time ----------------------------------------------------------------------------------

    def advance(self) -> list[TaskEvent]:
        """Fire every transition due by now, in due order; return the status changes."""
        now = self._clock.now_ms()
        events: list[TaskEvent] = []
        while due := self._store.pop_due(now):
            for tid in due:
                task = self._store.get_task(tid)
                if task is None:
                    continue
                new = step(task, functools.partial(result_video_id, tid))
                if new is task:
                    continue
                self._store.save_task(new)
                events.append(TaskEvent(new, task.status))
        for event in events:
            self._emit(event)
        return events

    def clock_state(self) -> ClockState:
        return ClockState(
            self._clock.now_ms(), self._clock.mode, self._clock.speed, self._store.next_due_ms()
        )

    def set_clock(
        self, mode: ClockMode | None, speed: float | None, now_ms: int | None
    ) -> list[TaskEvent]:
        """Switch mode/speed and/or jump to `now_ms` (never back); due transitions fire."""
        if mode is not None or speed is not None:
            self._clock.set_mode(mode or self._clock.mode, speed)
        if now_ms is not None:
            self._clock.set_time(now_ms)
        return self.advance()

    def advance_clock(self, ms: int) -> list[TaskEvent]:
        """Move time forward by `ms`; every transition due fires, stamped at its due time."""
        self._clock.advance(ms)
        return self.advance()

    def seconds_until_next_due(self) -> float | None:
        """Real seconds until the next transition is due; None when none is scheduled."""
        due = self._store.next_due_ms()
        return None if due is None else self._clock.wall_seconds_until(due)

    def stored_tasks(self) -> int:
        return self._store.count_tasks(None)

    def in_flight(self, account: AccountId) -> int:
        """The account's tasks not yet finished (what concurrency limits count)."""
        return self._store.count_in_flight(account)

    @property
    def store_kind(self) -> str:
        """The store's class name (MemoryStore, SqliteStore)."""
        return type(self._store).__name__

    # -- control: state, fixtures, faults ------------------------------------------------------

    def reset(self) -> None:
        """Forget every task, session, audio, record, fault, fixture and derived cache; back to
        the start-up clock, seed and fixtures file. Work in flight does not land afterwards."""
        self._generation += 1
        self._store.reset()
        self._tasks_kept = self._sessions_kept = 0
        self._fixtures.clear()
        self._faults.clear()
        self._resolver.clear()
        self._load_fixtures(self._fixtures, self._faults)
        self._ids.reseed(self._start.seed)
        self._clock.reset(
            self._start.clock_mode, self._start.clock_speed, self._start.clock_start_ms
        )
        for hook in self._reset_hooks:
            hook()

    def fixtures(self) -> FixtureSet:
        """The registered media and outcomes (read them; change them with add/clear)."""
        return self._fixtures

    def add_fixtures(
        self, apply: Callable[[FixtureSet], None], doc: Any, faults: Sequence[Fault]
    ) -> None:
        """Register a parsed fixtures document: `apply` adds it to the set, `doc` is kept
        for a restart, `faults` are installed (not kept: their hit counts would restart)."""
        self._store.add_fixture_doc(doc)  # first: it refuses a document over its budget
        apply(self._fixtures)
        for fault in faults:
            self._faults.add(fault)

    def clear_fixtures(self) -> None:
        self._fixtures.clear()
        self._store.clear_fixture_docs()

    def faults(self) -> list[Fault]:
        return self._faults.all()

    def add_fault(self, fault: Fault) -> Fault:
        return self._faults.add(fault)

    def remove_fault(self, fault_id: str) -> bool:
        return self._faults.remove(fault_id)

    def clear_faults(self) -> None:
        self._faults.clear()

    def before_request(self, operation: str | None, path: str, account: str | None) -> int:
        """Injected latency (ms) for this request; raises an injected error or rate limit."""
        return self._faults.before_request(operation, path, account)

    # -- records -------------------------------------------------------------------------------

    def journal(self, query: JournalQuery = EVERY_ENTRY) -> list[JournalEntry]:
        """Journal entries matching `query`, oldest first; the store stops at its limit."""
        return self._store.journal(query)

    def last_deliveries(self, count: int) -> list[DeliveryAttempt]:
        """The newest `count` callback attempts, oldest first (what the dashboard shows)."""
        return self._store.last_deliveries(count)

    def last_journal_seq(self) -> int:
        return self._store.last_journal_seq()

    def deliveries(
        self, task_id: str | None = None, limit: int | None = None
    ) -> list[DeliveryAttempt]:
        return self._store.deliveries(task_id, limit)

    def _emit(self, event: TaskEvent) -> None:
        for listener in self._listeners:
            listener(event)
