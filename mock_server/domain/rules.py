"""Every `check: domain` rule of x-kling-rules, keyed by its id: one small function each.

A rule reads a typed context and answers None (kept) or the refusal's message (broken). The
backend builds the context an operation needs, stage by stage (the request and what the store
knows first, then the resolved media), and asks the `RuleBook` to check it: the rules of that
operation and stage run in the order the spec lists them, and the first broken one is raised as
`ApiError.rule_broken` with the spec's code. No other domain module decides a rule.

A broken build (the contract kit's own tests) swaps one entry with `RuleBook.replace`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..urls import split_url
from .errors import INVALID_PARAMETER, ApiError
from .models import (
    AUDIO_TTL_MS,
    RESULT_TTL_MS,
    SESSION_TTL_MS,
    Audio,
    AudioMeta,
    Face,
    Session,
    Task,
)

MIN_MEDIA_MS: Final = 2000
MAX_MEDIA_MS: Final = 60000
MAX_VIDEO_BYTES: Final = 100 * 1024 * 1024
MAX_SOUND_BYTES: Final = 5 * 1024 * 1024
MIN_SIDE: Final = 512
MAX_SIDE: Final = 2160
MIN_CROP_MS: Final = 2000
MIN_OVERLAP_MS: Final = 2000
VIDEO_FORMATS: Final = frozenset({"mp4", "mov"})
SOUND_FORMATS: Final = frozenset({"mp3", "wav", "m4a", "aac"})


class Stage(enum.StrEnum):
    """When a rule can be decided: from the request (and the store), or once media resolved."""

    REQUEST = "request"
    MEDIA = "media"


# -- what the resolver learnt ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What resolving one media value found out; the rules decide what it means.

    Each field is None when nothing is known of it (a derived URL was never read, content that
    did not decode has no duration).
    """

    field: str  # "video_url", "face_choose[0].sound_file"
    label: str  # how messages name the value: the URL, or "the decoded base64"
    read: bool = False  # bytes were read (fetched, a file, base64, one of our own files)
    not_a_source: str | None = None  # neither an http(s)/file URL nor (for sounds) base64
    unreachable: str | None = None  # why the bytes could not be read
    over_limit: int | None = None  # reading stopped at this many bytes
    declared: str | None = None  # the format the URL's name claims
    content_error: str | None = None  # why the bytes are no usable media of their kind
    format: str | None = None
    size_bytes: int | None = None
    duration_ms: int | None = None
    width: int | None = None
    height: int | None = None
    faces: tuple[Face, ...] = ()
    generated_at_ms: int | None = None  # for videos this mock generated
    known: bool = True  # False: an id that names no media this mock knows


# -- contexts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentifyContext:
    video_id: str
    video_url: str
    now_ms: int
    video: MediaFacts | None = None  # set at Stage.MEDIA


@dataclass(frozen=True, slots=True)
class CreateContext:
    """A create request, what the store knows about it, and (Stage.MEDIA) the chosen sound."""

    field: str  # "face_choose[0]"
    session_id: str
    face_id: str
    audio_id: str
    sound_file: str
    start_ms: int
    end_ms: int
    insert_ms: int
    callback_url: str
    external_task_id: str
    now_ms: int
    session: Session | None
    external_task_taken: bool
    own_address: Callable[[str], bool]  # does this URL reach the mock itself?
    audio: Audio | AudioMeta | None = None  # the audio_id's audio, when looked up
    sound: MediaFacts | None = None  # the sound_file's facts, when resolved

    @property
    def face(self) -> Face | None:
        return self.session.face(self.face_id) if self.session else None

    def with_media(
        self, now_ms: int, audio: Audio | AudioMeta | None, sound: MediaFacts | None
    ) -> CreateContext:
        """This request at Stage.MEDIA: the chosen sound and the time once it resolved.

        dataclasses.replace, spelt out: it costs twice as much (a test pins the two equal)."""
        return CreateContext(
            self.field,
            self.session_id,
            self.face_id,
            self.audio_id,
            self.sound_file,
            self.start_ms,
            self.end_ms,
            self.insert_ms,
            self.callback_url,
            self.external_task_id,
            now_ms,
            self.session,
            self.external_task_taken,
            self.own_address,
            audio,
            sound,
        )

    @property
    def sound_ms(self) -> int | None:
        """The chosen sound's length, from whichever source it came."""
        if self.sound is not None:
            return self.sound.duration_ms
        if isinstance(self.audio, Audio):
            return self.audio.meta.duration_ms
        if isinstance(self.audio, AudioMeta):
            return self.audio.duration_ms
        return None


