"""The one store interface of the mock and its in-memory implementation."""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypedDict, TypeVar

from .clock import ClockState
from .codec import dump_bytes, loads
from .errors import INVALID_PARAMETER, ApiError
from .models import (
    EVERY_ENTRY,
    AccountId,
    Audio,
    AudioId,
    BlobKey,
    DeliveryAttempt,
    JournalEntry,
    JournalQuery,
    Session,
    SessionId,
    Task,
    TaskId,
    TaskStatus,
    VideoId,
)


class DuplicateExternalId(Exception):
    """An account already has a task with this external_task_id."""


JOURNAL_BYTES = 16 * 1024 * 1024  # default budget of the journal, and of the delivery log
JOURNAL_LIMIT = 10_000  # default number of entries kept, whatever their size
ENTRY_OVERHEAD = 256  # bytes counted per kept record on top of its JSON text (its index)


class FixtureDoc(TypedDict, total=False):
    """A fixtures document registered through the control API (faults are never kept)."""

    videos: list[dict[str, Any]]
    audios: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]


FIXTURE_BYTES = 16 * 1024 * 1024  # fixtures documents kept for a restart, as JSON, in all


def fixture_doc_size(doc: FixtureDoc) -> int:
    return len(json.dumps(doc, separators=(",", ":")))


def fixtures_full(size: int, kept: int, budget: int) -> ApiError:
    return ApiError(
        INVALID_PARAMETER,
        f"fixtures: this document ({size} bytes as JSON) would make the fixtures kept for a "
        f"restart {kept + size} bytes, over the {budget} the store keeps; "
        "DELETE /__admin/fixtures first or use a --fixtures file",
    )


def fixture_doc(doc: Mapping[str, Any]) -> FixtureDoc:
    """The parts of a (checked) fixtures document a store keeps."""

    def items(kind: str) -> list[dict[str, Any]] | None:
        found = doc.get(kind)
        if not isinstance(found, list):
            return None
        return [dict(i) for i in found if isinstance(i, dict)]

    out = FixtureDoc()
    if (videos := items("videos")) is not None:
        out["videos"] = videos
    if (audios := items("audios")) is not None:
        out["audios"] = audios
    if (outcomes := items("outcomes")) is not None:
        out["outcomes"] = outcomes
    return out


class TaskState(Protocol):
    """Tasks, sessions, audios, the schedule of due transitions and the clock."""

    def put_session(self, session: Session) -> None: ...
    def count_sessions(self) -> int: ...
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
    def save_clock(self, state: ClockState) -> None:
        """Keep the clock's timeline (mode, speed, anchor): a restart resumes it."""

    def load_clock(self) -> ClockState | None:
        """The timeline save_clock kept, None when none was (or it cannot be read)."""


class Records(Protocol):
    """The request journal and the callback delivery log: bounded in bytes and in count,
    oldest evicted first; reads cost O(limit)."""

    def add_journal(self, entry: JournalEntry) -> None: ...
    def journal(self, query: JournalQuery = EVERY_ENTRY) -> list[JournalEntry]:
        """Entries matching `query`, oldest first."""

    def last_journal_seq(self) -> int:
        """The seq of the newest entry, 0 when there is none."""

    def add_delivery(self, attempt: DeliveryAttempt) -> None: ...
    def deliveries(
        self, task_id: str | None = None, limit: int | None = None
    ) -> list[DeliveryAttempt]:
        """Attempts (of one task), oldest first, at most `limit`."""

    def last_deliveries(self, count: int) -> list[DeliveryAttempt]:
        """The newest `count` attempts, oldest first: costs O(count), not O(log)."""


class Blobs(Protocol):
    """Content-addressed bytes (audio, rendered results) under a byte budget (LRU)."""

    def put_blob(self, data: bytes, key: BlobKey | None = None) -> BlobKey:
        """Keep `data` under its content hash; `key`: blob_key(data), when the caller hashed
        it already (the resolver does, for its probe)."""

    def get_blob(self, key: BlobKey) -> bytes | None: ...


class FixtureDocs(Protocol):
    """Fixtures documents registered through the control API, replayed at a restart."""

    def add_fixture_doc(self, doc: FixtureDoc) -> None:
        """Keep `doc`; an ApiError (1201), keeping nothing, when the documents kept would hold
        more than the store's fixture byte budget."""

    def fixture_docs(self) -> list[FixtureDoc]:
        """The documents add_fixture_doc kept, in the order they were added."""

    def clear_fixture_docs(self) -> None: ...


class Store(TaskState, Records, Blobs, FixtureDocs, Protocol):
    """Every concern in one object: what the backend is built on."""

    def reset(self) -> None:
        """Forget everything but the clock (which the reset sets itself)."""

    def close(self) -> None:
        """Release the store's resources; nothing may be called afterwards."""


def blob_key(data: bytes) -> BlobKey:
    return BlobKey(hashlib.sha256(data).hexdigest())


R = TypeVar("R")
_GONE: tuple[int, tuple[Any, ...], bytes, int] = (0, (), b"", 0)


