"""The Store on one SQLite file (WAL): tasks, sessions and fixtures that outlive the process."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .clock import ClockState, check_speed
from .codec import dumps, from_doc, loads, to_doc
from .errors import INTERNAL, UNAVAILABLE, ApiError
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
    VideoId,
)
from .store import (
    FIXTURE_BYTES,
    JOURNAL_BYTES,
    JOURNAL_LIMIT,
    BoundedLog,
    DuplicateExternalId,
    FixtureDoc,
    blob_key,
    fixture_doc,
    fixtures_full,
    journal_fields,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore", "dumps", "from_doc", "loads", "to_doc"]

Params = tuple[Any, ...] | dict[str, Any]

SCHEMA_VERSION = "2"

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
CREATE TABLE IF NOT EXISTS journal (
    n INTEGER PRIMARY KEY, seq INTEGER NOT NULL, method TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '', operation TEXT, account TEXT, code INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_seq ON journal (seq);
CREATE TABLE IF NOT EXISTS deliveries (
    n INTEGER PRIMARY KEY, task_id TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_task ON deliveries (task_id, n);
CREATE TABLE IF NOT EXISTS fixture_docs (n INTEGER PRIMARY KEY, doc TEXT NOT NULL);
"""

TABLES = ("tasks", "sessions", "audios", "blobs", "journal", "deliveries", "fixture_docs")
# Schema 1 files (no filter columns or sizes on the records) are upgraded in place.
MIGRATE_FROM_1 = """
ALTER TABLE journal ADD COLUMN method TEXT NOT NULL DEFAULT '';
ALTER TABLE journal ADD COLUMN path TEXT NOT NULL DEFAULT '';
ALTER TABLE journal ADD COLUMN operation TEXT;
ALTER TABLE journal ADD COLUMN account TEXT;
ALTER TABLE journal ADD COLUMN code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE journal SET method = json_extract(doc, '$.method'), path = json_extract(doc, '$.path'),
    operation = json_extract(doc, '$.operation'), account = json_extract(doc, '$.account'),
    code = json_extract(doc, '$.code'), size = length(doc) + 256;
ALTER TABLE deliveries ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET size = length(doc) + 256;
"""

# Seconds a statement waits for a lock another process holds. Our own transactions are short
# and serialised by one lock; a longer wait would only freeze the event loop longer.
BUSY_TIMEOUT_S = 1.0

