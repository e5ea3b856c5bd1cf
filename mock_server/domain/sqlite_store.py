"""The Store on one SQLite file (WAL): tasks, sessions and fixtures that outlive the process."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import json
import sqlite3
import threading
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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
    VideoId,
)
from .store import DuplicateExternalId, blob_key

T = TypeVar("T")
Params = tuple[Any, ...] | dict[str, Any]

SCHEMA_VERSION = "1"

# Every value type is a JSON document in `doc`; other columns serve the indexes and schedule.
# `seq` (the rowid) is the creation order; `due_ms` is the schedule (NULL: nothing due);
# `fired_ms`/`fired_status` are the transition pop_due last returned, which a save of the same
# status does not schedule again (a new status due at the same time, a 0 ms phase, is).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    external_task_id TEXT NOT NULL,
    result_video_id TEXT,
    status TEXT NOT NULL,
    due_ms INTEGER,
    fired_ms INTEGER,
    fired_status TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_account ON tasks (account, seq);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_by_external_id
    ON tasks (account, external_task_id) WHERE external_task_id <> '';
CREATE INDEX IF NOT EXISTS tasks_by_result_video
    ON tasks (result_video_id) WHERE result_video_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (due_ms) WHERE due_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_in_flight
    ON tasks (account) WHERE status IN ('submitted', 'processing');
CREATE TABLE IF NOT EXISTS sessions (
    account TEXT NOT NULL, session_id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account, session_id)
);
CREATE TABLE IF NOT EXISTS audios (audio_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY, size INTEGER NOT NULL, used INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_by_use ON blobs (used);
CREATE TABLE IF NOT EXISTS journal (n INTEGER PRIMARY KEY, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    n INTEGER PRIMARY KEY, task_id TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_task ON deliveries (task_id, n);
CREATE TABLE IF NOT EXISTS fixture_docs (n INTEGER PRIMARY KEY, doc TEXT NOT NULL);
"""

TABLES = ("tasks", "sessions", "audios", "blobs", "journal", "deliveries", "fixture_docs")
IN_FLIGHT = "status IN ('submitted', 'processing')"  # must match tasks_in_flight's WHERE


# -- dataclasses <-> JSON --------------------------------------------------------------------


