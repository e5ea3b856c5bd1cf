"""The one store interface of the mock and its in-memory implementation."""

from __future__ import annotations

import hashlib
import heapq
from collections import OrderedDict, deque
from typing import Any, Protocol

from .models import (
    AccountId,
    Audio,
    AudioId,
    BlobKey,
    DeliveryAttempt,
    JournalEntry,
    Session,
    SessionId,
    Task,
    TaskId,
    TaskStatus,
    VideoId,
)


class DuplicateExternalId(Exception):
    """An account already has a task with this external_task_id."""


class Store(Protocol):
    def reset(self) -> None: ...
    def close(self) -> None:
        """Release files and connections; the store is not used afterwards."""

    def put_session(self, session: Session) -> None: ...
    def get_session(self, account: AccountId, session_id: SessionId) -> Session | None:
        """Sessions belong to an account: a fixture may pin the same id for several."""

    def put_audio(self, audio: Audio) -> None: ...
    def get_audio(self, audio_id: AudioId) -> Audio | None: ...
    def insert_task(self, task: Task) -> None:
        """Add a new task; raises DuplicateExternalId atomically with the insert."""

    def save_task(self, task: Task) -> None: ...
    def get_task(self, task_id: TaskId) -> Task | None: ...
    def task_by_external_id(self, account: AccountId, external_id: str) -> Task | None: ...
    def task_by_result_video(self, video_id: VideoId) -> Task | None: ...
    def list_tasks(self, account: AccountId | None, offset: int, limit: int) -> list[Task]:
        """Newest first; account None lists every account's tasks."""

    def count_tasks(self, account: AccountId | None) -> int: ...
    def count_in_flight(self, account: AccountId) -> int: ...
    def pop_due(self, now_ms: int) -> list[TaskId]:
        """Ids of tasks whose next transition is due, in due order, each removed from the
        schedule; a task comes back once per transition, not again for the same one."""

    def next_due_ms(self) -> int | None: ...
    def put_blob(self, data: bytes) -> BlobKey: ...
    def get_blob(self, key: BlobKey) -> bytes | None: ...
    def add_journal(self, entry: JournalEntry) -> None: ...
    def journal(self, after_seq: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with seq > after_seq, oldest first."""

    def last_journal_seq(self) -> int:
        """The seq of the newest entry, 0 when there is none."""

    def add_delivery(self, attempt: DeliveryAttempt) -> None: ...
    def deliveries(self, task_id: str | None = None) -> list[DeliveryAttempt]: ...
    def add_fixture_doc(self, doc: dict[str, Any]) -> None:
        """Keep a fixtures document registered through the control API, for a restart."""

    def fixture_docs(self) -> list[dict[str, Any]]:
        """The documents add_fixture_doc kept, in the order they were added."""

    def clear_fixture_docs(self) -> None: ...


def blob_key(data: bytes) -> BlobKey:
    return BlobKey(hashlib.sha256(data).hexdigest())


class MemoryStore:
    """Dicts and a due-time heap; blobs are content-addressed in a bounded LRU."""

    def __init__(
        self, blob_budget_bytes: int = 256 * 1024 * 1024, journal_limit: int = 10_000
    ) -> None:
        self._blob_budget = blob_budget_bytes
        self._journal_limit = journal_limit
        self.reset()

    def close(self) -> None:
        return None

    def reset(self) -> None:
        self._sessions: dict[tuple[AccountId, SessionId], Session] = {}
        self._audios: dict[AudioId, Audio] = {}
        self._tasks: dict[TaskId, Task] = {}
        self._by_account: dict[AccountId, list[TaskId]] = {}
        self._order: list[TaskId] = []
        self._by_external: dict[tuple[AccountId, str], TaskId] = {}
        self._by_video: dict[VideoId, TaskId] = {}
        self._in_flight: dict[AccountId, int] = {}
        # (due time, task, the status whose transition is due): an entry whose task has moved
        # on is stale and skipped, so nothing per task outlives its transition.
        self._due: list[tuple[int, TaskId, TaskStatus]] = []
        self._blobs: OrderedDict[BlobKey, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._journal: deque[JournalEntry] = deque(maxlen=self._journal_limit)
        self._deliveries: deque[DeliveryAttempt] = deque(maxlen=self._journal_limit)
        self._fixture_docs: list[dict[str, Any]] = []

    def put_session(self, session: Session) -> None:
        self._sessions[(session.account, session.session_id)] = session

    def get_session(self, account: AccountId, session_id: SessionId) -> Session | None:
        return self._sessions.get((account, session_id))

    def put_audio(self, audio: Audio) -> None:
        self._audios[audio.audio_id] = audio

    def get_audio(self, audio_id: AudioId) -> Audio | None:
        return self._audios.get(audio_id)

    def insert_task(self, task: Task) -> None:
        if task.external_task_id:
            key = (task.account, task.external_task_id)
            if key in self._by_external:
                raise DuplicateExternalId(task.external_task_id)
            self._by_external[key] = task.task_id
        self._tasks[task.task_id] = task
        self._by_account.setdefault(task.account, []).append(task.task_id)
        self._order.append(task.task_id)
        if not task.status.terminal:
            self._in_flight[task.account] = self._in_flight.get(task.account, 0) + 1
        self._schedule(task)

    def save_task(self, task: Task) -> None:
        old = self._tasks[task.task_id]
        self._tasks[task.task_id] = task
        if task.status.terminal and not old.status.terminal:
            self._in_flight[task.account] -= 1
        if task.result_video_id is not None:
            self._by_video[task.result_video_id] = task.task_id
        if task.status is not old.status:  # a save without a status change fires nothing again
            self._schedule(task)

    def _schedule(self, task: Task) -> None:
        due = task.next_due_ms()
        if due is not None:
            heapq.heappush(self._due, (due, task.task_id, task.status))

    def get_task(self, task_id: TaskId) -> Task | None:
        return self._tasks.get(task_id)

    def task_by_external_id(self, account: AccountId, external_id: str) -> Task | None:
        tid = self._by_external.get((account, external_id))
        return None if tid is None else self._tasks[tid]

    def task_by_result_video(self, video_id: VideoId) -> Task | None:
        tid = self._by_video.get(video_id)
        return None if tid is None else self._tasks[tid]

    def list_tasks(self, account: AccountId | None, offset: int, limit: int) -> list[Task]:
        ids = self._order if account is None else self._by_account.get(account, [])
        end = len(ids) - offset
        if end <= 0:
            return []
        start = max(0, end - limit)
        return [self._tasks[t] for t in reversed(ids[start:end])]

    def count_tasks(self, account: AccountId | None) -> int:
        return len(self._order) if account is None else len(self._by_account.get(account, []))

    def count_in_flight(self, account: AccountId) -> int:
        return self._in_flight.get(account, 0)

    def pop_due(self, now_ms: int) -> list[TaskId]:
        out: list[TaskId] = []
        while self._due and self._due[0][0] <= now_ms:
            due, tid, status = heapq.heappop(self._due)
            task = self._tasks.get(tid)
            # Once per transition; a 0 ms phase makes the next one due at the same time, under
            # another status, and that one fires too.
            if task is not None and task.status is status and task.next_due_ms() == due:
                out.append(tid)
        return out

    def next_due_ms(self) -> int | None:
        return self._due[0][0] if self._due else None

    def put_blob(self, data: bytes) -> BlobKey:
        key = blob_key(data)
        if key in self._blobs:
            self._blobs.move_to_end(key)
            return key
        self._blobs[key] = data
        self._blob_bytes += len(data)
        while self._blob_bytes > self._blob_budget and len(self._blobs) > 1:
            _, old = self._blobs.popitem(last=False)
            self._blob_bytes -= len(old)
        return key

    def get_blob(self, key: BlobKey) -> bytes | None:
        data = self._blobs.get(key)
        if data is not None:
            self._blobs.move_to_end(key)
        return data

    def add_journal(self, entry: JournalEntry) -> None:
        self._journal.append(entry)

    def last_journal_seq(self) -> int:
        return self._journal[-1].seq if self._journal else 0

    def journal(self, after_seq: int = 0, limit: int | None = None) -> list[JournalEntry]:
        out = [e for e in self._journal if e.seq > after_seq]
        return out if limit is None else out[:limit]

    def add_delivery(self, attempt: DeliveryAttempt) -> None:
        self._deliveries.append(attempt)

    def deliveries(self, task_id: str | None = None) -> list[DeliveryAttempt]:
        return [d for d in self._deliveries if task_id is None or d.task_id == task_id]

    def add_fixture_doc(self, doc: dict[str, Any]) -> None:
        self._fixture_docs.append(doc)

    def fixture_docs(self) -> list[dict[str, Any]]:
        return list(self._fixture_docs)

    def clear_fixture_docs(self) -> None:
        self._fixture_docs.clear()
