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


def _succeed(task: Task, due: int, new_video_id: Callable[[], VideoId]) -> Task:
    return dataclasses.replace(
        task,
        status=TaskStatus.SUCCEED,
        updated_at_ms=due,
        result_video_id=new_video_id(),
        units=units_for(task),
    )


def _fail(task: Task, due: int, new_video_id: Callable[[], VideoId]) -> Task:
    return dataclasses.replace(
        task,
        status=TaskStatus.FAILED,
        updated_at_ms=due,
        status_msg=task.outcome.message or "failed",
    )


def _process(task: Task, due: int, new_video_id: Callable[[], VideoId]) -> Task:
    return dataclasses.replace(task, status=TaskStatus.PROCESSING, updated_at_ms=due)


ENTER: Final[Mapping[TaskStatus, Callable[[Task, int, Callable[[], VideoId]], Task]]] = {
    TaskStatus.PROCESSING: _process,
    TaskStatus.SUCCEED: _succeed,
    TaskStatus.FAILED: _fail,
}
"""What entering a status changes besides the status: the result, the units, the message."""


def next_status(task: Task) -> TaskStatus | None:
    """The status the table leads to on the way to the task's planned outcome, or None.

    The outcome itself when the table allows it from here; otherwise the only way forward,
    when there is one and the outcome lies beyond it. An outcome of `submitted` or
    `processing` means: stay there forever.
    """
    allowed = TRANSITIONS[task.status]
    goal = task.outcome.status
    if goal in allowed:
        return goal
    if len(allowed) == 1 and ORDER[goal] > ORDER[task.status]:
        return allowed[0]
    return None


def step(task: Task, new_video_id: Callable[[], VideoId]) -> Task:
    """The task after its next transition, stamped at the time that transition was due."""
    due = task.next_due_ms()
    if due is None:
        return task
    nxt = next_status(task)
    if nxt is None:
        return task
    return ENTER[nxt](task, due, new_video_id)


def result_expired(task: Task, now_ms: int) -> bool:
    """Generated videos are deleted 30 days after the task finished."""
    return task.status is TaskStatus.SUCCEED and now_ms - task.updated_at_ms >= RESULT_TTL_MS
