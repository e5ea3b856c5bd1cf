"""The task lifecycle as a declared table of transitions, driven by the clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Final

from .models import RESULT_TTL_MS, Task, TaskStatus, VideoId

TRANSITIONS: Final[Mapping[TaskStatus, tuple[TaskStatus, ...]]] = {
    TaskStatus.SUBMITTED: (TaskStatus.PROCESSING,),
    TaskStatus.PROCESSING: (TaskStatus.SUCCEED, TaskStatus.FAILED),
    TaskStatus.SUCCEED: (),
    TaskStatus.FAILED: (),
}

ORDER: Final[Mapping[TaskStatus, int]] = {
    TaskStatus.SUBMITTED: 0,
    TaskStatus.PROCESSING: 1,
    TaskStatus.SUCCEED: 2,
    TaskStatus.FAILED: 2,
}


def units_for(task: Task) -> str:
    """Deduction units: one per started 5 s of inserted sound (*inferred* from public pricing)."""
    return str(max(1, -(-task.sound.length_ms // 5000)))


def step(task: Task, new_video_id: Callable[[], VideoId]) -> Task:
    """The task after its next transition, stamped at the time that transition was due."""
    due = task.next_due_ms()
    if due is None:
        return task
    allowed = TRANSITIONS[task.status]
    nxt = TaskStatus.PROCESSING if task.status is TaskStatus.SUBMITTED else task.outcome.status
    if nxt not in allowed:  # an outcome of `submitted`/`processing` means: stay there forever
        return task
    if nxt is TaskStatus.SUCCEED:
        return dataclasses.replace(
            task,
            status=nxt,
            updated_at_ms=due,
            result_video_id=new_video_id(),
            units=units_for(task),
        )
    if nxt is TaskStatus.FAILED:
        return dataclasses.replace(
            task, status=nxt, updated_at_ms=due, status_msg=task.outcome.message or "failed"
        )
    return dataclasses.replace(task, status=nxt, updated_at_ms=due)


def result_expired(task: Task, now_ms: int) -> bool:
    """Generated videos are deleted 30 days after the task finished."""
    return task.status is TaskStatus.SUCCEED and now_ms - task.updated_at_ms >= RESULT_TTL_MS