@dataclass(frozen=True, slots=True)
class QueryContext:
    id: str
    task: Task | None


@dataclass(frozen=True, slots=True)
class TtsContext:
    voice_id: str
    voice_language: str
    language_of_voice: str | None


# -- the rules -----------------------------------------------------------------------------


def _exactly_one(first: str, second: str, names: tuple[str, str]) -> str | None:
    if bool(first) == bool(second):
        state = "both are set" if first else "neither is set"
        return f"exactly one of {names[0]} and {names[1]} must be set, but {state}"
    return None


def video_source_xor(c: IdentifyContext) -> str | None:
    return _exactly_one(c.video_id, c.video_url, ("video_id", "video_url"))


def video_id_known(c: IdentifyContext) -> str | None:
    v = c.video
    if not c.video_id or v is None or v.known:
        return None
    return (
        f"video_id: {c.video_id!r} is not a video generated by Kling AI for this account; "
        "give the id of a result video of one of your succeeded tasks "
        "(task_result.videos[].id, not the task_id), or use video_url"
    )


def video_url_reachable(c: IdentifyContext) -> str | None:
    v = c.video
    if v is None:
        return None
    if v.not_a_source:
        return f"{v.field}: {v.not_a_source}"
    if v.unreachable:
        return f"{v.field}: {v.unreachable}"
    return None


def video_format(c: IdentifyContext) -> str | None:
    v = c.video
    if v is None:
        return None
    if v.declared is not None and v.declared not in VIDEO_FORMATS and not v.read:
        return f"{v.field}: videos must be .mp4 or .mov, got .{v.declared}"
    if v.over_limit is None and v.content_error:
        return f"{v.field}: {v.content_error}"
    if v.format is not None and v.format not in VIDEO_FORMATS:
        return f"{v.field}: videos must be .mp4 or .mov, got {v.format}"
    return None


def video_size(c: IdentifyContext) -> str | None:
    v = c.video
    if v is None:
        return None
    if v.over_limit is not None:
        return f"{v.field}: {v.label} is more than {v.over_limit} bytes (100 MB)"
    if v.size_bytes is not None and v.size_bytes > MAX_VIDEO_BYTES:
        return f"{v.field}: the video is {v.size_bytes} bytes, more than 100 MB"
    return None


def video_duration(c: IdentifyContext) -> str | None:
    v = c.video
    if v is None or v.duration_ms is None:
        return None
    if not MIN_MEDIA_MS <= v.duration_ms <= MAX_MEDIA_MS:
        return f"{v.field}: the video lasts {v.duration_ms} ms; it must last 2 s to 60 s"
    return None


def video_resolution(c: IdentifyContext) -> str | None:
    v = c.video
    if v is None or v.width is None or v.height is None:
        return None
    # "720p or 1080p" names the class by one side; the other may go down to 512 px (the
    # documented lower bound, unreachable if the shorter side had to be 720 or 1080).
    w, h = v.width, v.height
    within = MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE
    if not within or not (w in (720, 1080) or h in (720, 1080)):
        return (
            f"{v.field}: the video is {v.width}x{v.height}; it must be 720p or 1080p "
            f"with each side between {MIN_SIDE} and {MAX_SIDE} px"
        )
    return None


def video_id_recent(c: IdentifyContext) -> str | None:
    v = c.video
    if v is None or v.generated_at_ms is None:
        return None
    if c.now_ms - v.generated_at_ms >= RESULT_TTL_MS:
        return f"video_id: video {c.video_id} was generated more than 30 days ago"
    return None


