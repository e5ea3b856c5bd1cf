"""Hypothesis strategies for the Kling lip-sync API, derived from the OpenAPI spec and rule table.

Every bound comes from the spec (``openapi/lipsync.yaml``): schema keywords (``minimum``,
``maxItems``, ``maxLength``, ``enum``, ``pattern``) for the shapes, the ``boundary`` of each
``x-kling-rules`` entry for the constraints JSON Schema cannot express, ``x-kling-errors`` for the
error codes and ``x-kling-voices`` for the TTS voices. Pass ``spec=`` (a
:class:`mock_server.spec.Spec` or a path to a YAML file) to any strategy to read another copy.

Three families of strategies:

* **valid requests**, accepted by a conforming server by construction:
  :func:`identify_face_requests`, :func:`create_task_requests`, :func:`list_queries`,
  :func:`tts_requests`;
* **invalid requests**, ``(rule_id, value)`` pairs whose value breaks the named rule and is
  otherwise valid, so a conforming server refuses it with that rule's code:
  :func:`invalid_create_requests`, :func:`invalid_identify_face_requests`,
  :func:`invalid_list_queries`, :func:`invalid_task_ids`, :func:`invalid_tts_requests`;
* **server payloads**, what a conforming server sends, for testing clients: :func:`tasks`,
  :func:`callback_payloads`, :func:`error_envelopes`.

Identify-face bodies use offline-derived URLs (``https://example.com/...``); the mock derives
their metadata (videos last 6-30 s with face ``"0"`` on screen from 0 ms). Create bodies need
what identify-face returned (the session id and its faces), the duration of the audio they
reference and the duration of the video (a task's ``task_info.parent_video.duration``):

>>> from hypothesis import given, settings
>>> from contracts.strategies import Face, create_task_requests
>>> faces = [Face("0", start_time=0, end_time=5200)]
>>> @settings(max_examples=20)
... @given(create_task_requests("850508686686064678", faces, audio_duration_ms=6000,
...                             video_duration_ms=9800))
... def test_windows_are_valid(body):
...     fc = body["face_choose"][0]
...     assert fc["sound_end_time"] - fc["sound_start_time"] >= 2000
...     assert fc["sound_end_time"] <= 6000
>>> test_windows_are_valid()

Two rules cannot be broken alone (an audio shorter than 2 s cannot hold a 2 s crop, say);
:func:`invalid_create_requests` says which rule such a body must be refused for, and why.
"""

from __future__ import annotations

import base64
import functools
import itertools
import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from hypothesis import strategies as st

from mock_server.spec import Rule, Spec, load_spec

__all__ = [
    "DERIVED_SOUND_URL",
    "UNEXPRESSIBLE_RULES",
    "Body",
    "Face",
    "SpecSource",
    "audio_base64",
    "callback_payloads",
    "create_task_requests",
    "derived_video_urls",
    "error_envelopes",
    "expressible_create_rules",
    "identify_face_requests",
    "invalid_create_requests",
    "invalid_identify_face_requests",
    "invalid_list_queries",
    "invalid_task_ids",
    "invalid_tts_requests",
    "list_queries",
    "resolve_spec",
    "tasks",
    "tts_requests",
]

Body: TypeAlias = dict[str, Any]
"""A JSON request body or payload, as sent on the wire."""

SpecSource: TypeAlias = "Spec | str | Path | None"
"""A parsed spec, a path to one, or ``None`` for the spec shipped with the mock."""

DERIVED_SOUND_URL: Final = "https://example.com/contracts/speech.mp3"
"""A sound URL the mock derives offline (it lasts 5-30 s there); the default audio source."""

UNEXPRESSIBLE_RULES: Final[Mapping[str, str]] = {
    "session-valid": "needs a session older than 24 hours (move the mock's clock instead)",
    "audio-id-recent": "needs a TTS audio older than 30 days (move the mock's clock instead)",
    "video-size": "needs a video file over 100 MB behind a URL",
    "video-duration": "needs a real video file of the wrong duration behind a URL",
    "video-resolution": "needs a real video file of the wrong resolution behind a URL",
    "video-id-recent": "needs a generated video older than 30 days",
    "body-json": "is about the raw request bytes, not a JSON body",
    "body-size": "is about the raw request size, not a JSON body",
    "callback-url-not-self": "needs the address of the server under test (verify sends it)",
}
"""Rules no request body can break on its own, each with the reason."""

_OP_IDENTIFY: Final = "identifyFace"
_OP_CREATE: Final = "createLipSyncTask"
_OP_LIST: Final = "listLipSyncTasks"
_OP_GET: Final = "getLipSyncTask"
_OP_TTS: Final = "createTts"
_UNREACHABLE_HOST: Final = "http://127.0.0.1:9"  # the discard port: nothing answers there
_HOSTS: Final = ("example.com", "example.org", "cdn.example.net", "media.example.com")
_SLUG: Final = string.ascii_lowercase + string.digits + "-_"
_EXTERNAL_IDS: Final = itertools.count(1)


def resolve_spec(spec: SpecSource = None) -> Spec:
    """The parsed spec for a ``spec=`` argument (cached per path).

    >>> resolve_spec().rules["crop-min-length"].boundary
    2000
    """
    if isinstance(spec, Spec):
        return spec
    return load_spec(None if spec is None else str(spec))


@dataclass(frozen=True, slots=True)
class Face:
    """A face identify-face found: its id and the interval (ms) in which it can be lip-synced.

    >>> Face.from_wire({"face_id": "0", "face_image": "x.png", "start_time": 0, "end_time": 5200})
    Face(face_id='0', start_time=0, end_time=5200)
    """

    face_id: str
    start_time: int
    end_time: int

    @classmethod
    def from_wire(cls, face: Mapping[str, Any]) -> Face:
        """A face from one item of identify-face's ``data.face_data``."""
        return cls(str(face["face_id"]), int(face["start_time"]), int(face["end_time"]))


FaceLike: TypeAlias = "Face | Mapping[str, Any]"


# -- what the spec says ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bounds:
    """The numbers the strategies need, each read from the spec once."""

    crop_min_ms: int
    overlap_min_ms: int
    sound_duration_ms: tuple[int, int]
    sound_size_bytes: int
    millis_max: int
    volume: tuple[float, float]
    volume_fields: tuple[str, ...]
    time_fields: tuple[str, ...]
    face_choose_items: tuple[int, int]
    face_id_max: int
    session_id_max: int
    audio_id_max: int
    external_id_max: int
    callback_url_max: int
    video_url_max: int
    task_id_max: int
    page: Mapping[str, tuple[int, int, str]]  # param -> (minimum, maximum, rule id)
    video_formats: tuple[str, ...]
    sound_formats: tuple[str, ...]
    statuses: tuple[str, ...]
    seconds_pattern: str
    timestamp_min: int
    error_codes: tuple[int, ...]
    tts_text: tuple[int, int]
    tts_languages: tuple[str, ...]
    voices: Mapping[str, str]
    rules: Mapping[str, Rule]


