"""The lip-sync backend: one method per API operation, over a store, a clock and a resolver."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .. import media
from . import rules
from .clock import Clock
from .errors import NOT_FOUND, ApiError
from .faults import FaultRegistry
from .fixtures import FixtureSet
from .ids import IdSource
from .lifecycle import step
from .models import (
    AUDIO_TTL_MS,
    RESULT_TTL_MS,
    AccountId,
    Audio,
    AudioId,
    AudioMeta,
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
from .resolver import MediaResolver, check_sound_duration
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


Listener = Callable[[TaskEvent], None]


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
        phases: Phases,
        voices: Mapping[str, str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.resolver = resolver
        self.fixtures = fixtures
        self.phases = phases
        self.voices = dict(voices)
        self.listeners: list[Listener] = []
        self.faults = FaultRegistry()

    # -- operations -------------------------------------------------------------------------

    async def identify_face(self, account: AccountId, inp: IdentifyFaceInput) -> Session:
        rules.check_exactly_one(
            inp.video_id, inp.video_url, ("video_id", "video_url"), "video-source-xor"
        )
        if inp.video_url:
            video = await self.resolver.video_from_url(inp.video_url)
        else:
            video = self._video_by_id(account, inp.video_id)
        now = self.clock.now_ms()
        sid = SessionId(
            video.session_id
            or self.ids.unused_numeric(
                lambda i: self.store.get_session(account, SessionId(i)) is not None
            )
        )
        session = Session(sid, account, inp.video_id, inp.video_url, video, now)
        self.store.put_session(session)
        return session

    def _video_by_id(self, account: AccountId, video_id: str) -> VideoMeta:
        task = self.store.task_by_result_video(VideoId(video_id))
        if task is None or task.account != account:  # another account's video is not ours
            video = self.resolver.video_from_id(video_id)
        else:
            if self.clock.now_ms() - task.updated_at_ms >= RESULT_TTL_MS:
                raise ApiError.rule_broken(
                    "video-id-recent",
                    f"video_id: video {video_id} was generated more than 30 days ago",
                )
            parent = self.store.get_session(task.account, task.session_id)
            faces = parent.video.faces if parent else ()
            video = VideoMeta(
                duration_ms=task.parent.duration_ms,
                width=task.parent.width,
                height=task.parent.height,
                size_bytes=task.parent.duration_ms * 250,
                format="mp4",
                faces=faces,
                source=MetaSource.GENERATED,
                created_at_ms=task.updated_at_ms,
            )
        if video.duration_ms > 60000:
            raise ApiError.rule_broken(
                "video-duration", f"video_id: the video lasts {video.duration_ms} ms, over 60 s"
            )
        return video

    async def create_lip_sync_task(self, account: AccountId, inp: CreateTaskInput) -> Task:
        now = self.clock.now_ms()
        session = self.store.get_session(account, SessionId(inp.session_id))
        if session is None:
            raise ApiError.rule_broken(
                "session-known",
                f"session_id: {inp.session_id!r} is not a session of this account; "
                "call identify-face first",
            )
        rules.check_session(session, now)
        fc = inp.face
        field = "face_choose[0]"
        face = session.face(fc.face_id)
        if face is None:
            known = ", ".join(f.face_id for f in session.video.faces) or "none"
            raise ApiError.rule_broken(
                "face-known",
                f"{field}.face_id: {fc.face_id!r} is not a face of session {session.session_id} "
                f"(faces: {known})",
            )
        rules.check_exactly_one(
            fc.audio_id,
            fc.sound_file,
            (f"{field}.audio_id", f"{field}.sound_file"),
            "audio-source-xor",
        )
        rules.check_crop(fc.start_ms, fc.end_ms, field)
        rules.check_callback_url(inp.callback_url)
        self._check_external_id(account, inp.external_task_id)
        if fc.audio_id:
            audio_meta = self._audio_by_id(account, fc.audio_id, field, now)
        else:
            audio_meta = await self.resolver.sound(
                fc.sound_file, f"{field}.sound_file", self.store.put_blob
            )
        rules.check_crop_end(fc.end_ms, audio_meta.duration_ms, field)
        rules.check_insert(
            fc.insert_ms, fc.end_ms - fc.start_ms, session.video.duration_ms, face, field
        )
        self._check_in_flight(account)
        task = Task(
            task_id=TaskId(
                self.ids.unused_numeric(lambda i: self.store.get_task(TaskId(i)) is not None)
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
                blob=audio_meta.blob,
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
        try:
            self.store.insert_task(task)
        except DuplicateExternalId:
            self._check_external_id(account, inp.external_task_id)
            raise
        self._emit(TaskEvent(task, None))
        return task

    def _check_external_id(self, account: AccountId, external_id: str) -> None:
        if external_id and self.store.task_by_external_id(account, external_id) is not None:
            raise ApiError.rule_broken(
                "external-task-id-unique",
                f"external_task_id: {external_id!r} is already used by another task of this "
                "account",
            )

    def _check_in_flight(self, account: AccountId) -> None:
        self.faults.check_in_flight(account, self.store.count_in_flight(account))

    def _audio_by_id(self, account: AccountId, audio_id: str, field: str, now: int) -> AudioMeta:
        fixture = self.fixtures.audios_by_id.get(audio_id)
        if fixture is not None:
            check_sound_duration(fixture.duration_ms, f"{field}.audio_id")
            return fixture
        audio = self.store.get_audio(AudioId(audio_id))
        if audio is None or audio.account not in (None, account):
            raise ApiError.rule_broken(
                "audio-id-known",
                f"{field}.audio_id: {audio_id!r} was not generated by the TTS API for this account",
            )
        if now - audio.created_at_ms >= AUDIO_TTL_MS:
            raise ApiError.rule_broken(
                "audio-id-recent", f"{field}.audio_id: {audio_id} was generated over 30 days ago"
            )
        check_sound_duration(audio.meta.duration_ms, f"{field}.audio_id")
        return audio.meta

    def _outcome_for(self, account: AccountId, external_id: str, video_url: str) -> Outcome:
        rule = self.fixtures.outcome_for(external_id, video_url)
        if rule is None:
            outcome = Outcome(self.phases.submitted_ms, self.phases.processing_ms)
        else:
            outcome = Outcome(
                self.phases.submitted_ms if rule.submitted_ms is None else rule.submitted_ms,
                self.phases.processing_ms if rule.processing_ms is None else rule.processing_ms,
                rule.status,
                rule.message,
            )
        return self.faults.outcome_for(account, external_id, outcome)

    def get_lip_sync_task(self, account: AccountId, task_or_external_id: str) -> Task:
        self.advance()
        task = self.store.get_task(TaskId(task_or_external_id))
        if task is None or task.account != account:
            task = self.store.task_by_external_id(account, task_or_external_id)
        if task is None:
            raise ApiError(
                NOT_FOUND,
                f"id: no task {task_or_external_id!r} of this account, by task_id or "
                "external_task_id (rule task-exists)",
                "task-exists",
            )
        return task

    def list_lip_sync_tasks(self, account: AccountId, page_num: int, page_size: int) -> list[Task]:
        self.advance()
        return self.store.list_tasks(account, (page_num - 1) * page_size, page_size)

    def create_tts(self, account: AccountId, inp: TtsInput) -> Audio:
        language = self.voices.get(inp.voice_id)
        if language is None or language != inp.voice_language:
            raise ApiError.rule_broken(
                "tts-voice-known",
                f"Voice id not found: voice_id {inp.voice_id!r} is not an official voice "
                f"of voice_language {inp.voice_language!r}",
            )
        speed = round(min(2.0, max(0.8, inp.voice_speed)), 1)
        data = media.synthesize_speech(inp.text, speed)
        meta = AudioMeta(
            duration_ms=media.speech_duration_ms(inp.text, speed),
            size_bytes=len(data),
            format="mp3",
            source=MetaSource.GENERATED,
            blob=self.store.put_blob(data),
        )
        audio_id = self.ids.unused_numeric(lambda i: self.store.get_audio(AudioId(i)) is not None)
        audio = Audio(AudioId(audio_id), account, meta, self.clock.now_ms())
        self.store.put_audio(audio)
        return audio

    # -- time -------------------------------------------------------------------------------

    def advance(self) -> list[TaskEvent]:
        """Fire every transition due by now, in due order; return the status changes."""
        now = self.clock.now_ms()
        events: list[TaskEvent] = []
        while due := self.store.pop_due(now):
            for tid in due:
                task = self.store.get_task(tid)
                if task is None:
                    continue
                new = step(task, functools.partial(result_video_id, tid))
                if new is task:
                    continue
                self.store.save_task(new)
                events.append(TaskEvent(new, task.status))
        for event in events:
            self._emit(event)
        return events

    def _emit(self, event: TaskEvent) -> None:
        for listener in self.listeners:
            listener(event)