def session_known(c: CreateContext) -> str | None:
    if c.session is None:
        return (
            f"session_id: {c.session_id!r} is not a session of this account; "
            "call identify-face first"
        )
    return None


def session_valid(c: CreateContext) -> str | None:
    if c.session is None:
        return None
    age = c.now_ms - c.session.created_at_ms
    if age >= SESSION_TTL_MS:
        return (
            f"session_id: session {c.session.session_id} expired {age - SESSION_TTL_MS} ms "
            "ago; sessions are valid for 24 hours, call identify-face again"
        )
    return None


def face_known(c: CreateContext) -> str | None:
    if c.session is None or c.face is not None:
        return None
    known = ", ".join(f.face_id for f in c.session.video.faces) or "none"
    return (
        f"{c.field}.face_id: {c.face_id!r} is not a face of session {c.session.session_id} "
        f"(faces: {known})"
    )


def audio_source_xor(c: CreateContext) -> str | None:
    return _exactly_one(c.audio_id, c.sound_file, (f"{c.field}.audio_id", f"{c.field}.sound_file"))


def audio_id_known(c: CreateContext) -> str | None:
    if c.audio_id and c.audio is None:
        return (
            f"{c.field}.audio_id: {c.audio_id!r} was not generated by the TTS API for this "
            "account; the audio_id is task_result.audios[0].id of the TTS answer, not its task_id"
        )
    return None


def audio_id_recent(c: CreateContext) -> str | None:
    if isinstance(c.audio, Audio) and c.now_ms - c.audio.created_at_ms >= AUDIO_TTL_MS:
        return f"{c.field}.audio_id: {c.audio_id} was generated over 30 days ago"
    return None


def sound_url_reachable(c: CreateContext) -> str | None:
    s = c.sound
    if s is None or s.not_a_source:
        return None  # neither URL nor base64 is a content problem (sound-content)
    if s.unreachable:
        return f"{s.field}: {s.unreachable}"
    return None


def sound_format(c: CreateContext) -> str | None:
    s = c.sound
    if s is None:
        return None
    if s.declared is not None and s.declared not in SOUND_FORMATS:
        return f"{s.field}: audio must be .mp3/.wav/.m4a/.aac, got .{s.declared}"
    if s.format is not None and s.format not in SOUND_FORMATS:
        return f"{s.field}: audio must be mp3, wav, m4a or aac, got {s.format}"
    if s.read and s.declared is not None and s.format is not None and s.declared != s.format:
        return f"{s.field}: the name says .{s.declared} but the content is {s.format}"
    return None


def sound_size(c: CreateContext) -> str | None:
    s = c.sound
    if s is None:
        return None
    if s.over_limit is not None:
        return f"{s.field}: {s.label} is more than {s.over_limit} bytes (5 MB)"
    if s.size_bytes is not None and s.size_bytes > MAX_SOUND_BYTES:
        return f"{s.field}: the audio is {s.size_bytes} bytes, more than 5 MB"
    return None


def sound_content(c: CreateContext) -> str | None:
    s = c.sound
    if s is None:
        return None
    if s.not_a_source:
        return f"{s.field}: {s.not_a_source}"
    if s.content_error:
        return f"{s.field}: {s.content_error}"
    return None


def sound_duration(c: CreateContext) -> str | None:
    ms = c.sound_ms
    if ms is None:
        return None
    if not MIN_MEDIA_MS <= ms <= MAX_MEDIA_MS:
        source = f"{c.field}.audio_id" if c.audio is not None else f"{c.field}.sound_file"
        return f"{source}: the audio lasts {ms} ms; it must last 2 s to 60 s"
    return None


def crop_min_length(c: CreateContext) -> str | None:
    if c.end_ms - c.start_ms < MIN_CROP_MS:
        return (
            f"{c.field}.sound_end_time: the sound cropped from {c.field}.sound_start_time "
            f"[{c.start_ms}, {c.end_ms}) ms lasts {c.end_ms - c.start_ms} ms; "
            f"it must last at least {MIN_CROP_MS} ms"
        )
    return None


