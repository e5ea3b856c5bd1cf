"""Reads the YAML fixtures file (`--fixtures FILE`) into the domain's FixtureSet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .domain.errors import ApiError
from .domain.faults import Fault, fault_from_dict
from .domain.fixtures import FixtureSet, OutcomeRule
from .domain.models import AudioMeta, Face, MetaSource, TaskStatus, VideoMeta


class FixtureError(ValueError):
    """A fixtures file that does not describe what it should; the message says where."""


def _int(entry: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FixtureError(f"{where}.{key}: expected a non-negative integer, got {value!r}")
    return value


def video(entry: dict[str, Any], where: str) -> VideoMeta:
    duration = _int(entry, "duration_ms", where)
    url = str(entry.get("url", ""))
    fmt = entry.get("format") or ("mov" if url.lower().split("?")[0].endswith(".mov") else "mp4")
    faces = tuple(
        Face(
            str(f.get("face_id", i)),
            _int(f, "start_time", f"{where}.faces[{i}]", 0),
            _int(f, "end_time", f"{where}.faces[{i}]", duration),
        )
        for i, f in enumerate(entry.get("faces") or [{"face_id": "0"}])
    )
    return VideoMeta(
        duration_ms=duration,
        width=_int(entry, "width", where, 1920),
        height=_int(entry, "height", where, 1080),
        size_bytes=_int(entry, "size_bytes", where, duration * 250),
        format=str(fmt),
        faces=faces,
        source=MetaSource.FIXTURE,
        session_id=str(entry["session_id"]) if entry.get("session_id") else None,
    )


def audio(entry: dict[str, Any], where: str) -> AudioMeta:
    duration = _int(entry, "duration_ms", where)
    url = str(entry.get("url", ""))
    ext = url.lower().split("?")[0].rsplit(".", 1)[-1] if "." in url else "mp3"
    return AudioMeta(
        duration_ms=duration,
        size_bytes=_int(entry, "size_bytes", where, duration * 16),
        format=str(entry.get("format") or ext),
        source=MetaSource.FIXTURE,
    )


def outcome(entry: dict[str, Any], where: str) -> OutcomeRule:
    try:
        status = TaskStatus(entry.get("status", "succeed"))
    except ValueError as exc:
        raise FixtureError(f"{where}.status: one of submitted/processing/succeed/failed") from exc
    return OutcomeRule(
        status=status,
        message=str(entry.get("message", "")),
        external_task_id=entry.get("external_task_id"),
        video_url=entry.get("video_url"),
        submitted_ms=_int(entry, "submitted_ms", where) if "submitted_ms" in entry else None,
        processing_ms=_int(entry, "processing_ms", where) if "processing_ms" in entry else None,
    )


def apply(doc: dict[str, Any], into: FixtureSet) -> FixtureSet:
    """Add the videos, audios and outcomes of a parsed fixtures document to a FixtureSet."""
    if not isinstance(doc, dict):
        raise FixtureError("fixtures: expected a mapping with videos/audios/outcomes")
    for i, entry in enumerate(doc.get("videos") or []):
        where = f"videos[{i}]"
        meta = video(entry, where)
        if entry.get("url"):
            into.videos_by_url[str(entry["url"])] = meta
        elif entry.get("id"):
            into.videos_by_id[str(entry["id"])] = meta
        else:
            raise FixtureError(f"{where}: give a url or an id")
    for i, entry in enumerate(doc.get("audios") or []):
        sound = audio(entry, f"audios[{i}]")
        if entry.get("url"):
            into.audios_by_url[str(entry["url"])] = sound
        elif entry.get("id"):
            into.audios_by_id[str(entry["id"])] = sound
        else:
            raise FixtureError(f"audios[{i}]: give a url or an id")
    for i, entry in enumerate(doc.get("outcomes") or []):
        into.outcomes.append(outcome(entry, f"outcomes[{i}]"))
    return into


def read(path: str | Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FixtureError(f"cannot read fixtures file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise FixtureError(f"{path}: expected a mapping with videos/audios/outcomes/faults")
    return doc


def load(path: str | Path, into: FixtureSet | None = None) -> FixtureSet:
    return apply(read(path), into if into is not None else FixtureSet())


def faults(doc: dict[str, Any]) -> list[Fault]:
    """The `faults:` of a fixtures document, in the control API's shape."""
    out: list[Fault] = []
    for i, entry in enumerate(doc.get("faults") or []):
        if not isinstance(entry, dict):
            raise FixtureError(f"faults[{i}]: expected a mapping with a kind")
        try:
            out.append(fault_from_dict(entry))
        except ApiError as exc:
            raise FixtureError(f"faults[{i}]: {exc.message}") from exc
    return out