def _schema(spec: Spec, name: str) -> Mapping[str, Any]:
    schema: Mapping[str, Any] = spec.document["components"]["schemas"][name]
    return schema


def _prop(spec: Spec, schema: str, name: str) -> Mapping[str, Any]:
    prop: Mapping[str, Any] = _schema(spec, schema)["properties"][name]
    if "$ref" in prop:
        return _schema(spec, str(prop["$ref"]).rsplit("/", 1)[1])
    return prop


def _pair(value: Any) -> tuple[int, int]:
    low, high = value
    return int(low), int(high)


def _leaf(field: str) -> str:
    """``face_choose[].sound_volume`` -> ``sound_volume``."""
    return field.rsplit(".", 1)[-1]


def _extensions(text: str) -> tuple[str, ...]:
    """File extensions a rule's text lists (``.mp3/.wav`` -> ``("mp3", "wav")``)."""
    return tuple(dict.fromkeys(re.findall(r"\.([a-z0-9]{2,4})\b", text)))


@functools.cache
def _bounds(spec: Spec) -> _Bounds:
    rules = spec.rules
    list_params = {p["name"]: p["schema"] for p in spec.operation(_OP_LIST)["parameters"]}
    page_rules = {
        rule.fields[0]: rule.id
        for rule in rules.values()
        if rule.operation == _OP_LIST and rule.check == "schema"
    }
    get_params = {p["name"]: p["schema"] for p in spec.operation(_OP_GET)["parameters"]}
    face_choose = _schema(spec, "CreateTaskRequest")["properties"]["face_choose"]
    volume = _schema(spec, "Volume")
    millis = _schema(spec, "Millis")
    tts_text = _prop(spec, "TtsRequest", "text")
    return _Bounds(
        crop_min_ms=int(rules["crop-min-length"].boundary),
        overlap_min_ms=int(rules["insert-face-overlap"].boundary),
        sound_duration_ms=_pair(rules["sound-duration"].boundary),
        sound_size_bytes=int(rules["sound-size"].boundary),
        millis_max=int(millis["maximum"]),
        volume=(float(volume["minimum"]), float(volume["maximum"])),
        volume_fields=tuple(_leaf(f) for f in rules["volume-range"].fields),
        time_fields=tuple(_leaf(f) for f in rules["times-non-negative"].fields),
        face_choose_items=(int(face_choose["minItems"]), int(face_choose["maxItems"])),
        face_id_max=int(_prop(spec, "FaceChoose", "face_id")["maxLength"]),
        session_id_max=int(_prop(spec, "CreateTaskRequest", "session_id")["maxLength"]),
        audio_id_max=int(_prop(spec, "FaceChoose", "audio_id")["maxLength"]),
        external_id_max=int(_prop(spec, "CreateTaskRequest", "external_task_id")["maxLength"]),
        callback_url_max=int(_prop(spec, "CreateTaskRequest", "callback_url")["maxLength"]),
        video_url_max=int(_prop(spec, "IdentifyFaceRequest", "video_url")["maxLength"]),
        task_id_max=int(get_params["id"]["maxLength"]),
        page={
            name: (int(schema["minimum"]), int(schema["maximum"]), page_rules[name])
            for name, schema in list_params.items()
            if name in page_rules
        },
        video_formats=_extensions(rules["video-format"].text),
        sound_formats=_extensions(rules["sound-format"].text),
        statuses=tuple(_schema(spec, "TaskStatus")["enum"]),
        seconds_pattern=str(_schema(spec, "Seconds")["pattern"]),
        timestamp_min=int(_schema(spec, "Timestamp")["minimum"]),
        error_codes=tuple(sorted(spec.http_status)),
        tts_text=(int(tts_text.get("minLength", 1)), int(tts_text["maxLength"])),
        tts_languages=tuple(_prop(spec, "TtsRequest", "voice_language")["enum"]),
        voices=dict(spec.voices),
        rules=dict(rules),
    )


# -- building blocks ---------------------------------------------------------------------------


