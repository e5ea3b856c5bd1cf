"""The recording's tasks over time: phase durations, outcomes, the fixtures reproducing them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from .model import TERMINAL, PhaseStats


def response_data(exchange: Mapping[str, Any]) -> Any:
    body = (exchange.get("response") or {}).get("body")
    return body.get("data") if isinstance(body, dict) else None


def status_msg(task: Mapping[str, Any]) -> str:
    """task_status_msg, or a field that took its place under another name."""
    if isinstance(task.get("task_status_msg"), str):
        return str(task["task_status_msg"])
    for key, value in task.items():
        if key.startswith("task_status_m") and isinstance(value, str):
            return value
    return ""


@dataclass(slots=True)
class TaskLife:
    task_id: str
    body: dict[str, Any]
    created_at: int | None = None
    seen: dict[str, int] = field(default_factory=dict)  # status -> first updated_at
    final: dict[str, Any] = field(default_factory=dict)

    def see(self, task: Mapping[str, Any]) -> None:
        status, stamp = task.get("task_status"), task.get("updated_at")
        if isinstance(status, str) and isinstance(stamp, int):
            self.seen.setdefault(status, stamp)
        if status in TERMINAL:
            self.final = dict(task)


def lifecycles(records: Iterable[Mapping[str, Any]]) -> dict[str, TaskLife]:
    """Each created task with its creation time and the first time each status was seen."""
    lives: dict[str, TaskLife] = {}
    for r in records:
        if r["kind"] == "exchange" and r.get("operation") == "createLipSyncTask":
            data = response_data(r)
            if isinstance(data, dict) and isinstance(data.get("task_id"), str):
                life = TaskLife(data["task_id"], r["request"]["body"], data.get("created_at"))
                lives[life.task_id] = life
        elif r["kind"] == "exchange" and r.get("operation") in (
            "getLipSyncTask",
            "listLipSyncTasks",
        ):
            data = response_data(r)
            for task in data if isinstance(data, list) else [data]:
                if isinstance(task, dict) and task.get("task_id") in lives:
                    lives[task["task_id"]].see(task)
        elif (
            r["kind"] == "callback"
            and isinstance(r.get("body"), dict)
            and r["body"].get("task_id") in lives
        ):
            lives[r["body"]["task_id"]].see(r["body"])
    return lives


def durations(life: TaskLife) -> tuple[int | None, int | None]:
    created, processing = life.created_at, life.seen.get("processing")
    end = next((life.seen[s] for s in TERMINAL if s in life.seen), None)
    submitted_ms = processing - created if created is not None and processing is not None else None
    processing_ms = end - processing if end is not None and processing is not None else None
    return submitted_ms, processing_ms


def phase_stats(phase: str, values: list[int], default_ms: int) -> PhaseStats | None:
    if not values:
        return None
    ordered = sorted(values)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]

    return PhaseStats(
        phase, len(ordered), ordered[0], pct(0.5), pct(0.9), ordered[-1], fmean(ordered), default_ms
    )


def fixtures_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A fixtures file (mock_server/fixtures_file.py's format) with the recorded media and
    each task's outcome and phase durations."""
    lives = lifecycles(records)
    video_ms: dict[str, int] = {}  # video URL -> ms, from the tasks' parent_video
    for life in lives.values():
        parent = life.final.get("task_info", {}).get("parent_video", {})
        if isinstance(parent.get("duration"), str) and parent.get("url"):
            video_ms[parent["url"]] = round(float(parent["duration"]) * 1000)
    videos: list[dict[str, Any]] = []
    for r in records:
        data = response_data(r)
        url = (r.get("request") or {}).get("body") or {}
        if r.get("operation") != "identifyFace" or not isinstance(data, dict):
            continue
        url = url.get("video_url") if isinstance(url, dict) else None
        faces = [
            {"face_id": f["face_id"], "start_time": f["start_time"], "end_time": f["end_time"]}
            for f in data.get("face_data", [])
        ]
        if url and faces and url not in {v["url"] for v in videos}:
            end = max(f["end_time"] for f in faces)
            videos.append({"url": url, "duration_ms": video_ms.get(url, end), "faces": faces})
    outcomes = []
    for life in lives.values():
        if not life.final:
            continue
        outcome: dict[str, Any] = {
            "status": life.final["task_status"],
            "message": status_msg(life.final),
        }
        external = life.body.get("external_task_id") if isinstance(life.body, dict) else None
        if external:
            outcome["external_task_id"] = external
        else:
            outcome["video_url"] = (
                life.final.get("task_info", {}).get("parent_video", {}).get("url")
            )
        submitted_ms, processing_ms = durations(life)
        if submitted_ms is not None and processing_ms is not None:
            outcome.update(submitted_ms=max(submitted_ms, 0), processing_ms=max(processing_ms, 0))
        outcomes.append(outcome)
    return {"videos": videos, "outcomes": outcomes}
