"""The documented units and formats of every successful answer verify reads.

* ``kling_timestamps``: ``created_at`` / ``updated_at`` are Unix **milliseconds** (a plausible
  epoch range: seconds are a thousand times too small), ``updated_at >= created_at``, and they
  move forward: a task's ``created_at`` never changes and its ``updated_at`` never goes back
  across reads, and a task created later was not created earlier;
* ``kling_durations``: durations are decimal strings of **seconds**, inside the documented media
  bounds (milliseconds written as seconds are a thousand times too long);
* ``kling_ids``: ids are non-empty strings (JSON numbers lose digits past 2**53), face ids are
  small numeric strings unique in their session, every ``request_id`` is new;
* ``kling_face_intervals``: face intervals are milliseconds inside the video, start before end;
* ``kling_task_fields``: status words of the spec, ``task_status_msg`` empty unless failed,
  ``final_unit_deduction`` "0" until the task succeeds, result videos only once it succeeded,
  ``watermark_url`` only when the watermark was asked for, ``external_task_id`` echoed, pages no
  longer than ``pageSize``.

Each check reads the data of an answer (and callbacks, with :func:`payload_problems`); the
functions here return the problems, :class:`UnitChecks` records them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from mock_server.spec import Spec

from ...report import CheckKind, Report
from ..target import Answer, summarise

EPOCH_MS_MIN: Final = 1_577_836_800_000  # 2020-01-01T00:00:00Z: before any Kling API
EPOCH_MS_MAX: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
SECONDS: Final = re.compile(r"^[0-9]+(\.[0-9]+)?$")
FACE_ID: Final = re.compile(r"^[0-9]+$")
STATUSES: Final = ("submitted", "processing", "succeed", "failed")
TTS_MAX_MS: Final = 600_000  # 1000 characters spoken slowly; a duration in ms is far beyond

TIMESTAMPS = "kling_timestamps"
DURATIONS = "kling_durations"
IDS = "kling_ids"
FACE_INTERVALS = "kling_face_intervals"
TASK_FIELDS = "kling_task_fields"
UNIT_CHECKS: Final = (TIMESTAMPS, DURATIONS, IDS, FACE_INTERVALS, TASK_FIELDS)

Problems = Iterator[tuple[str, str]]
"""(check, why) pairs."""


def timestamp_problems(item: Mapping[str, Any], where: str) -> Problems:
    """Milliseconds in a plausible range, ``updated_at >= created_at``."""
    stamps = {k: item.get(k) for k in ("created_at", "updated_at") if k in item}
    for key, value in stamps.items():
        if not isinstance(value, int) or isinstance(value, bool):
            yield TIMESTAMPS, f"{where}.{key} is {value!r}, not an integer of milliseconds"
        elif not EPOCH_MS_MIN <= value < EPOCH_MS_MAX:
            unit = " (seconds, not milliseconds?)" if value < EPOCH_MS_MIN / 100 else ""
            yield (
                TIMESTAMPS,
                f"{where}.{key} = {value} is not Unix milliseconds between 2020 and 2100{unit}",
            )
    created, updated = stamps.get("created_at"), stamps.get("updated_at")
    if isinstance(created, int) and isinstance(updated, int) and updated < created:
        yield TIMESTAMPS, f"{where}: updated_at {updated} is before created_at {created}"


def duration_problems(value: Any, where: str, low_ms: int, high_ms: int) -> Problems:
    """A decimal string of seconds between the bounds."""
    if not isinstance(value, str) or not SECONDS.match(value):
        yield DURATIONS, f"{where} is {value!r}, not a decimal string of seconds"
        return
    got = ms(value)
    if got is None or not low_ms <= got <= high_ms:
        yield (
            DURATIONS,
            f"{where} = {value!r} s is outside {low_ms / 1000:g}-{high_ms / 1000:g} s "
            "(milliseconds written as seconds?)",
        )


def id_problems(value: Any, where: str) -> Problems:
    if not isinstance(value, str) or not value:
        yield IDS, f"{where} is {value!r}, not a non-empty string"


def task_problems(
    spec: Spec, task: Mapping[str, Any], where: str, sent: Mapping[str, Any] | None = None
) -> Problems:
    """Every unit and field rule of one task (a query, a list item or a callback payload)."""
    low, high = (int(b) for b in spec.rules["video-duration"].boundary)
    yield from timestamp_problems(task, where)
    yield from id_problems(task.get("task_id"), f"{where}.task_id")
    status = task.get("task_status")
    if status not in STATUSES:
        yield TASK_FIELDS, f"{where}.task_status {status!r} is not one of {', '.join(STATUSES)}"
    message = task.get("task_status_msg")
    if status in ("submitted", "processing", "succeed") and message not in (None, ""):
        yield TASK_FIELDS, f"{where}.task_status_msg is {message!r} for a {status} task"
    units = task.get("final_unit_deduction")
    if status in ("submitted", "processing") and units not in (None, "0"):
        yield TASK_FIELDS, f"{where}.final_unit_deduction is {units!r} before the task succeeded"
    info = _obj(task.get("task_info"))
    parent = info.get("parent_video")
    if isinstance(parent, dict):
        yield from duration_problems(
            parent.get("duration"), f"{where}.task_info.parent_video.duration", low, high
        )
    result = _obj(task.get("task_result"))
    videos = result.get("videos") or []
    if videos and status != "succeed":
        yield TASK_FIELDS, f"{where}.task_result.videos is not empty for a {status} task"
    watermark = task.get("watermark_info")
    enabled = isinstance(watermark, dict) and watermark.get("enabled") is True
    for i, video in enumerate(v for v in videos if isinstance(v, dict)):
        yield from id_problems(video.get("id"), f"{where}.task_result.videos[{i}].id")
        yield from duration_problems(
            video.get("duration"), f"{where}.task_result.videos[{i}].duration", low, high
        )
        if isinstance(watermark, dict) and ("watermark_url" in video) != enabled:
            yield (
                TASK_FIELDS,
                f"{where}.task_result.videos[{i}].watermark_url is "
                f"{'missing' if enabled else 'sent'} with watermark_info.enabled {enabled}",
            )
    if sent is not None:
        asked = sent.get("external_task_id") or ""
        echoed = info.get("external_task_id")
        if echoed is not None and echoed != asked:
            yield TASK_FIELDS, f"{where}.task_info.external_task_id {echoed!r} is not {asked!r}"


def session_problems(data: Mapping[str, Any], video_ms: int | None) -> Problems:
    """identify-face: ids, face ids, face intervals in milliseconds inside the video."""
    yield from id_problems(data.get("session_id"), "data.session_id")
    faces = [f for f in data.get("face_data") or [] if isinstance(f, dict)]
    ids = [f.get("face_id") for f in faces]
    for i, face_id in enumerate(ids):
        if not isinstance(face_id, str) or not FACE_ID.match(face_id):
            yield IDS, f"data.face_data[{i}].face_id is {face_id!r}, not a numeric string"
    if len(set(map(str, ids))) != len(ids):
        yield IDS, f"data.face_data repeats a face_id: {ids}"
    times: list[int] = []
    for i, face in enumerate(faces):
        start, end = face.get("start_time"), face.get("end_time")
        if not isinstance(start, int) or not isinstance(end, int):
            yield FACE_INTERVALS, f"data.face_data[{i}]: {start!r}-{end!r} are not integer ms"
            continue
        times += [start, end]
        if not 0 <= start < end:
            yield FACE_INTERVALS, f"data.face_data[{i}]: start {start} is not before end {end}"
        if video_ms is not None and end > video_ms:
            yield (
                FACE_INTERVALS,
                f"data.face_data[{i}] ends at {end} ms, after the video ({video_ms} ms)",
            )
    if times and video_ms is not None and video_ms >= 2000 and max(times) < 100:
        yield (
            FACE_INTERVALS,
            f"face intervals end by {max(times)} in a {video_ms} ms video: seconds, not ms?",
        )


def ms(seconds: Any) -> int | None:
    """A duration written in seconds (``"5.2"``), in milliseconds; None when it is not one.

    >>> ms("5.2"), ms("x")
    (5200, None)
    """
    try:
        return int(Decimal(str(seconds)) * 1000)
    except (InvalidOperation, ValueError):
        return None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class UnitChecks:
    """Records the unit checks on every answer verify reads, remembering what moves forward."""

    def __init__(self, spec: Spec, report: Report) -> None:
        self.spec = spec
        self.report = report
        self.video_ms: dict[str, int] = {}  # session_id -> video duration (from its tasks)
        self._faces: dict[str, tuple[Mapping[str, Any], str]] = {}  # session_id -> data, label
        self._tasks: dict[str, tuple[int, int]] = {}  # task_id -> (created_at, updated_at)
        self._last_created: int | None = None
        self._request_ids: set[str] = set()
        self._sent: dict[str, Mapping[str, Any]] = {}  # task_id -> its create body
        self._videos: dict[str, Mapping[str, Any]] = {}  # session_id -> its identify body
        for name in UNIT_CHECKS:
            report.check(name, CheckKind.KLING)

    def observe(self, operation_id: str, label: str, request: Any, answer: Answer) -> None:
        """The unit checks of one answer (only successful answers carry data to check)."""
        body = answer.body if isinstance(answer.body, dict) else {}
        request_id = body.get("request_id")
        if isinstance(request_id, str) and request_id:
            fresh = request_id not in self._request_ids
            self._request_ids.add(request_id)
            self._record(
                IDS,
                label,
                request,
                answer,
                [] if fresh else [f"request_id {request_id!r} was already used"],
            )
        if answer.http_status != 200 or answer.code != 0:
            return
        data = answer.data
        problems: list[tuple[str, str]] = []
        if operation_id == "identifyFace" and isinstance(data, dict):
            session_id = str(data.get("session_id"))
            problems += session_problems(data, self.video_ms.get(session_id))
            self._faces[session_id] = (data, label)
            if isinstance(request, dict):
                self._videos[session_id] = request
        elif operation_id == "createLipSyncTask" and isinstance(data, dict):
            problems += timestamp_problems(data, "data")
            problems += id_problems(data.get("task_id"), "data.task_id")
            problems += self._forward(data, "data", created=True)
            if isinstance(request, dict):
                self._sent[str(data.get("task_id"))] = request
                asked = request.get("external_task_id") or ""
                echoed = (data.get("task_info") or {}).get("external_task_id")
                if echoed is not None and echoed != asked:
                    problems.append(
                        (
                            TASK_FIELDS,
                            f"data.task_info.external_task_id {echoed!r} is not {asked!r}",
                        )
                    )
        elif operation_id == "getLipSyncTask" and isinstance(data, dict):
            problems += self._task(data, "data")
        elif operation_id == "listLipSyncTasks" and isinstance(data, list):
            size = request.get("pageSize") if isinstance(request, dict) else None
            if isinstance(size, int) and len(data) > size:
                problems.append((TASK_FIELDS, f"{len(data)} tasks on a page of pageSize {size}"))
            for i, task in enumerate(t for t in data if isinstance(t, dict)):
                problems += self._task(task, f"data[{i}]")
        elif operation_id == "createTts" and isinstance(data, dict):
            problems += timestamp_problems(data, "data")
            problems += id_problems(data.get("task_id"), "data.task_id")
            audios = (data.get("task_result") or {}).get("audios") or []
            for i, audio in enumerate(a for a in audios if isinstance(a, dict)):
                problems += id_problems(audio.get("id"), f"data.task_result.audios[{i}].id")
                problems += duration_problems(
                    audio.get("duration"), f"data.task_result.audios[{i}].duration", 1, TTS_MAX_MS
                )
        self._record_all(label, request, answer, problems)

    def payload(
        self, label: str, request: str, payload: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """The unit problems of a callback payload (recorded by the caller's check too)."""
        problems = list(task_problems(self.spec, payload, "body"))
        self._record_all(label, request, Answer(200, payload, ""), problems)
        return problems

    def _task(self, task: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
        task_id = str(task.get("task_id"))
        problems = list(task_problems(self.spec, task, where, self._sent.get(task_id)))
        problems += self._forward(task, where)
        parent = (task.get("task_info") or {}).get("parent_video") or {}
        video_ms = ms(parent.get("duration")) if isinstance(parent, dict) else None
        session_id = self._session_of(task_id)
        asked = self._videos.get(session_id or "")
        if asked is not None and isinstance(parent, dict):
            for key, field in (("url", "video_url"), ("id", "video_id")):
                given = asked.get(field) or ""
                if parent.get(key) not in ("", given):
                    problems.append(
                        (
                            TASK_FIELDS,
                            f"{where}.task_info.parent_video.{key} {parent.get(key)!r} is "
                            f"neither empty nor the {field} given to identify-face",
                        )
                    )
        if video_ms is not None and session_id is not None and session_id not in self.video_ms:
            self.video_ms[session_id] = video_ms
            data, label = self._faces[session_id]
            late = [p for p in session_problems(data, video_ms) if p[0] == FACE_INTERVALS]
            for check, why in late:
                if "after the video" in why or "seconds, not ms" in why:
                    self.report.record(
                        check,
                        CheckKind.KLING,
                        Answer(200, None, "").failure(check, label, why, session_id),
                    )
        return problems

    def _session_of(self, task_id: str) -> str | None:
        sent = self._sent.get(task_id)
        session_id = sent.get("session_id") if sent is not None else None
        return session_id if isinstance(session_id, str) and session_id in self._faces else None

    def _forward(self, task: Mapping[str, Any], where: str, created: bool = False) -> Problems:
        created_at, updated_at = task.get("created_at"), task.get("updated_at")
        if not isinstance(created_at, int) or not isinstance(updated_at, int):
            return
        task_id = str(task.get("task_id"))
        seen = self._tasks.get(task_id)
        if seen is not None:
            if created_at != seen[0]:
                yield (
                    TIMESTAMPS,
                    f"{where}.created_at of task {task_id} changed from {seen[0]} to {created_at}",
                )
            if updated_at < seen[1]:
                yield (
                    TIMESTAMPS,
                    f"{where}.updated_at of task {task_id} went back: {seen[1]} -> {updated_at}",
                )
        self._tasks[task_id] = (created_at, max(updated_at, seen[1] if seen else updated_at))
        if created:
            if self._last_created is not None and created_at < self._last_created:
                yield (
                    TIMESTAMPS,
                    f"{where}.created_at {created_at} of a new task is before the last new "
                    f"task's ({self._last_created})",
                )
            self._last_created = max(created_at, self._last_created or created_at)

    def _record_all(
        self, label: str, request: Any, answer: Answer, problems: list[tuple[str, str]]
    ) -> None:
        for name in (TIMESTAMPS, DURATIONS, IDS, FACE_INTERVALS, TASK_FIELDS):
            self._record(
                name, label, request, answer, [why for check, why in problems if check == name]
            )

    def _record(self, name: str, label: str, request: Any, answer: Answer, whys: list[str]) -> None:
        failure = None
        if whys:
            text = request if isinstance(request, str) else summarise(request)
            failure = answer.failure(name, label, "; ".join(whys)[:600], text)
        self.report.record(name, CheckKind.KLING, failure)
