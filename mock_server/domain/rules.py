"""The documented constraints of a lip-sync task that JSON Schema cannot express."""

from __future__ import annotations

from ..urls import split_url
from .errors import ApiError
from .models import SESSION_TTL_MS, Face, Session


def check_session(session: Session, now_ms: int) -> None:
    age = now_ms - session.created_at_ms
    if age >= SESSION_TTL_MS:
        raise ApiError.rule_broken(
            "session-valid",
            f"session_id: session {session.session_id} expired {age - SESSION_TTL_MS} ms ago; "
            "sessions are valid for 24 hours, call identify-face again",
        )


def check_exactly_one(first: str, second: str, names: tuple[str, str], rule: str) -> None:
    if bool(first) == bool(second):
        state = "both are set" if first else "neither is set"
        raise ApiError.rule_broken(
            rule, f"exactly one of {names[0]} and {names[1]} must be set, but {state}"
        )


def check_crop(start_ms: int, end_ms: int, field: str) -> None:
    if end_ms - start_ms < 2000:
        raise ApiError.rule_broken(
            "crop-min-length",
            f"{field}.sound_end_time: the sound cropped from {field}.sound_start_time "
            f"[{start_ms}, {end_ms}) ms lasts {end_ms - start_ms} ms; "
            "it must last at least 2000 ms",
        )


def check_crop_end(end_ms: int, audio_duration_ms: int, field: str) -> None:
    if end_ms > audio_duration_ms:
        raise ApiError.rule_broken(
            "crop-end-within-audio",
            f"{field}.sound_end_time: {end_ms} ms is later than the end of the audio "
            f"({audio_duration_ms} ms)",
        )


def check_insert(
    insert_ms: int, length_ms: int, video_duration_ms: int, face: Face, field: str
) -> None:
    end = insert_ms + length_ms
    if insert_ms < 0 or end > video_duration_ms:
        raise ApiError.rule_broken(
            "insert-within-video",
            f"{field}.sound_insert_time: the sound would play over [{insert_ms}, {end}) ms but "
            f"the video lasts {video_duration_ms} ms",
        )
    overlap = min(end, face.end_ms) - max(insert_ms, face.start_ms)
    if overlap < 2000:
        raise ApiError.rule_broken(
            "insert-face-overlap",
            f"{field}.sound_insert_time: the sound [{insert_ms}, {end}) ms overlaps face "
            f"{face.face_id} [{face.start_ms}, {face.end_ms}) ms by {max(overlap, 0)} ms; "
            "it must overlap by at least 2000 ms",
        )


def check_callback_url(url: str) -> None:
    if not url:
        return
    parts = split_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError.rule_broken(
            "callback-url-http", f"callback_url: {url!r} is not an absolute http(s) URL"
        )