def crop_end_within_audio(c: CreateContext) -> str | None:
    ms = c.sound_ms
    if ms is not None and c.end_ms > ms:
        return (
            f"{c.field}.sound_end_time: {c.end_ms} ms is later than the end of the audio ({ms} ms)"
        )
    return None


def insert_within_video(c: CreateContext) -> str | None:
    if c.session is None:
        return None
    end = c.insert_ms + c.end_ms - c.start_ms
    video_ms = c.session.video.duration_ms
    if c.insert_ms < 0 or end > video_ms:
        return (
            f"{c.field}.sound_insert_time: the sound would play over [{c.insert_ms}, {end}) ms "
            f"but the video lasts {video_ms} ms"
        )
    return None


def insert_face_overlap(c: CreateContext) -> str | None:
    face = c.face
    if face is None:
        return None
    end = c.insert_ms + c.end_ms - c.start_ms
    overlap = min(end, face.end_ms) - max(c.insert_ms, face.start_ms)
    if overlap < MIN_OVERLAP_MS:
        return (
            f"{c.field}.sound_insert_time: the sound [{c.insert_ms}, {end}) ms overlaps face "
            f"{face.face_id} [{face.start_ms}, {face.end_ms}) ms by {max(overlap, 0)} ms; "
            f"it must overlap by at least {MIN_OVERLAP_MS} ms"
        )
    return None


def external_task_id_unique(c: CreateContext) -> str | None:
    if c.external_task_id and c.external_task_taken:
        return (
            f"external_task_id: {c.external_task_id!r} is already used by another task of "
            "this account"
        )
    return None