IN_FLIGHT = "status IN ('submitted', 'processing')"  # must match tasks_in_flight's WHERE


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
        journal_limit: int = JOURNAL_LIMIT,
        journal_bytes: int = JOURNAL_BYTES,
        fixture_bytes: int = FIXTURE_BYTES,
    ) -> None:
        self.path = Path(path)
        self._blob_budget = blob_budget_bytes
        self._fixture_budget = fixture_bytes
        self._journal_limit = journal_limit
        self._journal_budget = journal_bytes
        self._lock = threading.RLock()
        where = f"store sqlite:{self.path}"
        if self.path.is_dir():
            raise ValueError(f"{where}: is a directory; name a file in it (e.g. {path}/mock.db)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
            self._open()
        except ApiError as exc:  # locked or broken: one line, already naming the file
            reason = exc.message.removeprefix(f"{where}: ")
            raise ValueError(f"{where}: cannot open the database: {reason}") from exc
        except (OSError, sqlite3.Error) as exc:
            raise ValueError(f"{where}: cannot open the database: {exc}") from exc

    def _open(self) -> None:
        db = self._db
        # Before any write (WAL mode included): a foreign database is left as it was.
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        ours = "meta" in tables and db.execute("SELECT 1 FROM meta WHERE key = 'schema'").fetchone()
        if tables and not ours:
            listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise sqlite3.DatabaseError(
                f"not a lipsync-mock store (it holds the tables {listed}); "
                "give --store a new file or one this mock wrote"
            )
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
            elif row[0] == "1":
                for statement in _statements(MIGRATE_FROM_1):
                    db.execute(statement)
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
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
        sizes = [
            self._db.execute(f"SELECT SUM(size) FROM {table}").fetchone()[0] or 0
            for table in ("journal", "deliveries")
        ]
        self._journal_bytes, self._delivery_bytes = int(sizes[0]), int(sizes[1])

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite failures as the envelope's errors: a lock held by another process is 5001
        (retryable), a broken or closed file 5000 naming it; a uniqueness conflict stays an
        IntegrityError for the caller to interpret."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
                raise ApiError(
                    UNAVAILABLE,
                    f"store sqlite:{self.path}: the database is locked by another process; "
                    "try again",
                ) from exc
            raise ApiError(INTERNAL, f"store sqlite:{self.path}: {text}") from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front (no upgrade)."""
        with self._lock, self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise

    def _all(self, sql: str, params: Params = ()) -> list[Any]:
        with self._lock, self._guard():
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Params = ()) -> Any:
        with self._lock, self._guard():
            return self._db.execute(sql, params).fetchone()

    def _write(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock, self._guard():  # a single statement outside BEGIN commits on its own
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

    def count_sessions(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM sessions")[0])

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

    def put_blob(self, data: bytes, key: BlobKey | None = None) -> BlobKey:
        key = blob_key(data) if key is None else key
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

    def _evict(self, db: sqlite3.Connection, table: str, newest: int, total: int) -> int:
        """Delete the oldest records of `table` (journal or deliveries) until it is within the
        byte budget and the count limit, never the newest; returns the bytes left."""
        floor = newest - self._journal_limit  # rows up to this n are over the count limit
        while True:
            rows = db.execute(
                f"SELECT n, size FROM {table} WHERE n < ? ORDER BY n LIMIT 256", (newest,)
            ).fetchall()
            cut = None
            for n, size in rows:
                if total <= self._journal_budget and n > floor:
                    break
                total -= size
                cut = n
            if cut is None:
                return total
            db.execute(f"DELETE FROM {table} WHERE n <= ?", (cut,))
            if cut != rows[-1][0] or len(rows) < 256:
                return total

    def add_journal(self, entry: JournalEntry) -> None:
        doc = dumps(entry)
        fields = journal_fields(entry)
        size = BoundedLog.cost(fields, doc)
        with self._lock:
            try:
                with self._tx() as db:
                    n = db.execute(
                        "INSERT INTO journal (seq, method, path, operation, account, code, size, "
                        "doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (entry.seq, *fields, size, doc),
                    ).lastrowid
                    assert n is not None
                    total = self._evict(db, "journal", n, self._journal_bytes + size)
            except BaseException:
                self._load_counters()
                raise
            self._journal_bytes = total

    def last_journal_seq(self) -> int:
        row = self._one("SELECT MAX(seq) FROM journal")
        return 0 if row[0] is None else int(row[0])

    def journal(self, query: JournalQuery = EVERY_ENTRY) -> list[JournalEntry]:
        # The seq index gives the order and the start; the filters are checked on the way and
        # LIMIT stops the walk: O(limit) rows read when the filters match.
        where, params = ["seq > ?"], list[object]([query.after_seq])
        for column, value in (
            ("method", query.method),
            ("operation", query.operation),
            ("account", query.account),
            ("code", query.code),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.path_prefix is not None:
            where.append("substr(path, 1, ?) = ?")
            params += [len(query.path_prefix), query.path_prefix]
        rows = self._all(
            f"SELECT doc FROM journal WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            (*params, -1 if query.limit is None else query.limit),
        )
        return [loads(JournalEntry, r[0]) for r in rows]

    def add_delivery(self, attempt: DeliveryAttempt) -> None:
        doc = dumps(attempt)
        size = BoundedLog.cost((attempt.task_id,), doc)
        with self._lock:
            try:
                with self._tx() as db:
                    n = db.execute(
                        "INSERT INTO deliveries (task_id, size, doc) VALUES (?, ?, ?)",
                        (attempt.task_id, size, doc),
                    ).lastrowid
                    assert n is not None
                    total = self._evict(db, "deliveries", n, self._delivery_bytes + size)
            except BaseException:
                self._load_counters()
                raise
            self._delivery_bytes = total

    def deliveries(
        self, task_id: str | None = None, limit: int | None = None
    ) -> list[DeliveryAttempt]:
        cap = -1 if limit is None else limit
        if task_id is None:
            rows = self._all("SELECT doc FROM deliveries ORDER BY n LIMIT ?", (cap,))
        else:
            rows = self._all(
                "SELECT doc FROM deliveries WHERE task_id = ? ORDER BY n LIMIT ?", (task_id, cap)
            )
        return [loads(DeliveryAttempt, r[0]) for r in rows]

    def last_deliveries(self, count: int) -> list[DeliveryAttempt]:
        rows = self._all("SELECT doc FROM deliveries ORDER BY n DESC LIMIT ?", (count,))
        return [loads(DeliveryAttempt, r[0]) for r in reversed(rows)]

    # -- the clock -------------------------------------------------------------------------

    def save_clock(self, state: ClockState) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES ('clock', ?)", (dumps(state),))

    def load_clock(self) -> ClockState | None:
        row = self._one("SELECT value FROM meta WHERE key = 'clock'")
        if row is None:
            return None
        try:
            state = loads(ClockState, row[0])
            check_speed(state.speed)
            if not isinstance(state.anchor_ms, int) or not 0 <= state.anchor_ms <= 2**53:
                return None
            float(state.anchor_wall_s)
            return state
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # unreadable: the configured clock starts instead

    # -- fixtures registered through the control API ---------------------------------------

    def add_fixture_doc(self, doc: FixtureDoc) -> None:
        text = json.dumps(doc, separators=(",", ":"))
        with self._tx() as db:
            kept = db.execute("SELECT COALESCE(SUM(length(doc)), 0) FROM fixture_docs").fetchone()
            if int(kept[0]) + len(text) > self._fixture_budget:
                raise fixtures_full(len(text), int(kept[0]), self._fixture_budget)
            db.execute("INSERT INTO fixture_docs (doc) VALUES (?)", (text,))

    def fixture_docs(self) -> list[FixtureDoc]:
        rows = self._all("SELECT doc FROM fixture_docs ORDER BY n")
        return [fixture_doc(json.loads(r[0])) for r in rows]

    def clear_fixture_docs(self) -> None:
        self._write("DELETE FROM fixture_docs")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