def _near(boundary: int, low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in [low, high], the value at the boundary first: off-by-some servers fail there."""
    return st.one_of(st.just(boundary), st.integers(low, high))


def _slugs(min_size: int = 1, max_size: int = 24) -> st.SearchStrategy[str]:
    return st.text(_SLUG, min_size=min_size, max_size=max_size)


def _unknown_ids(prefix: str, max_size: int) -> st.SearchStrategy[str]:
    """Ids no server hands out: a prefix real ids never carry, then random hex."""
    return st.uuids().map(lambda u: f"{prefix}{u.hex}"[:max_size])


def derived_video_urls(spec: SpecSource = None) -> st.SearchStrategy[str]:
    """Video URLs the mock derives offline: any non-loopback http(s) URL of a video format.

    The extensions come from the text of rule ``video-format``.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(derived_video_urls())
    ... def test(url):
    ...     assert url.startswith("https://") and url.rsplit(".", 1)[1] in ("mp4", "mov")
    >>> test()
    """
    return _derived_urls(_bounds(resolve_spec(spec)))


def _derived_urls(bounds: _Bounds) -> st.SearchStrategy[str]:
    return st.builds(
        "https://{}/{}/{}.{}".format,
        st.sampled_from(_HOSTS),
        _slugs(),
        _slugs(),
        st.sampled_from(bounds.video_formats),
    ).filter(lambda url: len(url) <= bounds.video_url_max)


@functools.lru_cache(maxsize=16)
def audio_base64(duration_ms: int, fmt: str = "mp3") -> str:
    """Base64 of a real audio file (a sine tone) lasting exactly ``duration_ms``: a ``sound_file``.

    ``fmt`` is one of ``mp3``, ``wav``, ``m4a``, ``aac``; WAV is exact to the millisecond and
    large (96 kB per second), MP3 small. Cached per arguments.

    >>> import base64
    >>> base64.b64decode(audio_base64(2500, "wav"))[:4]
    b'RIFF'
    """
    from mock_server import media  # PyAV is imported only by strategies that need real audio

    data = media.make_audio(media.MediaFormat(fmt), duration_ms)
    return base64.b64encode(data).decode("ascii")


def _lazy_audio(duration_ms: int, fmt: str) -> st.SearchStrategy[str]:
    """The audio is encoded when a branch is drawn, not when the strategy is built."""
    return st.just((duration_ms, fmt)).map(lambda args: audio_base64(*args))


def _volumes(bounds: _Bounds) -> st.SearchStrategy[float | int]:
    low, high = bounds.volume
    return st.one_of(
        st.floats(low, high, allow_nan=False, allow_infinity=False),
        st.sampled_from(sorted({low, high, (low + high) / 2})),
        st.integers(int(low), int(high)),
    )


def _normalise_faces(faces: Sequence[FaceLike]) -> tuple[Face, ...]:
    return tuple(f if isinstance(f, Face) else Face.from_wire(f) for f in faces)


@dataclass(frozen=True, slots=True)
class _Context:
    """What one session offers: the inputs of the create strategies, checked once."""

    bounds: _Bounds
    session_id: str
    faces: tuple[Face, ...]
    audio_ms: int
    video_ms: int
    sound_file: str | None
    audio_id: str | None

    @property
    def min_window(self) -> int:
        """The shortest window that can be both a valid crop and a valid overlap."""
        return max(self.bounds.crop_min_ms, self.bounds.overlap_min_ms)

    def face_end(self, face: Face) -> int:
        # end_time may run a few ms past the video ("a millisecond level error"); never past it.
        return min(face.end_time, self.video_ms)

    def usable(self, face: Face) -> bool:
        return self.face_end(face) - max(face.start_time, 0) >= self.bounds.overlap_min_ms

    @property
    def usable_faces(self) -> tuple[Face, ...]:
        return tuple(f for f in self.faces if self.usable(f))

    @property
    def max_window(self) -> int:
        return min(self.audio_ms, self.video_ms)

    def audio_fields(self) -> Body:
        if self.audio_id:
            return {"audio_id": self.audio_id}
        return {"sound_file": self.sound_file or DERIVED_SOUND_URL}

    def insert_range(self, face: Face, length: int) -> tuple[int, int]:
        """Insert times putting a window of `length` inside the video, overlapping `face` enough."""
        overlap = self.bounds.overlap_min_ms
        low = max(0, face.start_time + overlap - length)
        high = min(self.video_ms - length, self.face_end(face) - overlap)
        return low, high


def _context(
    session_id: str,
    faces: Sequence[FaceLike],
    audio_duration_ms: int,
    video_duration_ms: int,
    sound_file: str | None,
    audio_id: str | None,
    spec: SpecSource,
) -> _Context:
    bounds = _bounds(resolve_spec(spec))
    if sound_file and audio_id:
        raise ValueError("give sound_file or audio_id, not both")
    low, high = bounds.sound_duration_ms
    if not low <= audio_duration_ms <= high:
        raise ValueError(
            f"audio_duration_ms={audio_duration_ms} is outside the documented {low}-{high} ms; "
            "pass the duration of a valid audio"
        )
    if video_duration_ms <= 0:
        raise ValueError("video_duration_ms must be positive")
    return _Context(
        bounds,
        session_id,
        _normalise_faces(faces),
        audio_duration_ms,
        video_duration_ms,
        sound_file,
        audio_id,
    )


def _require_valid_room(ctx: _Context) -> None:
    if not ctx.usable_faces:
        raise ValueError(
            f"no face can be lip-synced for {ctx.bounds.overlap_min_ms} ms inside a "
            f"{ctx.video_ms} ms video: {ctx.faces}"
        )
    if ctx.max_window < ctx.min_window:
        raise ValueError(
            f"a {ctx.audio_ms} ms audio in a {ctx.video_ms} ms video leaves no room for a "
            f"{ctx.min_window} ms window"
        )


@st.composite
def _window(draw: st.DrawFn, ctx: _Context, face: Face, length: int) -> tuple[int, int, int]:
    """(start, end, insert) of a valid window of `length` ms for `face`."""
    start = draw(st.integers(0, ctx.audio_ms - length))
    low, high = ctx.insert_range(face, length)
    insert = draw(st.integers(low, high))
    return start, start + length, insert


@st.composite
def _valid_choice(draw: st.DrawFn, ctx: _Context) -> Body:
    face = draw(st.sampled_from(ctx.usable_faces))
    length = draw(st.integers(ctx.min_window, ctx.max_window))
    start, end, insert = draw(_window(ctx, face, length))
    choice: Body = {
        "face_id": face.face_id,
        **ctx.audio_fields(),
        "sound_start_time": start,
        "sound_end_time": end,
        "sound_insert_time": insert,
    }
    if draw(st.booleans()):  # an empty string counts as not set
        choice["sound_file" if ctx.audio_id else "audio_id"] = ""
    for name in ctx.bounds.volume_fields:
        if draw(st.booleans()):
            choice[name] = draw(_volumes(ctx.bounds))
    return choice


@st.composite
def _valid_body(draw: st.DrawFn, ctx: _Context, external_task_id_prefix: str | None = None) -> Body:
    body: Body = {"session_id": ctx.session_id, "face_choose": [draw(_valid_choice(ctx))]}
    if draw(st.booleans()):
        body["watermark_info"] = {"enabled": draw(st.booleans())}
    if external_task_id_prefix is not None:
        # Uniqueness is a property of the account, not of one body, and Hypothesis draws the
        # same value more than once: a process-wide counter keeps every id new.
        body["external_task_id"] = f"{external_task_id_prefix}{next(_EXTERNAL_IDS)}"
    elif draw(st.booleans()):
        body["external_task_id"] = ""
    if draw(st.booleans()):
        body["callback_url"] = ""
    return body


# -- valid requests ----------------------------------------------------------------------------


def identify_face_requests(
    video_urls: Sequence[str] | None = None, spec: SpecSource = None
) -> st.SearchStrategy[Body]:
    """Valid identify-face bodies: exactly one of ``video_url`` / ``video_id`` is set.

    ``video_urls`` are used as given (real, reachable videos when testing the real service);
    by default the URLs are offline-derived ones (:func:`derived_video_urls`). Some bodies also
    carry ``"video_id": ""``, which the documentation's own example sends and which counts as
    not set.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(identify_face_requests(["https://example.com/speaker.mp4"]))
    ... def test(body):
    ...     assert body["video_url"] == "https://example.com/speaker.mp4"
    ...     assert body.get("video_id", "") == ""
    >>> test()
    """
    urls = st.sampled_from(list(video_urls)) if video_urls else derived_video_urls(spec)
    return st.builds(
        lambda url, with_empty_id: (
            {"video_id": "", "video_url": url} if with_empty_id else {"video_url": url}
        ),
        urls,
        st.booleans(),
    )


def create_task_requests(
    session_id: str,
    faces: Sequence[FaceLike],
    audio_duration_ms: int,
    video_duration_ms: int,
    *,
    sound_file: str | None = None,
    audio_id: str | None = None,
    external_task_id_prefix: str | None = None,
    spec: SpecSource = None,
) -> st.SearchStrategy[Body]:
    """Valid create-task bodies for one session: a conforming server accepts every one.

    The sound is cropped to ``[sound_start_time, sound_end_time)`` (at least the
    ``crop-min-length`` boundary, ending within ``audio_duration_ms``) and inserted at
    ``sound_insert_time`` so that it plays inside the video and overlaps the chosen face by at
    least the ``insert-face-overlap`` boundary; volumes lie in the ``Volume`` schema's range.

    Args:
        session_id: ``data.session_id`` of identify-face.
        faces: ``data.face_data`` of identify-face (wire dicts or :class:`Face`).
        audio_duration_ms: Duration of the audio the bodies reference; windows end within it.
        video_duration_ms: Duration of the video (``parent_video.duration`` of any task of the
            session); windows are inserted within it.
        sound_file: The audio, as a URL or base64 (:func:`audio_base64`); by default
            :data:`DERIVED_SOUND_URL`, which lasts at least 5 s on the mock.
        audio_id: The audio as a TTS ``audio_id`` instead of ``sound_file``.
        external_task_id_prefix: When given, every body carries an ``external_task_id``
            starting with it and never drawn before in this process (ids must be unique per
            account: use a prefix unique to the run); otherwise bodies carry none or an empty
            one.
        spec: The spec to read the bounds from.

    Raises:
        ValueError: No valid window exists (no face long enough, audio too short).

    >>> from hypothesis import given, settings
    >>> faces = [{"face_id": "0", "face_image": "f.png", "start_time": 0, "end_time": 5200},
    ...          {"face_id": "1", "face_image": "g.png", "start_time": 6300, "end_time": 9800}]
    >>> @settings(max_examples=25)
    ... @given(create_task_requests("850508686686064678", faces, 6000, 9800))
    ... def test(body):
    ...     fc, = body["face_choose"]
    ...     face = {"0": (0, 5200), "1": (6300, 9800)}[fc["face_id"]]
    ...     length = fc["sound_end_time"] - fc["sound_start_time"]
    ...     start, end = fc["sound_insert_time"], fc["sound_insert_time"] + length
    ...     assert 0 <= start and end <= 9800
    ...     assert min(end, face[1]) - max(start, face[0]) >= 2000
    >>> test()
    """
    ctx = _context(
        session_id, faces, audio_duration_ms, video_duration_ms, sound_file, audio_id, spec
    )
    _require_valid_room(ctx)
    room = ctx.bounds.external_id_max - 12
    if external_task_id_prefix is not None and len(external_task_id_prefix) > room:
        raise ValueError(f"external_task_id_prefix is longer than {room} characters")
    return _valid_body(ctx, external_task_id_prefix)


def list_queries(spec: SpecSource = None) -> st.SearchStrategy[dict[str, int]]:
    """Valid query parameters of the task list: ``pageNum`` / ``pageSize`` within their schemas.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20)
    ... @given(list_queries())
    ... def test(query):
    ...     assert 1 <= query.get("pageNum", 1) <= 1000
    ...     assert 1 <= query.get("pageSize", 30) <= 500
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    return st.fixed_dictionaries(
        {},
        optional={name: st.integers(low, high) for name, (low, high, _) in bounds.page.items()},
    )