def callback_url_http(c: CreateContext) -> str | None:
    if not c.callback_url:
        return None
    parts = split_url(c.callback_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"callback_url: {c.callback_url!r} is not an absolute http(s) URL"
    return None


def callback_url_not_self(c: CreateContext) -> str | None:
    if c.callback_url and c.own_address(c.callback_url):
        return (
            f"callback_url: {c.callback_url!r} is this mock's own address; a callback there "
            "would call the mock's own API (its control API can reset every account), so "
            "give the address of your callback receiver"
        )
    return None


def task_exists(c: QueryContext) -> str | None:
    if c.task is None:
        return f"id: no task {c.id!r} of this account, by task_id or external_task_id"
    return None


def tts_voice_known(c: TtsContext) -> str | None:
    if c.language_of_voice is None or c.language_of_voice != c.voice_language:
        return (
            f"Voice id not found: voice_id {c.voice_id!r} is not an official voice "
            f"of voice_language {c.voice_language!r}"
        )
    return None


# -- the registry --------------------------------------------------------------------------


Check = Callable[[Any], str | None]
"""A rule: the context of its operation and stage -> None (kept) or the refusal's message."""


@dataclass(frozen=True, slots=True)
class DomainRule:
    id: str
    operation: str
    stage: Stage
    check: Check


def _r(rule_id: str, operation: str, stage: Stage, check: Check) -> DomainRule:
    return DomainRule(rule_id, operation, stage, check)


_IDENTIFY, _CREATE = "identifyFace", "createLipSyncTask"
REQ, MEDIA = Stage.REQUEST, Stage.MEDIA

REGISTRY: Final[dict[str, DomainRule]] = {
    r.id: r
    for r in (
        _r("video-source-xor", _IDENTIFY, REQ, video_source_xor),
        _r("video-id-known", _IDENTIFY, MEDIA, video_id_known),
        _r("video-url-reachable", _IDENTIFY, MEDIA, video_url_reachable),
        _r("video-format", _IDENTIFY, MEDIA, video_format),
        _r("video-size", _IDENTIFY, MEDIA, video_size),
        _r("video-duration", _IDENTIFY, MEDIA, video_duration),
        _r("video-resolution", _IDENTIFY, MEDIA, video_resolution),
        _r("video-id-recent", _IDENTIFY, MEDIA, video_id_recent),
        _r("session-known", _CREATE, REQ, session_known),
        _r("session-valid", _CREATE, REQ, session_valid),
        _r("face-known", _CREATE, REQ, face_known),
        _r("audio-source-xor", _CREATE, REQ, audio_source_xor),
        _r("audio-id-known", _CREATE, MEDIA, audio_id_known),
        _r("audio-id-recent", _CREATE, MEDIA, audio_id_recent),
        _r("sound-url-reachable", _CREATE, MEDIA, sound_url_reachable),
        _r("sound-format", _CREATE, MEDIA, sound_format),
        _r("sound-size", _CREATE, MEDIA, sound_size),
        _r("sound-content", _CREATE, MEDIA, sound_content),
        _r("sound-duration", _CREATE, MEDIA, sound_duration),
        _r("crop-min-length", _CREATE, REQ, crop_min_length),
        _r("crop-end-within-audio", _CREATE, MEDIA, crop_end_within_audio),
        _r("insert-within-video", _CREATE, REQ, insert_within_video),
        _r("insert-face-overlap", _CREATE, REQ, insert_face_overlap),
        _r("external-task-id-unique", _CREATE, REQ, external_task_id_unique),
        _r("callback-url-http", _CREATE, REQ, callback_url_http),
        _r("callback-url-not-self", _CREATE, REQ, callback_url_not_self),
        _r("task-exists", "getLipSyncTask", REQ, task_exists),
        _r("tts-voice-known", "createTts", REQ, tts_voice_known),
    )
}


class RuleEntry(Protocol):
    """What the book needs of an x-kling-rules entry (`mock_server.spec.Rule` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def check(self) -> str: ...
    @property
    def code(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SpecRule:
    """A RuleEntry of its own, for tables that do not come from the spec (tests)."""

    id: str
    check: str
    code: int


class RuleBook:
    """The domain rules in the spec's order, with the spec's codes."""

    def __init__(
        self, spec_rules: Iterable[RuleEntry], registry: Mapping[str, DomainRule] = REGISTRY
    ) -> None:
        domain = [r for r in spec_rules if r.check == "domain"]
        missing = sorted({r.id for r in domain} - set(registry))
        unknown = sorted(set(registry) - {r.id for r in domain})
        if missing or unknown:
            raise ValueError(
                f"x-kling-rules and the rule registry disagree: no function for {missing}, "
                f"not in the spec: {unknown}"
            )
        self._codes = {r.id: r.code for r in domain}
        self._registry = dict(registry)
        self._order = [r.id for r in domain]
        # Per operation and stage, its (rule id, check) pairs in the spec's order.
        self._plan: dict[tuple[str, Stage], tuple[tuple[str, Check], ...]] = {}
        self._build_plan()

    def _build_plan(self) -> None:
        plan: dict[tuple[str, Stage], list[tuple[str, Check]]] = {}
        for rule_id in self._order:
            rule = self._registry[rule_id]
            plan.setdefault((rule.operation, rule.stage), []).append((rule_id, rule.check))
        self._plan = {key: tuple(checks) for key, checks in plan.items()}

    def replace(self, rule_id: str, check: Callable[[Any], str | None]) -> None:
        """Swap one rule's function (broken builds for the kit's tests do this)."""
        self._registry[rule_id] = dataclasses.replace(self._registry[rule_id], check=check)
        self._build_plan()

    def check(self, operation: str, stage: Stage, context: object) -> None:
        """Raise the first broken rule of this operation and stage, in the spec's order."""
        for rule_id, rule_check in self._plan.get((operation, stage), ()):
            message = rule_check(context)
            if message is not None:
                raise ApiError.rule_broken(
                    rule_id, message, self._codes.get(rule_id, INVALID_PARAMETER)
                )

    def ids(self, operation: str | None = None) -> list[str]:
        return [rid for rid in self._order if operation in (None, self._registry[rid].operation)]