class BoundedLog(Generic[R]):
    """Records kept as compact JSON under a byte budget and a count limit, oldest evicted.

    A row is (order key, the fields queries filter on, the JSON bytes, its cost); a read finds
    its start by bisection and decodes only the rows it returns, so it costs O(limit) when the
    filters match. The newest record is kept even alone over the budget (a record is bounded
    anyway).
    """

    def __init__(self, cls: type[R], budget_bytes: int, limit: int) -> None:
        self._cls = cls
        self._budget = budget_bytes
        self._limit = limit
        self.clear()

    def clear(self) -> None:
        self._rows: list[tuple[int, tuple[Any, ...], bytes, int]] = []
        self._head = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._rows) - self._head

    @staticmethod
    def cost(fields: tuple[Any, ...], doc: str | bytes) -> int:
        return ENTRY_OVERHEAD + len(doc) + sum([len(f) for f in fields if type(f) is str])

    def add(self, key: int, fields: tuple[Any, ...], record: R) -> None:
        doc = dump_bytes(record)  # UTF-8: its length is the memory it holds
        cost = self.cost(fields, doc)
        self._rows.append((key, fields, doc, cost))
        self.bytes += cost
        while len(self) > 1 and (self.bytes > self._budget or len(self) > self._limit):
            self.bytes -= self._rows[self._head][3]
            self._rows[self._head] = _GONE
            self._head += 1
        if self._head > 1024 and self._head * 2 > len(self._rows):
            del self._rows[: self._head]
            self._head = 0

    def last_key(self) -> int:
        return self._rows[-1][0] if len(self) else 0

    def last(self, count: int) -> list[R]:
        """The newest `count` records, oldest first."""
        start = max(self._head, len(self._rows) - count)
        return [loads(self._cls, row[2]) for row in self._rows[start:]]

    def select(
        self, after: int, match: Callable[[tuple[Any, ...]], bool], limit: int | None
    ) -> list[R]:
        start = bisect.bisect_right(self._rows, after, lo=self._head, key=lambda r: r[0])
        out: list[R] = []
        for i in range(start, len(self._rows)):
            if limit is not None and len(out) >= limit:
                break
            _, fields, doc, _ = self._rows[i]
            if match(fields):
                out.append(loads(self._cls, doc))
        return out


def journal_fields(entry: JournalEntry) -> tuple[Any, ...]:
    return (entry.method, entry.path, entry.operation, entry.account, entry.code)


def journal_match(query: JournalQuery) -> Callable[[tuple[Any, ...]], bool]:
    def match(fields: tuple[Any, ...]) -> bool:
        method, path, operation, account, code = fields
        return (
            (query.method is None or method == query.method)
            and (query.path_prefix is None or path.startswith(query.path_prefix))
            and (query.operation is None or operation == query.operation)
            and (query.account is None or account == query.account)
            and (query.code is None or code == query.code)
        )

    return match


class MemoryStore:
    """Dicts and a due-time heap; blobs are content-addressed in a bounded LRU."""

    def __init__(
        self,
        blob_budget_bytes: int = 256 * 1024 * 1024,
        journal_limit: int = JOURNAL_LIMIT,
        journal_bytes: int = JOURNAL_BYTES,
        fixture_bytes: int = FIXTURE_BYTES,
    ) -> None:
        self._blob_budget = blob_budget_bytes
        self._fixture_budget = fixture_bytes
        self._journal = BoundedLog(JournalEntry, journal_bytes, journal_limit)
        self._deliveries = BoundedLog(DeliveryAttempt, journal_bytes, journal_limit)
        self._delivery_n = 0
        self._clock: ClockState | None = None
        self.reset()

    def close(self) -> None:
        """Nothing to release: the memory goes with the object."""

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
        self._journal.clear()
        self._deliveries.clear()
        self._fixture_docs: list[FixtureDoc] = []
        self._fixture_bytes = 0

    def put_session(self, session: Session) -> None:
        self._sessions[(session.account, session.session_id)] = session

    def count_sessions(self) -> int:
        return len(self._sessions)

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

    def put_blob(self, data: bytes, key: BlobKey | None = None) -> BlobKey:
        key = blob_key(data) if key is None else key
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

    def save_clock(self, state: ClockState) -> None:
        self._clock = state

    def load_clock(self) -> ClockState | None:
        return self._clock

    def add_journal(self, entry: JournalEntry) -> None:
        self._journal.add(entry.seq, journal_fields(entry), entry)

    def last_journal_seq(self) -> int:
        return self._journal.last_key()

    def journal(self, query: JournalQuery = EVERY_ENTRY) -> list[JournalEntry]:
        return self._journal.select(query.after_seq, journal_match(query), query.limit)

    def add_delivery(self, attempt: DeliveryAttempt) -> None:
        self._delivery_n += 1
        self._deliveries.add(self._delivery_n, (attempt.task_id,), attempt)

    def deliveries(
        self, task_id: str | None = None, limit: int | None = None
    ) -> list[DeliveryAttempt]:
        return self._deliveries.select(
            0, lambda fields: task_id is None or fields[0] == task_id, limit
        )

    def last_deliveries(self, count: int) -> list[DeliveryAttempt]:
        return self._deliveries.last(count)

    def add_fixture_doc(self, doc: FixtureDoc) -> None:
        size = fixture_doc_size(doc)
        if self._fixture_bytes + size > self._fixture_budget:
            raise fixtures_full(size, self._fixture_bytes, self._fixture_budget)
        self._fixture_docs.append(doc)
        self._fixture_bytes += size

    def fixture_docs(self) -> list[FixtureDoc]:
        return list(self._fixture_docs)

    def clear_fixture_docs(self) -> None:
        self._fixture_docs.clear()
        self._fixture_bytes = 0