def to_doc(value: object) -> Any:
    """A value tree as JSON values: dataclasses to objects, tuples to arrays, enums to values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_doc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_doc(v) for v in value]
    if isinstance(value, dict):
        return {k: to_doc(v) for k, v in value.items()}
    return value


@functools.cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """Builds the inverse of `to_doc` for one annotation, once per annotation."""
    supertype = getattr(tp, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _decoder(supertype)
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"only `X | None` unions are stored, not {tp}")
        one = _decoder(inner[0])
        return lambda raw: None if raw is None else one(raw)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        return lambda raw: tuple(item(v) for v in raw)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return functools.partial(from_doc, tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    return lambda raw: raw  # str, int, float, bool and `object` (JSON bodies) are JSON already


_PLANS: dict[type, tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple((f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls))
        _PLANS[cls] = plan
    return plan


def from_doc(cls: type[T], doc: dict[str, Any]) -> T:
    """The dataclass `to_doc` gave `doc`; a field missing from an older row takes its default."""
    return cls(**{name: dec(doc[name]) for name, dec in _fields(cls) if name in doc})


def dumps(value: object) -> str:
    # ASCII escapes: any str (lone surrogates included) stores and reads back unchanged.
    return json.dumps(to_doc(value), separators=(",", ":"))


def loads(cls: type[T], text: str) -> T:
    return from_doc(cls, json.loads(text))


# -- the store -------------------------------------------------------------------------------


class SqliteStore:
    """Every write is its own committed transaction, so a 200 means the change is on disk.

    WAL with `synchronous=NORMAL`: a commit is in the WAL file (the OS page cache) before it
    returns, so it survives the process being killed, SIGKILL included; only a power loss or an
    OS crash may drop the last commits (never corrupt the file). `FULL` would fsync every commit
    for that case too, at several times the cost per request.

    One connection serves every thread (the ASGI loop, `to_thread` renders, a test's thread),
    guarded by a lock; uniqueness does not depend on it, the indexes enforce it.
    """

    def __init__(
        self,
        path: str | Path,
        blob_budget_bytes: int = 256 * 1024 * 1024,
        journal_limit: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self._blob_budget = blob_budget_bytes
        self._journal_limit = journal_limit
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._open()
        except (OSError, sqlite3.Error) as exc:
            raise ValueError(f"store sqlite:{self.path}: cannot open the database: {exc}") from exc

    def _open(self) -> None:
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"the file system refused WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous=NORMAL")
        with self._tx():
            for statement in _statements(SCHEMA):  # executescript would COMMIT first
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {row[0]}, this mock reads {SCHEMA_VERSION}; "
                    "use a new file or an older mock"
                )
            # A task popped by pop_due whose next state was never saved (the process died in
            # between) is due again: that transition did not happen.
            db.execute(
                "UPDATE tasks SET due_ms = fired_ms, fired_ms = NULL, fired_status = NULL "
                "WHERE due_ms IS NULL AND fired_ms IS NOT NULL AND fired_status = status "
                f"AND {IN_FLIGHT}"
            )
        self._load_counters()

    def _load_counters(self) -> None:
        used, total = self._db.execute("SELECT MAX(used), SUM(size) FROM blobs").fetchone()
        self._blob_use = used or 0
        self._blob_bytes = total or 0

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front (no upgrade)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise

    def _all(self, sql: str, params: Params = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Params = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _write(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock:  # a single statement outside BEGIN commits on its own
            return self._db.execute(sql, params)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reset(self) -> None:
        with self._tx() as db:
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")
        self._load_counters()

    # -- sessions and audios ---------------------------------------------------------------

    def put_session(self, session: Session) -> None:
        self._write(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
            (session.account, session.session_id, dumps(session)),
        )

    def get_session(self, account: AccountId, session_id: SessionId) -> Session | None:
        row = self._one(
            "SELECT doc FROM sessions WHERE account = ? AND session_id = ?", (account, session_id)
        )
        return None if row is None else loads(Session, row[0])

    def put_audio(self, audio: Audio) -> None:
        self._write("INSERT OR REPLACE INTO audios VALUES (?, ?)", (audio.audio_id, dumps(audio)))

    def get_audio(self, audio_id: AudioId) -> Audio | None:
        row = self._one("SELECT doc FROM audios WHERE audio_id = ?", (audio_id,))
        return None if row is None else loads(Audio, row[0])

    # -- tasks -----------------------------------------------------------------------------

    def insert_task(self, task: Task) -> None:
        try:
            self._write(
                "INSERT INTO tasks (task_id, account, external_task_id, result_video_id, "
                "status, due_ms, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    task.task_id,
                    task.account,
                    task.external_task_id,
                    task.result_video_id,
                    task.status.value,
                    task.next_due_ms(),
                    dumps(task),
                ),
            )
        except sqlite3.IntegrityError as exc:
            if "external_task_id" in str(exc):
                raise DuplicateExternalId(task.external_task_id) from exc
            raise

    def save_task(self, task: Task) -> None:
        cur = self._write(
            "UPDATE tasks SET status = :status, result_video_id = :video, doc = :doc, "
            "due_ms = CASE WHEN :due IS fired_ms AND :status IS fired_status THEN NULL "
            "ELSE :due END WHERE task_id = :task_id",
            {
                "status": task.status.value,
                "video": task.result_video_id,
                "doc": dumps(task),
                "due": task.next_due_ms(),
                "task_id": task.task_id,
            },
        )
        if cur.rowcount == 0:
            raise KeyError(task.task_id)

    def get_task(self, task_id: TaskId) -> Task | None:
        row = self._one("SELECT doc FROM tasks WHERE task_id = ?", (task_id,))
        return None if row is None else loads(Task, row[0])

    def task_by_external_id(self, account: AccountId, external_id: str) -> Task | None:
        row = self._one(
            "SELECT doc FROM tasks WHERE account = ? AND external_task_id = ? "
            "AND external_task_id <> ''",
            (account, external_id),
        )
        return None if row is None else loads(Task, row[0])

    def task_by_result_video(self, video_id: VideoId) -> Task | None:
        row = self._one("SELECT doc FROM tasks WHERE result_video_id = ?", (video_id,))
        return None if row is None else loads(Task, row[0])

    def list_tasks(self, account: AccountId | None, offset: int, limit: int) -> list[Task]:
        # Newest first straight off an index (the rowid, or (account, seq)): a page costs
        # O(offset + limit) whatever the number of stored tasks.
        if account is None:
            rows = self._all(
                "SELECT doc FROM tasks ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)
            )
        else:
            rows = self._all(
                "SELECT doc FROM tasks WHERE account = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                (account, limit, offset),
            )
        return [loads(Task, r[0]) for r in rows]

    def count_tasks(self, account: AccountId | None) -> int:
        if account is None:
            row = self._one("SELECT COUNT(*) FROM tasks")
        else:
            row = self._one("SELECT COUNT(*) FROM tasks WHERE account = ?", (account,))
        return int(row[0])

    def count_in_flight(self, account: AccountId) -> int:
        row = self._one(f"SELECT COUNT(*) FROM tasks WHERE account = ? AND {IN_FLIGHT}", (account,))
        return int(row[0])

    def pop_due(self, now_ms: int) -> list[TaskId]:
        with self._lock:
            due = self.next_due_ms()
            if due is None or due > now_ms:
                return []  # the common case (every read, every tick) writes nothing
            with self._tx() as db:
                rows = db.execute(
                    "SELECT task_id FROM tasks WHERE due_ms <= ? ORDER BY due_ms, seq", (now_ms,)
                ).fetchall()
                db.execute(
                    "UPDATE tasks SET fired_ms = due_ms, fired_status = status, due_ms = NULL "
                    "WHERE due_ms <= ?",
                    (now_ms,),
                )
            return [TaskId(r[0]) for r in rows]

    def next_due_ms(self) -> int | None:
        row = self._one("SELECT MIN(due_ms) FROM tasks WHERE due_ms IS NOT NULL")
        return None if row[0] is None else int(row[0])

    # -- blobs -----------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> BlobKey:
        key = blob_key(data)
        with self._lock:
            self._blob_use += 1
            if self._write(
                "UPDATE blobs SET used = ? WHERE key = ?", (self._blob_use, key)
            ).rowcount:
                return key
            try:
                with self._tx() as db:
                    db.execute(
                        "INSERT INTO blobs VALUES (?, ?, ?, ?)",
                        (key, len(data), self._blob_use, data),
                    )
                    total = self._blob_bytes + len(data)
                    while total > self._blob_budget:  # evict the least recently used
                        row = db.execute(
                            "SELECT key, size FROM blobs WHERE key <> ? ORDER BY used LIMIT 1",
                            (key,),  # never the blob just stored
                        ).fetchone()
                        if row is None:
                            break
                        db.execute("DELETE FROM blobs WHERE key = ?", (row[0],))
                        total -= row[1]
            except BaseException:
                self._load_counters()
                raise
            self._blob_bytes = total
        return key

    def get_blob(self, key: BlobKey) -> bytes | None:
        with self._lock:
            self._blob_use += 1
            row = self._one("SELECT data FROM blobs WHERE key = ?", (key,))
            if row is not None:
                self._write("UPDATE blobs SET used = ? WHERE key = ?", (self._blob_use, key))
        return None if row is None else bytes(row[0])

    # -- journal and deliveries ------------------------------------------------------------

    def add_journal(self, entry: JournalEntry) -> None:
        with self._tx() as db:
            n = db.execute(
                "INSERT INTO journal (seq, doc) VALUES (?, ?)", (entry.seq, dumps(entry))
            ).lastrowid
            assert n is not None
            db.execute("DELETE FROM journal WHERE n <= ?", (n - self._journal_limit,))

    def last_journal_seq(self) -> int:
        row = self._one("SELECT seq FROM journal ORDER BY n DESC LIMIT 1", ())
        return 0 if row is None else int(row[0])

    def journal(self, after_seq: int = 0, limit: int | None = None) -> list[JournalEntry]:
        rows = self._all(
            "SELECT doc FROM journal WHERE seq > ? ORDER BY n LIMIT ?",
            (after_seq, -1 if limit is None else limit),
        )
        return [loads(JournalEntry, r[0]) for r in rows]

    def add_delivery(self, attempt: DeliveryAttempt) -> None:
        with self._tx() as db:
            n = db.execute(
                "INSERT INTO deliveries (task_id, doc) VALUES (?, ?)",
                (attempt.task_id, dumps(attempt)),
            ).lastrowid
            assert n is not None
            db.execute("DELETE FROM deliveries WHERE n <= ?", (n - self._journal_limit,))

    def deliveries(self, task_id: str | None = None) -> list[DeliveryAttempt]:
        if task_id is None:
            rows = self._all("SELECT doc FROM deliveries ORDER BY n")
        else:
            rows = self._all("SELECT doc FROM deliveries WHERE task_id = ? ORDER BY n", (task_id,))
        return [loads(DeliveryAttempt, r[0]) for r in rows]

    # -- fixtures registered through the control API ---------------------------------------

    def add_fixture_doc(self, doc: dict[str, Any]) -> None:
        self._write("INSERT INTO fixture_docs (doc) VALUES (?)", (json.dumps(doc),))

    def fixture_docs(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._all("SELECT doc FROM fixture_docs ORDER BY n")]

    def clear_fixture_docs(self) -> None:
        self._write("DELETE FROM fixture_docs")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