def tts_requests(spec: SpecSource = None) -> st.SearchStrategy[Body]:
    """Valid TTS bodies: an official voice (``x-kling-voices``) with its own language.

    ``voice_speed`` may lie outside 0.8-2.0: the service clamps it, as documented.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(tts_requests())
    ... def test(body):
    ...     assert 1 <= len(body["text"]) <= 1000 and body["voice_language"] in ("zh", "en")
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    low, high = bounds.tts_text
    text = st.text(
        st.characters(categories=["L", "N", "Zs", "Po"]), min_size=low, max_size=min(high, 200)
    ).filter(lambda t: t.strip() != "")
    voice = st.sampled_from(sorted(bounds.voices.items()))
    speed = st.floats(0.5, 3.0, allow_nan=False).map(lambda s: round(s, 2))
    return st.builds(
        lambda t, v, sp: {
            "text": t,
            "voice_id": v[0],
            "voice_language": v[1],
            **({} if sp is None else {"voice_speed": sp}),
        },
        text,
        voice,
        st.none() | speed,
    )


# -- invalid requests --------------------------------------------------------------------------


def _with_choice(body: Body, **changes: Any) -> Body:
    """`body` with its face choice updated; a value of None removes the key."""
    choice = {**body["face_choose"][0], **changes}
    return {**body, "face_choose": [{k: v for k, v in choice.items() if v is not None}]}


def _without_audio(body: Body) -> Body:
    return _with_choice(body, audio_id=None, sound_file=None)


@st.composite
def _session_unknown(draw: st.DrawFn, ctx: _Context) -> Body:
    body = draw(_valid_body(ctx))
    return {**body, "session_id": draw(_unknown_ids("unknown-session-", ctx.bounds.session_id_max))}


@st.composite
def _face_choose_not_single(draw: st.DrawFn, ctx: _Context) -> Body:
    low, high = ctx.bounds.face_choose_items
    body = draw(_valid_body(ctx))
    count = draw(st.sampled_from([n for n in (low - 1, high + 1, high + 2) if n >= 0]))
    choices = [draw(_valid_choice(ctx)) for _ in range(count)]
    return {**body, "face_choose": choices}


@st.composite
def _face_unknown(draw: st.DrawFn, ctx: _Context) -> Body:
    known = {f.face_id for f in ctx.faces}
    face_id = draw(
        st.one_of(
            st.integers(0, 99).map(str),
            st.text(string.ascii_letters + string.digits, min_size=1, max_size=8),
        ).filter(lambda f: f not in known and len(f) <= ctx.bounds.face_id_max)
    )
    return _with_choice(draw(_valid_body(ctx)), face_id=face_id)


@st.composite
def _audio_not_single(draw: st.DrawFn, ctx: _Context) -> Body:
    body = draw(_valid_body(ctx))
    variant = draw(st.sampled_from(["both", "neither-missing", "neither-empty"]))
    if variant == "neither-missing":
        return _without_audio(body)
    if variant == "neither-empty":
        return _with_choice(body, audio_id="", sound_file="")
    unknown_audio = draw(_unknown_ids("unknown-audio-", ctx.bounds.audio_id_max))
    return _with_choice(
        body,
        audio_id=ctx.audio_id or unknown_audio,
        sound_file=ctx.sound_file or DERIVED_SOUND_URL,
    )


@st.composite
def _audio_id_unknown(draw: st.DrawFn, ctx: _Context) -> Body:
    body = _without_audio(draw(_valid_body(ctx)))
    return _with_choice(
        body, audio_id=draw(_unknown_ids("unknown-audio-", ctx.bounds.audio_id_max))
    )


@st.composite
def _sound_url_unreachable(draw: st.DrawFn, ctx: _Context) -> Body:
    name = draw(_slugs())
    ext = draw(st.sampled_from(ctx.bounds.sound_formats))
    url = draw(
        st.sampled_from(
            [f"{_UNREACHABLE_HOST}/{name}.{ext}", f"file:///nonexistent/contracts/{name}.{ext}"]
        )
    )
    return _with_choice(_without_audio(draw(_valid_body(ctx))), sound_file=url)


@st.composite
def _sound_format(draw: st.DrawFn, ctx: _Context) -> Body:
    ext = draw(
        st.sampled_from(["ogg", "flac", "opus", "wma", "txt", "mid"]).filter(
            lambda e: e not in ctx.bounds.sound_formats
        )
    )
    url = f"https://{draw(st.sampled_from(_HOSTS))}/{draw(_slugs())}/{draw(_slugs())}.{ext}"
    return _with_choice(_without_audio(draw(_valid_body(ctx))), sound_file=url)


def _bytes_per_ms_wav() -> int:
    """WAV bytes per ms of the audio `audio_base64` writes (mono 16-bit)."""
    return len(base64.b64decode(audio_base64(1001, "wav"))) - len(
        base64.b64decode(audio_base64(1000, "wav"))
    )


@functools.cache
def _oversize_wav_ms(limit_bytes: int, max_ms: int) -> int:
    """The shortest WAV duration (ms) whose file is larger than `limit_bytes`, if <= max_ms."""
    header = len(base64.b64decode(audio_base64(1000, "wav"))) - 1000 * _bytes_per_ms_wav()
    duration = (limit_bytes - header) // _bytes_per_ms_wav() + 1
    return duration if duration <= max_ms else -1


@st.composite
def _sound_too_big(draw: st.DrawFn, ctx: _Context) -> Body:
    """A real audio of valid duration whose file is over the size limit (a long WAV)."""
    high = ctx.bounds.sound_duration_ms[1]
    duration = _oversize_wav_ms(ctx.bounds.sound_size_bytes, high)
    # Few distinct durations: each is a multi-megabyte encoding, cached.
    duration = draw(st.sampled_from(sorted({duration, min(high, duration + 500)})))
    audio = draw(_lazy_audio(duration, "wav"))
    return _with_choice(_without_audio(draw(_valid_body(ctx))), sound_file=audio)


@st.composite
def _sound_content(draw: st.DrawFn, ctx: _Context) -> Body:
    garbage = draw(
        st.one_of(
            st.binary(min_size=1, max_size=256).map(lambda b: base64.b64encode(b).decode()),
            st.text("!#$%&*<>?@^~ ", min_size=1, max_size=32),
        )
    )
    return _with_choice(_without_audio(draw(_valid_body(ctx))), sound_file=garbage)


@st.composite
def _sound_duration(draw: st.DrawFn, ctx: _Context) -> Body:
    """Audio just shorter or longer than allowed.

    A crop of at least 2 s cannot end inside an audio shorter than 2 s, so the short side also
    breaks ``crop-end-within-audio``; a server can only compare the crop end with the audio
    once it knows the audio is acceptable, so it refuses for ``sound-duration``.
    """
    low, high = ctx.bounds.sound_duration_ms
    body = _without_audio(draw(_valid_body(ctx)))
    if not draw(st.booleans()):  # the short side first: Hypothesis starts from False
        duration = draw(_near(low - 1, max(1, low - 100), low - 1))
        face = draw(st.sampled_from(ctx.usable_faces))
        start, end, insert = draw(
            _window(_with_audio_ms(ctx, ctx.min_window), face, ctx.min_window)
        )
        audio = draw(_lazy_audio(duration, "wav"))
        return _with_choice(
            body,
            face_id=face.face_id,
            sound_file=audio,
            sound_start_time=start,
            sound_end_time=end,
            sound_insert_time=insert,
        )
    # Few distinct long durations: each costs an MP3 encoding, cached.
    duration = draw(st.sampled_from([high + 100, high + 1000]))
    return _with_choice(body, sound_file=draw(_lazy_audio(duration, "mp3")))


def _with_audio_ms(ctx: _Context, audio_ms: int) -> _Context:
    return _Context(
        ctx.bounds, ctx.session_id, ctx.faces, audio_ms, ctx.video_ms, ctx.sound_file, ctx.audio_id
    )


@st.composite
def _time_negative(draw: st.DrawFn, ctx: _Context) -> Body:
    field = draw(st.sampled_from(ctx.bounds.time_fields))
    value = draw(st.integers(-ctx.bounds.millis_max, -1) | st.integers(-1000, -1))
    return _with_choice(draw(_valid_body(ctx)), **{field: value})


@st.composite
def _crop_too_short(draw: st.DrawFn, ctx: _Context) -> Body:
    """A crop shorter than allowed, placed inside the video; it cannot overlap a face long
    enough either, but a server rejects the crop before it places it on the video."""
    length = draw(_near(ctx.bounds.crop_min_ms - 1, 0, ctx.bounds.crop_min_ms - 1))
    start = draw(st.integers(0, ctx.audio_ms - length))
    face = draw(st.sampled_from(ctx.usable_faces))
    insert = draw(st.integers(0, ctx.video_ms - length))
    return _with_choice(
        draw(_valid_body(ctx)),
        face_id=face.face_id,
        sound_start_time=start,
        sound_end_time=start + length,
        sound_insert_time=insert,
    )


@st.composite
def _crop_past_audio(draw: st.DrawFn, ctx: _Context) -> Body:
    past = draw(_near(1, 1, 1000))
    end = ctx.audio_ms + past
    face = draw(st.sampled_from(ctx.usable_faces))
    length = draw(st.integers(ctx.min_window, min(ctx.video_ms, end)))
    low, high = ctx.insert_range(face, length)
    insert = draw(st.integers(low, high))
    return _with_choice(
        draw(_valid_body(ctx)),
        face_id=face.face_id,
        sound_start_time=end - length,
        sound_end_time=end,
        sound_insert_time=insert,
    )


def _past_video_faces(ctx: _Context) -> list[tuple[Face, int]]:
    """(face, shortest window) pairs for which a window can overlap the face enough and still
    end after the video."""
    overlap = ctx.bounds.overlap_min_ms
    pairs = []
    for face in ctx.usable_faces:
        shortest = max(ctx.min_window, ctx.video_ms - ctx.face_end(face) + overlap + 1)
        if shortest <= ctx.audio_ms:
            pairs.append((face, shortest))
    return pairs


@st.composite
def _insert_past_video(draw: st.DrawFn, ctx: _Context) -> Body:
    overlap = ctx.bounds.overlap_min_ms
    face, shortest = draw(st.sampled_from(_past_video_faces(ctx)))
    length = draw(st.integers(shortest, ctx.audio_ms))
    low = max(0, face.start_time + overlap - length, ctx.video_ms - length + 1)
    insert = draw(st.integers(low, ctx.face_end(face) - overlap))
    start = draw(st.integers(0, ctx.audio_ms - length))
    return _with_choice(
        draw(_valid_body(ctx)),
        face_id=face.face_id,
        sound_start_time=start,
        sound_end_time=start + length,
        sound_insert_time=insert,
    )


@dataclass(frozen=True, slots=True)
class _ShortOverlap:
    """Windows inside the video that overlap `face` by less than required, on one side of it:
    lengths up to `longest`, inserted between `low` and `high_end - length`."""

    face: Face
    longest: int
    low: int
    high_end: int
    before: bool

    def boundary_insert(self, length: int) -> int:
        """The insert time that overlaps the face by exactly one ms less than required."""
        return self.high_end - length if self.before else self.low


def _short_overlap_windows(ctx: _Context) -> list[_ShortOverlap]:
    overlap = ctx.bounds.overlap_min_ms
    options = []
    for face in ctx.faces:
        # Before the face: the window ends less than `overlap` into it.
        before_end = min(face.start_time + overlap - 1, ctx.video_ms)
        options.append(_ShortOverlap(face, min(ctx.audio_ms, before_end), 0, before_end, True))
        # After it: the window starts less than `overlap` before the face ends.
        after_start = max(0, face.end_time - overlap + 1)
        longest = min(ctx.audio_ms, ctx.video_ms - after_start)
        options.append(_ShortOverlap(face, longest, after_start, ctx.video_ms, False))
    return [o for o in options if o.longest >= ctx.bounds.crop_min_ms]


@st.composite
def _overlap_too_short(draw: st.DrawFn, ctx: _Context) -> Body:
    option = draw(st.sampled_from(_short_overlap_windows(ctx)))
    length = draw(st.integers(ctx.bounds.crop_min_ms, option.longest))
    high = option.high_end - length
    insert = draw(_near(option.boundary_insert(length), option.low, high))
    start = draw(st.integers(0, ctx.audio_ms - length))
    return _with_choice(
        draw(_valid_body(ctx)),
        face_id=option.face.face_id,
        sound_start_time=start,
        sound_end_time=start + length,
        sound_insert_time=insert,
    )


@st.composite
def _volume_out_of_range(draw: st.DrawFn, ctx: _Context) -> Body:
    low, high = ctx.bounds.volume
    field = draw(st.sampled_from(ctx.bounds.volume_fields))
    value = draw(
        st.one_of(
            st.sampled_from([math.nextafter(high, math.inf), math.nextafter(low, -math.inf)]),
            st.floats(high, high + 100, exclude_min=True, allow_nan=False),
            st.floats(low - 100, low, exclude_max=True, allow_nan=False),
            st.integers(int(high) + 1, int(high) + 100),
            st.integers(int(low) - 100, int(low) - 1),
        )
    )
    return _with_choice(draw(_valid_body(ctx)), **{field: value})


@st.composite
def _external_id_taken(draw: st.DrawFn, ctx: _Context, taken: str) -> Body:
    return {**draw(_valid_body(ctx)), "external_task_id": taken}


@st.composite
def _callback_not_http(draw: st.DrawFn, ctx: _Context) -> Body:
    host = draw(st.sampled_from(_HOSTS))
    path = draw(_slugs())
    url = draw(
        st.sampled_from(
            [
                f"ftp://{host}/{path}",
                f"{host}/{path}",
                f"/{path}",
                f"mailto:{path}@{host}",
                "https://",
                f"http:///{path}",
                f"ws://{host}/{path}",
            ]
        )
    )
    return {**draw(_valid_body(ctx)), "callback_url": url}


_CreateBranch: TypeAlias = Callable[[_Context], st.SearchStrategy[Body]]

_CREATE_BRANCHES: Final[Mapping[str, _CreateBranch]] = {
    "session-known": _session_unknown,
    "face-choose-single": _face_choose_not_single,
    "face-known": _face_unknown,
    "audio-source-xor": _audio_not_single,
    "audio-id-known": _audio_id_unknown,
    "sound-url-reachable": _sound_url_unreachable,
    "sound-format": _sound_format,
    "sound-size": _sound_too_big,
    "sound-content": _sound_content,
    "sound-duration": _sound_duration,
    "times-non-negative": _time_negative,
    "crop-min-length": _crop_too_short,
    "crop-end-within-audio": _crop_past_audio,
    "insert-within-video": _insert_past_video,
    "insert-face-overlap": _overlap_too_short,
    "volume-range": _volume_out_of_range,
    "callback-url-http": _callback_not_http,
}


def _create_branches(
    ctx: _Context, taken_external_task_id: str | None
) -> tuple[dict[str, st.SearchStrategy[Body]], dict[str, str]]:
    """The branch of every createLipSyncTask rule, and why the others cannot be drawn."""
    branches: dict[str, st.SearchStrategy[Body]] = {}
    missing: dict[str, str] = {}
    for rule in ctx.bounds.rules.values():
        if rule.operation != _OP_CREATE:
            continue
        if rule.id in UNEXPRESSIBLE_RULES:
            missing[rule.id] = UNEXPRESSIBLE_RULES[rule.id]
        elif rule.id == "external-task-id-unique":
            if taken_external_task_id:
                branches[rule.id] = _external_id_taken(ctx, taken_external_task_id)
            else:
                missing[rule.id] = (
                    "needs an external_task_id already taken (taken_external_task_id)"
                )
        elif (
            rule.id == "sound-size"
            and _oversize_wav_ms(ctx.bounds.sound_size_bytes, ctx.bounds.sound_duration_ms[1]) < 0
        ):
            missing[rule.id] = "no audio of valid duration is over the size limit"
        elif rule.id == "insert-within-video" and not _past_video_faces(ctx):
            missing[rule.id] = (
                "no face ends close enough to the end of the video for this audio to overlap "
                "it and run past the video"
            )
        elif rule.id == "insert-face-overlap" and not _short_overlap_windows(ctx):
            missing[rule.id] = "every face covers too much of the video to miss it"
        elif rule.id in _CREATE_BRANCHES:
            branches[rule.id] = _CREATE_BRANCHES[rule.id](ctx)
        else:
            missing[rule.id] = "no strategy knows how to break this rule"
    return branches, missing


def expressible_create_rules(
    session_id: str,
    faces: Sequence[FaceLike],
    audio_duration_ms: int,
    video_duration_ms: int,
    *,
    sound_file: str | None = None,
    audio_id: str | None = None,
    taken_external_task_id: str | None = None,
    spec: SpecSource = None,
) -> dict[str, str | None]:
    """Every createLipSyncTask rule: ``None`` if :func:`invalid_create_requests` can break it for
    these inputs, otherwise the reason it cannot.

    >>> rules = expressible_create_rules("1", [{"face_id": "0", "start_time": 0,
    ...                                         "end_time": 5200}], 6000, 9800)
    >>> rules["crop-min-length"] is None
    True
    >>> print(rules["session-valid"])
    needs a session older than 24 hours (move the mock's clock instead)
    """
    ctx = _context(
        session_id, faces, audio_duration_ms, video_duration_ms, sound_file, audio_id, spec
    )
    _require_valid_room(ctx)
    branches, missing = _create_branches(ctx, taken_external_task_id)
    ordered = [r.id for r in ctx.bounds.rules.values() if r.operation == _OP_CREATE]
    return {rule: (None if rule in branches else missing[rule]) for rule in ordered}


def _pick(
    branches: Mapping[str, st.SearchStrategy[Body]],
    missing: Mapping[str, str],
    rules: Sequence[str] | None,
) -> st.SearchStrategy[tuple[str, Body]]:
    wanted = list(branches) if rules is None else list(rules)
    for rule in wanted:
        if rule not in branches:
            reason = missing.get(rule, "it is not a rule of this operation")
            raise ValueError(f"cannot break rule {rule!r}: {reason}")
    if not wanted:
        raise ValueError("no rule to break")
    return st.one_of(*[_tagged(rule, branches[rule]) for rule in wanted])


def _tagged(rule: str, strategy: st.SearchStrategy[Body]) -> st.SearchStrategy[tuple[str, Body]]:
    return strategy.map(lambda body: (rule, body))


def invalid_create_requests(
    session_id: str,
    faces: Sequence[FaceLike],
    audio_duration_ms: int,
    video_duration_ms: int,
    *,
    sound_file: str | None = None,
    audio_id: str | None = None,
    taken_external_task_id: str | None = None,
    rules: Sequence[str] | None = None,
    spec: SpecSource = None,
) -> st.SearchStrategy[tuple[str, Body]]:
    """``(rule_id, body)`` pairs: create-task bodies breaking the named rule and only it.

    One branch per ``x-kling-rules`` entry of ``createLipSyncTask`` that a body can break
    (schema rules ``face-choose-single``, ``times-non-negative``, ``volume-range`` included);
    :func:`expressible_create_rules` says which ones apply to these inputs and why the others
    do not. Numeric rules are broken just past their boundary, where off-by-some servers fail.
    Two rules cannot be broken alone: a crop shorter than 2 s cannot overlap a face for 2 s
    (``crop-min-length`` also breaks ``insert-face-overlap``), and an audio shorter than 2 s
    cannot hold a 2 s crop (``sound-duration`` also breaks ``crop-end-within-audio``); in both
    cases the named rule is the one a server can check first.

    The arguments are those of :func:`create_task_requests`, plus:

    Args:
        audio_duration_ms: Must be the exact duration of the audio for the
            ``crop-end-within-audio`` branch to be refused (a longer audio would accept it).
        video_duration_ms: Must be exact for ``insert-within-video``.
        taken_external_task_id: An ``external_task_id`` already used by a task of the account;
            enables the ``external-task-id-unique`` branch.
        rules: Only these rules (default: every expressible one).

    >>> from hypothesis import given, settings
    >>> faces = [{"face_id": "0", "start_time": 0, "end_time": 5200}]
    >>> @settings(max_examples=10)
    ... @given(invalid_create_requests("1", faces, 6000, 9800, rules=["volume-range"]))
    ... def test(pair):
    ...     rule, body = pair
    ...     fc = body["face_choose"][0]
    ...     volumes = [fc.get("sound_volume", 1), fc.get("original_audio_volume", 1)]
    ...     assert rule == "volume-range" and not all(0 <= v <= 2 for v in volumes)
    >>> test()
    """
    ctx = _context(
        session_id, faces, audio_duration_ms, video_duration_ms, sound_file, audio_id, spec
    )
    _require_valid_room(ctx)
    branches, missing = _create_branches(ctx, taken_external_task_id)
    return _pick(branches, missing, rules)


def invalid_identify_face_requests(
    rules: Sequence[str] | None = None, spec: SpecSource = None
) -> st.SearchStrategy[tuple[str, Body]]:
    """``(rule_id, body)`` pairs: identify-face bodies breaking one rule.

    Branches: ``video-source-xor`` (both or neither of ``video_id`` / ``video_url``),
    ``video-id-known`` (a ``video_id`` no server generated),
    ``video-url-reachable`` (a loopback URL nothing answers, a ``file:`` URL, a bare name),
    ``video-format`` (a URL of another video format). The other identify-face rules are about
    the content behind a URL (:data:`UNEXPRESSIBLE_RULES`).

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(invalid_identify_face_requests(rules=["video-source-xor"]))
    ... def test(pair):
    ...     rule, body = pair
    ...     assert bool(body.get("video_id")) == bool(body.get("video_url"))
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    url = derived_video_urls(spec)
    name = _slugs()
    video_ext = st.sampled_from(bounds.video_formats)
    branches: dict[str, st.SearchStrategy[Body]] = {
        "video-source-xor": st.one_of(
            st.just({}),
            st.just({"video_id": "", "video_url": ""}),
            st.builds(lambda u, i: {"video_id": i, "video_url": u}, url, _slugs(min_size=1)),
        ),
        "video-id-known": _unknown_ids("unknown-video-", 64).map(lambda i: {"video_id": i}),
        "video-url-reachable": st.one_of(
            st.builds(lambda n, e: {"video_url": f"{_UNREACHABLE_HOST}/{n}.{e}"}, name, video_ext),
            st.builds(lambda n, e: {"video_url": f"file:///nonexistent/{n}.{e}"}, name, video_ext),
            st.builds(lambda n, e: {"video_url": f"{n}.{e}"}, name, video_ext),
        ),
        "video-format": st.builds(
            lambda h, n, e: {"video_url": f"https://{h}/{n}.{e}"},
            st.sampled_from(_HOSTS),
            name,
            st.sampled_from(["avi", "mkv", "webm", "flv", "wmv", "gif"]).filter(
                lambda e: e not in bounds.video_formats
            ),
        ),
    }
    known = {r.id for r in bounds.rules.values() if r.operation == _OP_IDENTIFY}
    branches = {rule: s for rule, s in branches.items() if rule in known}
    missing = {
        r: UNEXPRESSIBLE_RULES.get(r, "no strategy knows how to break this rule")
        for r in known - set(branches)
    }
    return _pick(branches, missing, rules)


def invalid_list_queries(
    rules: Sequence[str] | None = None, spec: SpecSource = None
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """``(rule_id, query)`` pairs: list queries with one page parameter out of its range.

    The value is just outside the schema's ``minimum`` / ``maximum``, far outside, or not an
    integer at all.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20)
    ... @given(invalid_list_queries())
    ... def test(pair):
    ...     rule, query = pair
    ...     name = {"page-num-range": "pageNum", "page-size-range": "pageSize"}[rule]
    ...     value = query[name]
    ...     high = 1000 if name == "pageNum" else 500
    ...     assert not isinstance(value, int) or not 1 <= value <= high
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    branches: dict[str, st.SearchStrategy[Body]] = {}
    for name, (low, high, rule) in bounds.page.items():
        value = st.one_of(
            st.sampled_from([low - 1, high + 1]),
            st.integers(high + 1, high * 1000),
            st.integers(-(10**6), low - 1),
            st.text(string.ascii_letters, min_size=1, max_size=6),
            st.sampled_from([f"{low}.5", f"{high}x"]),
        )
        others = st.fixed_dictionaries(
            {},
            optional={
                other: st.integers(o_low, o_high)
                for other, (o_low, o_high, _) in bounds.page.items()
                if other != name
            },
        )
        branches[rule] = st.builds(lambda v, rest, name=name: {**rest, name: v}, value, others)
    return _pick(branches, {}, rules)


def invalid_task_ids(spec: SpecSource = None) -> st.SearchStrategy[tuple[str, str]]:
    """``("task-exists", id)`` pairs: task ids no account has.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(invalid_task_ids())
    ... def test(pair):
    ...     assert pair[0] == "task-exists" and pair[1].startswith("unknown-task-")
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    return _unknown_ids("unknown-task-", bounds.task_id_max).map(lambda i: ("task-exists", i))


def invalid_tts_requests(
    rules: Sequence[str] | None = None, spec: SpecSource = None
) -> st.SearchStrategy[tuple[str, Body]]:
    """``(rule_id, body)`` pairs: TTS bodies with too long a text, or a voice that is not an
    official voice of the given language.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(invalid_tts_requests(rules=["tts-text-length"]))
    ... def test(pair):
    ...     assert len(pair[1]["text"]) > 1000
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    _, high = bounds.tts_text
    valid = tts_requests(spec)
    wrong_language = [
        (voice, lang)
        for voice, own in sorted(bounds.voices.items())
        for lang in bounds.tts_languages
        if lang != own
    ]
    unknown_voice = st.builds(
        lambda v, lang: (v, lang),
        _unknown_ids("unknown-voice-", 64),
        st.sampled_from(bounds.tts_languages),
    )
    voice = st.sampled_from(wrong_language) | unknown_voice if wrong_language else unknown_voice
    branches: dict[str, st.SearchStrategy[Body]] = {
        "tts-text-length": st.builds(
            lambda body, extra: {**body, "text": "a" * (high + extra)},
            valid,
            st.integers(1, 100),
        ),
        "tts-voice-known": st.builds(
            lambda body, v: {**body, "voice_id": v[0], "voice_language": v[1]}, valid, voice
        ),
    }
    known = {r.id for r in bounds.rules.values() if r.operation == _OP_TTS}
    return _pick({r: b for r, b in branches.items() if r in known}, {}, rules)


# -- server payloads ---------------------------------------------------------------------------


def _seconds(bounds: _Bounds) -> st.SearchStrategy[str]:
    return st.from_regex(bounds.seconds_pattern, fullmatch=True)


def _timestamps(bounds: _Bounds) -> st.SearchStrategy[tuple[int, int]]:
    """(created_at, updated_at), the second never earlier."""
    return st.integers(bounds.timestamp_min, bounds.millis_max // 2).flatmap(
        lambda created: st.tuples(st.just(created), st.integers(created, bounds.millis_max))
    )


_NUMERIC_IDS: Final = st.from_regex(r"[1-9][0-9]{17}", fullmatch=True)


@st.composite
def _task_fields(draw: st.DrawFn, bounds: _Bounds, status: str | None) -> Body:
    chosen = draw(st.sampled_from(bounds.statuses)) if status is None else status
    if chosen not in bounds.statuses:
        raise ValueError(f"unknown task status {chosen!r}; the spec has {bounds.statuses}")
    created, updated = draw(_timestamps(bounds))
    duration = draw(_seconds(bounds))
    watermark = draw(st.booleans())
    videos: list[Body] = []
    if chosen == "succeed":
        video: Body = {
            "id": draw(_NUMERIC_IDS),
            "url": f"https://example.com/videos/{draw(_slugs())}.mp4",
            "duration": duration,
        }
        if watermark:
            video["watermark_url"] = video["url"] + "?watermark=1"
        videos.append(video)
    failed = chosen == "failed"
    info: Body = {
        "parent_video": {
            "id": draw(st.just("") | _NUMERIC_IDS),
            "url": draw(st.just("") | _derived_urls(bounds)),
            "duration": duration,
        }
    }
    if draw(st.booleans()):
        info["external_task_id"] = draw(st.just("") | _slugs())
    return {
        "task_id": draw(_NUMERIC_IDS),
        "task_status": chosen,
        "task_status_msg": draw(st.text(min_size=1, max_size=80)) if failed else "",
        "task_info": info,
        "task_result": {"videos": videos},
        "watermark_info": {"enabled": watermark},
        "final_unit_deduction": draw(st.integers(1, 100).map(str)) if chosen == "succeed" else "0",
        "created_at": created,
        "updated_at": updated,
    }


def tasks(status: str | None = None, spec: SpecSource = None) -> st.SearchStrategy[Body]:
    """Task objects (the ``data`` of a task query) conforming to the ``Task`` schema.

    ``status`` is one of the ``TaskStatus`` enum (any by default). Results appear only on
    ``succeed`` (with a ``watermark_url`` when the watermark is enabled), a reason only on
    ``failed``, and ``updated_at`` is never before ``created_at``.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(tasks("succeed"))
    ... def test(task):
    ...     assert task["task_status"] == "succeed" and len(task["task_result"]["videos"]) == 1
    >>> test()
    """
    return _task_fields(_bounds(resolve_spec(spec)), status)


def callback_payloads(
    status: str | None = None, spec: SpecSource = None
) -> st.SearchStrategy[Body]:
    """Callback bodies (no envelope) conforming to the ``CallbackPayload`` schema.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(callback_payloads("failed"))
    ... def test(payload):
    ...     assert payload["task_status"] == "failed" and "code" not in payload
    >>> test()
    """
    return tasks(status, spec).map(
        lambda task: {k: v for k, v in task.items() if k != "watermark_info"}
    )


def error_envelopes(code: int | None = None, spec: SpecSource = None) -> st.SearchStrategy[Body]:
    """Error responses (``ErrorEnvelope``) for a documented code (any by default).

    The HTTP status that goes with each code is ``Spec.http_status[code]``.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(error_envelopes(1201))
    ... def test(envelope):
    ...     assert envelope["code"] == 1201 and envelope["data"] is None and envelope["message"]
    >>> test()
    """
    bounds = _bounds(resolve_spec(spec))
    if code is not None and code not in bounds.error_codes:
        raise ValueError(f"{code} is not a documented error code: {bounds.error_codes}")
    codes = st.sampled_from(bounds.error_codes) if code is None else st.just(code)
    return st.builds(
        lambda c, message, request_id: {
            "code": c,
            "message": message,
            "request_id": str(request_id),
            "data": None,
        },
        codes,
        st.text(min_size=1, max_size=120).filter(str.strip),
        st.uuids(),
    )
