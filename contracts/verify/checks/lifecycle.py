"""``task_lifecycle``: a task moves forward, is found by its external id, once in the list."""

from __future__ import annotations

import itertools
import time
from typing import Any, Final

from ...report import CheckKind
from ..target import Answer, summarise
from .base import LIST, QUERY, Context, Session

STATUS_ORDER: Final = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
TERMINAL: Final = frozenset({"succeed", "failed"})
CHECK = "task_lifecycle"


def lifecycle(ctx: Context, session: Session | None) -> list[dict[str, Any]]:
    """Poll the first task until it ends; the tasks seen, in order."""
    if session is None or not session.task_id:
        ctx.report.skip(CHECK, CheckKind.KLING, "no task was created")
        return []
    task_id = session.task_id
    deadline = time.monotonic() + ctx.options.poll_timeout_s
    seen: list[dict[str, Any]] = []
    while True:
        answer = ctx.t.send("getLipSyncTask", path_parameters={"id": task_id})
        task = answer.data if isinstance(answer.data, dict) else {}
        problem = lifecycle_problem(seen, task, answer)
        ctx.case(CHECK, QUERY, task_id, answer, problem)
        seen.append(task)
        if problem or task.get("task_status") in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(ctx.options.poll_interval_s)
    if seen and seen[-1].get("task_status") not in TERMINAL:
        ctx.report.check(CHECK, CheckKind.KLING).skipped = (
            f"task {task_id} did not end within {ctx.options.poll_timeout_s:g} s "
            "(raise --poll-timeout)"
        )
    if session.external_task_id:
        ext = session.external_task_id
        answer = ctx.t.send("getLipSyncTask", path_parameters={"id": ext})
        found = (answer.data or {}).get("task_id") if isinstance(answer.data, dict) else None
        problem = None
        if found != task_id:
            problem = f"querying by external_task_id {ext!r} did not return task {task_id}"
        ctx.case(CHECK, QUERY, ext, answer, problem)
    _in_list_once(ctx, task_id)
    return seen


def lifecycle_problem(
    seen: list[dict[str, Any]], task: dict[str, Any], answer: Answer
) -> str | None:
    """Why this read of a task breaks the lifecycle given the reads before it, or None."""
    if answer.http_status != 200:
        return f"the task could not be queried (HTTP {answer.http_status})"
    status = task.get("task_status")
    if status not in STATUS_ORDER:
        return f"unknown task_status {status!r}"
    if status == "succeed" and not (task.get("task_result") or {}).get("videos"):
        return "the task succeeded without a result video"
    if not seen:
        return None
    before = seen[-1]
    if STATUS_ORDER[status] < STATUS_ORDER.get(str(before.get("task_status")), 0):
        return f"task_status went back from {before.get('task_status')} to {status}"
    if before.get("task_status") in TERMINAL and status != before.get("task_status"):
        return f"terminal status {before.get('task_status')} changed to {status}"
    if task.get("created_at") != before.get("created_at"):
        return "created_at changed"
    updated, previous = task.get("updated_at"), before.get("updated_at")
    if isinstance(updated, int) and isinstance(previous, int) and updated < previous:
        return "updated_at went back"
    return None


def _in_list_once(ctx: Context, task_id: str) -> None:
    page_size = next(
        int(p["schema"]["maximum"])
        for p in ctx.spec.operation("listLipSyncTasks")["parameters"]
        if p["name"] == "pageSize"
    )
    found = 0
    for page in range(1, 21):
        query = {"pageNum": page, "pageSize": page_size}
        answer = ctx.t.send("listLipSyncTasks", query=query)
        items = answer.data if isinstance(answer.data, list) else []
        found += sum(1 for t in items if isinstance(t, dict) and t.get("task_id") == task_id)
        created = [t.get("created_at") for t in items if isinstance(t, dict)]
        if any(
            isinstance(a, int) and isinstance(b, int) and a < b
            for a, b in itertools.pairwise(created)
        ):
            ctx.case(CHECK, LIST, summarise(query), answer, "list is not newest first")
        if answer.http_status != 200 or len(items) < page_size:
            break
    problem = None if found == 1 else f"task {task_id} appears {found} times in the list"
    ctx.case(CHECK, LIST, f"pages of {page_size}", Answer(200, None, ""), problem)
