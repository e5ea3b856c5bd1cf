"""The SQLite store: exact round trips, the Store contract on both stores, restarts, bounds."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from mock_server.cli import main
from mock_server.config import Config, default_accounts
from mock_server.domain.errors import ApiError
from mock_server.domain.ids import IdSource
from mock_server.domain.models import (
    Account,
    AccountId,
    Audio,
    AudioId,
    AudioMeta,
    BlobKey,
    DeliveryAttempt,
    Face,
    JournalEntry,
    JournalQuery,
    MetaSource,
    Session,
    SessionId,
    SoundChoice,
    Task,
    TaskStatus,
    VideoId,
    VideoMeta,
)
from mock_server.domain.sqlite_store import SCHEMA_VERSION, SqliteStore, dumps, loads
from mock_server.domain.store import DuplicateExternalId, MemoryStore
from mock_server.web.app import create_app, open_store

from .conftest import AUTH, create_body, face_choose, identify, manual_config, mock_of
from .test_store_contract import T0, A, attempt, entry, make_task

TASKS = "/v1/videos/advanced-lip-sync"
OTHER_KEY = "other-api-key"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's SQLite file goes; its folder does not exist yet."""
    return tmp_path / "state" / "mock.db"


# -- codec -------------------------------------------------------------------------------------

# Stored documents are JSON, which has no NaN or Infinity (orjson writes them as null), and no
# stored float can be one: volumes are bounded by the schema, the clock speed by admin.yaml and
# the CLI, latencies are measured, journal bodies carry non-finite numbers as strings.
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
tasks = st.builds(Task, sound=st.builds(SoundChoice, sound_volume=finite, original_volume=finite))
sessions = st.builds(Session)
audios = st.builds(Audio)
journal_entries = st.builds(JournalEntry, body=json_values, latency_ms=finite)
deliveries = st.builds(DeliveryAttempt, latency_ms=finite)


class TestRoundTrip:
    @given(st.one_of(tasks, sessions, audios, journal_entries, deliveries))
    def test_every_stored_type_reads_back_identical(self, value: Any) -> None:
        """A stored value decodes to an equal value of the same types (enums, tuples, None)."""
        back = loads(type(value), dumps(value))
        assert back == value
        assert repr(back) == repr(value)

    def test_unicode_survives_in_documents_and_indexes(self, tmp_path: Path) -> None:
        """Non-ASCII text is stored intact and found through the external-id index."""
        s = SqliteStore(tmp_path / "db")
        task = dataclasses.replace(make_task(1), external_task_id="注文-42 🎬", status_msg="é")
        s.insert_task(task)
        assert s.get_task(task.task_id) == task
        assert s.task_by_external_id(A, "注文-42 🎬") == task

    def test_each_kind_round_trips_through_the_file(self, db_path: Path) -> None:
        """Tasks, sessions, audios, blobs, journal, deliveries and fixture docs survive a reopen."""
        video = VideoMeta(8000, 1280, 720, 2000, "mp4", (Face("0", 0, 8000),), MetaSource.PROBED)
        session = Session(SessionId("s1"), A, "", "https://example.com/v.mp4", video, T0)
        meta = AudioMeta(3000, 48_000, "mp3", MetaSource.GENERATED, BlobKey("k"))
        audio = Audio(AudioId("a1"), None, meta, T0)
        finished = dataclasses.replace(
            make_task(1, external="x"),
            status=TaskStatus.SUCCEED,
            result_video_id=VideoId("900000000000000001"),
            units="1",
        )
        s = SqliteStore(db_path)
        s.put_session(session)
        s.put_audio(audio)
        s.insert_task(make_task(1, external="x"))
        s.save_task(finished)
        key = s.put_blob(b"mp3 bytes")
        s.add_journal(entry(1))
        s.add_delivery(attempt(1, finished.task_id))
        s.add_fixture_doc({"videos": [{"url": "https://f/v.mp4", "duration_ms": 5000}]})
        s.close()

        again = SqliteStore(db_path)
        assert again.get_session(session.account, session.session_id) == session
        assert again.get_audio(audio.audio_id) == audio
        assert again.get_task(finished.task_id) == finished
        assert again.task_by_external_id(A, "x") == finished
        assert again.task_by_result_video(VideoId("900000000000000001")) == finished
        assert again.get_blob(key) == b"mp3 bytes"
        assert again.journal() == [entry(1)]
        assert again.deliveries(finished.task_id) == [attempt(1, finished.task_id)]
        assert again.fixture_docs() == [
            {"videos": [{"url": "https://f/v.mp4", "duration_ms": 5000}]}
        ]


class TestConcurrency:
    def test_one_of_racing_inserts_wins_an_external_id(self, tmp_path: Path) -> None:
        """Threads on one store and on a second connection race for one external id: one wins."""
        first = SqliteStore(tmp_path / "db")
        second = SqliteStore(tmp_path / "db")
        wins: list[int] = []
        dupes: list[int] = []
        barrier = threading.Barrier(16)

        def race(n: int) -> None:
            barrier.wait()
            try:
                (first if n % 2 else second).insert_task(make_task(n, external="same"))
                wins.append(n)
            except DuplicateExternalId:
                dupes.append(n)

        threads = [threading.Thread(target=race, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1 and len(dupes) == 15
        assert first.count_tasks(A) == 1

    def test_concurrent_inserts_all_land_once(self, tmp_path: Path) -> None:
        """Eight threads inserting distinct tasks through one store lose and duplicate none."""
        s = SqliteStore(tmp_path / "db")

        def insert(base: int) -> None:
            for n in range(base, base + 50):
                s.insert_task(make_task(n, external=f"e{n}"))

        threads = [threading.Thread(target=insert, args=(k * 1000,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        listed = s.list_tasks(A, 0, 1000)
        assert len(listed) == 400 == len({t.task_id for t in listed})


# -- restarts of the store ---------------------------------------------------------------------


class TestReopen:
    def test_blob_budget_holds_across_reopen(self, tmp_path: Path) -> None:
        """A reopened store counts the blobs already on disk against the budget."""
        s = SqliteStore(tmp_path / "db", blob_budget_bytes=250)
        first = s.put_blob(b"1" * 100)
        s.put_blob(b"2" * 100)
        s.close()
        s = SqliteStore(tmp_path / "db", blob_budget_bytes=250)
        s.put_blob(b"3" * 100)
        assert s.get_blob(first) is None

    def test_schedule_and_in_flight_come_back(self, db_path: Path) -> None:
        """A reopened store still knows what is due and how many tasks are in flight."""
        s = SqliteStore(db_path)
        s.insert_task(make_task(1))
        s.insert_task(make_task(2, created=T0 + 100))
        s.pop_due(T0 + 1000)
        s.save_task(dataclasses.replace(make_task(1), status=TaskStatus.PROCESSING))
        s.close()
        s = SqliteStore(db_path)
        assert s.count_in_flight(A) == 2
        assert s.next_due_ms() == T0 + 1100
        assert s.pop_due(T0 + 4000) == [make_task(2).task_id, make_task(1).task_id]

    def test_a_transition_lost_in_a_crash_is_due_again(self, db_path: Path) -> None:
        """A task popped but never saved (the process died in between) is due after reopening."""
        s = SqliteStore(db_path)
        s.insert_task(make_task(1))
        assert s.pop_due(T0 + 1000) == [make_task(1).task_id]
        s.close()
        s = SqliteStore(db_path)
        assert s.pop_due(T0 + 1000) == [make_task(1).task_id]


class TestOpening:
    def test_unknown_store_is_a_startup_error(self) -> None:
        """A store that is neither `memory` nor `sqlite:PATH` is refused, naming both forms."""
        for spec in ("redis://x", "sqlite:", "sqlite", "Memory"):
            with pytest.raises(ValueError, match=r"'memory' or 'sqlite:PATH'"):
                open_store(Config(store=spec))

    def test_cli_exits_with_the_reason(self) -> None:
        """`lipsync-mock --store` with a bad value stops before serving, saying why."""
        with pytest.raises(SystemExit, match="sqlite:PATH"):
            main(["--store", "postgres:db", "--port", "8999"])

    def test_store_kinds(self, tmp_path: Path) -> None:
        """`memory` gives the in-memory store and `sqlite:PATH` a file at PATH."""
        assert isinstance(open_store(Config(store="memory")), MemoryStore)
        s = open_store(Config(store=f"sqlite:{tmp_path / 'a' / 'b.db'}"))
        assert isinstance(s, SqliteStore) and (tmp_path / "a" / "b.db").exists()

    def test_unreadable_file_is_refused_clearly(self, tmp_path: Path) -> None:
        """A path that is not a database says which file and why."""
        bad = tmp_path / "notes.txt"
        bad.write_text("not a database" * 100)
        with pytest.raises(ValueError, match=r"sqlite:.*notes.txt: cannot open"):
            SqliteStore(bad)
        with pytest.raises(ValueError, match=r"sqlite:.*: is a directory; name a file in it"):
            SqliteStore(tmp_path)

    @pytest.mark.parametrize("table", ["tasks (id INTEGER, name TEXT)", "notes (x)"])
    def test_a_foreign_database_is_refused_untouched(self, tmp_path: Path, table: str) -> None:
        """A SQLite file another program wrote is refused, naming its tables, and left as it
        was: no table added, no WAL mode switched on."""
        path = tmp_path / "theirs.db"
        with sqlite3.connect(path) as db:
            db.execute(f"CREATE TABLE {table}")
        db.close()
        before = path.read_bytes()
        with pytest.raises(ValueError, match=r"not a lipsync-mock store \(it holds the tables"):
            SqliteStore(path)
        assert path.read_bytes() == before
        assert not (tmp_path / "theirs.db-wal").exists()

    def test_a_damaged_file_is_one_clear_line(self, db_path: Path) -> None:
        """A store file whose pages were overwritten is refused with SQLite's reason."""
        s = SqliteStore(db_path)
        for n in range(300):
            s.add_journal(entry(n + 1, body={"k": "v" * 200}))
        s.close()
        data = bytearray(db_path.read_bytes())
        for offset in range(8192, len(data), 4096):
            data[offset + 100 : offset + 400] = b"\xff" * 300
        db_path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=r"cannot open the database: .*malformed") as caught:
            SqliteStore(db_path)
        assert "\n" not in str(caught.value)

    def test_a_lock_held_elsewhere_is_5001_within_two_seconds(self, db_path: Path) -> None:
        """While another process holds an exclusive lock, a write fails as 5001 (retryable,
        naming the file) after the 1 s busy timeout, not 10 s; it works again after."""
        s = SqliteStore(db_path)
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        with pytest.raises(ApiError) as caught:
            s.insert_task(make_task(1))
        waited = time.perf_counter() - started
        print(f"\n[sqlite locked] write refused after {waited:.2f} s: {caught.value.message}")
        assert caught.value.code == 5001 and "locked by another process" in caught.value.message
        assert waited < 2.0
        other.execute("ROLLBACK")
        other.close()
        s.insert_task(make_task(1))
        assert s.get_task(make_task(1).task_id) == make_task(1)
        s.close()

    def test_a_closed_store_answers_an_api_error(self, db_path: Path) -> None:
        """Using a closed store is ApiError 5000 naming the file, not a bare sqlite3 error."""
        s = SqliteStore(db_path)
        s.close()
        with pytest.raises(ApiError, match=r"store sqlite:.*closed") as caught:
            s.get_task(make_task(1).task_id)
        assert caught.value.code == 5000

    def test_a_schema_1_file_is_upgraded_in_place(self, db_path: Path) -> None:
        """A file written by schema 1 (no filter columns on the journal) opens: its journal and
        deliveries are kept, filterable and counted against the byte budget."""
        db_path.parent.mkdir(parents=True)
        db = sqlite3.connect(db_path)
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
        db.execute("CREATE TABLE journal (n INTEGER PRIMARY KEY, seq INTEGER NOT NULL, doc TEXT)")
        db.execute(
            "CREATE TABLE deliveries (n INTEGER PRIMARY KEY, task_id TEXT NOT NULL, doc TEXT)"
        )
        old = [entry(1, method="POST", code=1201), entry(2, path="/v1/audio/tts")]
        for e in old:
            db.execute("INSERT INTO journal (seq, doc) VALUES (?, ?)", (e.seq, dumps(e)))
        db.execute(
            "INSERT INTO deliveries (task_id, doc) VALUES ('t', ?)", (dumps(attempt(1, "t")),)
        )
        db.commit()
        db.close()
        s = SqliteStore(db_path)
        assert s.journal() == old
        assert s.journal(JournalQuery(method="POST", code=1201)) == old[:1]
        assert s.journal(JournalQuery(path_prefix="/v1/audio")) == old[1:]
        assert s.deliveries("t") == [attempt(1, "t")]
        s.add_journal(entry(3))
        assert s.last_journal_seq() == 3
        s.close()
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
        db.close()

    def test_journal_queries_walk_the_seq_index(self, db_path: Path) -> None:
        """Every journal filter reads the seq index in order with no sort: LIMIT stops it."""
        SqliteStore(db_path).close()
        db = sqlite3.connect(db_path)
        sql = (
            "SELECT doc FROM journal WHERE seq > ? AND method = ? AND operation = ? "
            "AND account = ? AND code = ? AND substr(path, 1, ?) = ? ORDER BY seq LIMIT ?"
        )
        params = (0, "GET", "x", "a", 0, 3, "/v1", 1)
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
        db.close()
        assert "journal_by_seq" in plan and "TEMP B-TREE" not in plan, plan

    def test_other_schema_version_is_refused(self, db_path: Path) -> None:
        """A file written by another schema version is refused rather than misread."""
        SqliteStore(db_path).close()
        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
        db.close()
        with pytest.raises(
            ValueError, match=f"schema version 999, this mock reads {SCHEMA_VERSION}"
        ):
            SqliteStore(db_path)

    def test_domain_stays_free_of_the_web(self) -> None:
        """Importing the SQLite store pulls in neither Starlette nor httpx."""
        code = (
            "import sys, mock_server.domain.sqlite_store; "
            "print(sorted(m for m in ('starlette', 'httpx') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "[]", out.stderr

    def test_list_queries_read_an_index_in_order(self, db_path: Path) -> None:
        """Listing newest first never sorts: it walks the rowid or (account, seq) index."""
        SqliteStore(db_path).close()
        db = sqlite3.connect(db_path)
        for sql, params in (
            ("SELECT doc FROM tasks ORDER BY seq DESC LIMIT ? OFFSET ?", (30, 0)),
            (
                "SELECT doc FROM tasks WHERE account = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                ("a", 30, 0),
            ),
        ):
            plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "TEMP B-TREE" not in plan, plan
        db.close()


class TestIds:
    def test_used_ids_are_skipped(self) -> None:
        """unused_numeric follows the seeded sequence but never returns an id already used."""
        before = IdSource(1)
        taken = {before.numeric() for _ in range(3)}
        assert IdSource(1).unused_numeric(lambda _: False) in taken  # nothing used: same ids
        again = IdSource(1)
        fresh = [again.unused_numeric(taken.__contains__) for _ in range(3)]
        assert not taken & set(fresh) and all(len(i) == 18 for i in fresh)


# -- the API on both stores --------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """`memory` or `sqlite:<tmp>`: the API scenarios below run against each."""
    return "memory" if request.param == "memory" else f"sqlite:{tmp_path / 'api.db'}"


def advance(client: TestClient, ms: int) -> None:
    r = client.post("/__admin/clock/advance", json={"ms": ms})
    assert r.status_code == 200, r.text


def status(client: TestClient, task_id: str, headers: dict[str, str] | None = None) -> str:
    r = client.get(f"{TASKS}/{task_id}", headers=headers)
    assert r.status_code == 200, r.text
    value: str = r.json()["data"]["task_status"]
    return value


def create(client: TestClient, session_id: str, **overrides: Any) -> dict[str, Any]:
    r = client.post(TASKS, json=create_body(session_id, **overrides))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def two_accounts() -> tuple[Account, ...]:
    return (*default_accounts(), Account(AccountId("other"), "other", "other-sk", (OTHER_KEY,)))


class TestApi:
    def test_task_runs_its_lifecycle(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """A task is polled by task_id and external_task_id through submitted, processing and
        succeed, and then carries its result video."""
        client = make_client(store=store_spec)
        task = create(client, identify(client)["session_id"], external_task_id="order-1")
        assert status(client, task["task_id"]) == "submitted"
        advance(client, 1000)
        assert status(client, "order-1") == "processing"
        advance(client, 3000)
        r = client.get(f"{TASKS}/order-1")
        assert r.json()["data"]["task_status"] == "succeed"
        assert r.json()["data"]["task_result"]["videos"][0]["url"].endswith(".mp4")

    def test_list_pages_are_newest_first(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """Pages of the list hold every task once, newest first."""
        client = make_client(store=store_spec)
        session_id = identify(client)["session_id"]
        made = [create(client, session_id)["task_id"] for _ in range(5)]
        seen: list[str] = []
        for page in (1, 2, 3, 4):
            r = client.get(TASKS, params={"pageNum": page, "pageSize": 2})
            seen += [t["task_id"] for t in r.json()["data"]]
        assert seen == made[::-1]

    def test_external_id_is_refused_twice(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """Reusing an external_task_id in one account is 1201 (external-task-id-unique)."""
        client = make_client(store=store_spec)
        session_id = identify(client)["session_id"]
        create(client, session_id, external_task_id="dup")
        r = client.post(TASKS, json=create_body(session_id, external_task_id="dup"))
        assert r.status_code == 400
        assert r.json()["code"] == 1201 and "external-task-id-unique" in r.json()["message"]

    def test_accounts_see_only_their_tasks(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """Another account neither finds nor lists a task, by id or by external id."""
        client = make_client(store=store_spec, accounts=two_accounts())
        task = create(client, identify(client)["session_id"], external_task_id="mine")
        for ref in (task["task_id"], "mine"):
            assert client.get(f"{TASKS}/{ref}", headers=OTHER).status_code == 404
        assert client.get(TASKS, headers=OTHER).json()["data"] == []
        other_session = identify_as(client, OTHER)
        create_as(client, OTHER, other_session, external_task_id="mine")

    def test_tts_audio_serves_and_feeds_a_task(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """A TTS audio is downloadable and usable as audio_id in a task."""
        client = make_client(store=store_spec)
        r = client.post(
            "/v1/audio/tts",
            json={
                "text": "Hello there, welcome to the show; this sentence lasts a few seconds.",
                "voice_id": "oversea_male1",
                "voice_language": "en",
            },
        )
        assert r.status_code == 200, r.text
        audio = r.json()["data"]["task_result"]["audios"][0]
        assert client.get(f"/files/audio/{audio['id']}.mp3").content
        fc = face_choose(sound_file=None, audio_id=audio["id"], sound_end_time=2000)
        create(client, identify(client)["session_id"], face_choose=[fc])

    def test_zero_ms_processing_still_succeeds(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """A task with no processing time goes through processing to succeed in one advance."""
        client = make_client(store=store_spec, processing_delay_s=0.0)
        task = create(client, identify(client)["session_id"])
        advance(client, 1000)
        assert status(client, task["task_id"]) == "succeed"

    def test_in_flight_limit_counts_stored_tasks(
        self, make_client: Callable[..., TestClient], store_spec: str
    ) -> None:
        """A concurrency-limit fault refuses a create while a task is in flight, not after."""
        client = make_client(store=store_spec)
        client.post("/__admin/faults", json={"kind": "concurrency_limit", "max_in_flight": 1})
        session_id = identify(client)["session_id"]
        create(client, session_id)
        assert client.post(TASKS, json=create_body(session_id)).json()["code"] == 1303
        advance(client, 4000)
        create(client, session_id)


def identify_as(client: TestClient, headers: dict[str, str]) -> str:
    r = client.post(
        "/v1/videos/identify-face", json={"video_url": "https://example.com/o.mp4"}, headers=headers
    )
    assert r.status_code == 200, r.text
    session_id: str = r.json()["data"]["session_id"]
    return session_id


def create_as(client: TestClient, headers: dict[str, str], session_id: str, **kw: Any) -> None:
    r = client.post(TASKS, json=create_body(session_id, **kw), headers=headers)
    assert r.status_code == 200, r.text


# -- the API across a restart (in process) -----------------------------------------------------


@pytest.fixture
def restartable(db_path: Path) -> Callable[[], TestClient]:
    """Opens a fresh in-process mock on the same SQLite file and seed; use it in `with`."""

    def start() -> TestClient:
        return TestClient(create_app(manual_config(store=f"sqlite:{db_path}")), headers=AUTH)

    return start


class TestRestart:
    def test_state_survives_and_ids_do_not_repeat(
        self, restartable: Callable[[], TestClient]
    ) -> None:
        """After a restart with the same seed, tasks, sessions and the journal are back and new
        sessions and tasks get ids never used before."""
        with restartable() as client:
            session_id = identify(client)["session_id"]
            before = create(client, session_id, external_task_id="kept")
            journal = client.get("/__admin/journal").json()["data"]
        with restartable() as client:
            assert status(client, "kept") == "submitted"
            assert client.get("/__admin/journal").json()["data"][: len(journal)] == journal
            new_session = identify(client)["session_id"]
            assert new_session != session_id
            after = create(client, session_id)  # the old session is still valid
            assert after["task_id"] != before["task_id"]
            seqs = [e["seq"] for e in client.get("/__admin/journal").json()["data"]]
            assert seqs == sorted(set(seqs))

    def test_tasks_keep_moving_after_a_restart(self, restartable: Callable[[], TestClient]) -> None:
        """The schedule is rebuilt: tasks from before the restart advance and finish, and
        count against the in-flight limit meanwhile."""
        with restartable() as client:
            session_id = identify(client)["session_id"]
            task = create(client, session_id)
            advance(client, 1000)
            assert status(client, task["task_id"]) == "processing"
        with restartable() as client:
            assert mock_of(client).backend.in_flight(AccountId("mock-access-key")) == 1
            advance(client, 4000)
            assert status(client, task["task_id"]) == "succeed"

    def test_registered_fixtures_come_back_until_cleared(
        self, restartable: Callable[[], TestClient]
    ) -> None:
        """Fixtures registered through the control API are replayed on start; clearing or
        resetting forgets them for good."""
        video: dict[str, Any] = {"url": "https://cdn.example.com/pinned.mp4", "duration_ms": 9000}
        with restartable() as client:
            r = client.post(
                "/__admin/fixtures",
                json={"videos": [{**video, "session_id": "850000000000000001"}]},
            )
            assert r.status_code == 200, r.text
        with restartable() as client:
            assert identify(client, video["url"])["session_id"] == "850000000000000001"
            client.delete("/__admin/fixtures")
        with restartable() as client:
            assert identify(client, video["url"])["session_id"] != "850000000000000001"
            client.post("/__admin/fixtures", json={"videos": [{**video, "session_id": "8501"}]})
            client.post("/__admin/reset")
            assert client.get(TASKS).json()["data"] == []
        with restartable() as client:
            assert client.get("/__admin/fixtures").json()["data"]["summary"]["videos"] == 0
            assert client.get(TASKS).json()["data"] == []


@pytest.mark.slow
def test_huge_fixture_documents_stop_at_the_budget(
    make_client: Callable[..., TestClient], store_spec: str
) -> None:
    """Fixtures documents (each under the control API's 1 MB body limit and its 10,000 items
    per list) are kept up to the budget (16 MB by default, 4 MB here): the one that would pass
    it is refused with 1201 and installs nothing, so a restart replays at most the budget."""
    url = "https://cdn.example.com/{:02d}/{:08d}.mp4"
    client = make_client(store=store_spec, fixture_bytes=4 * 1024 * 1024)
    accepted = 0
    refused = None
    for doc in range(60):
        videos = [{"url": url.format(doc, i), "duration_ms": 5000} for i in range(9_000)]
        started = time.perf_counter()
        r = client.post("/__admin/fixtures", json={"videos": videos})
        if r.status_code != 200:
            refused = (r, time.perf_counter() - started)
            break
        accepted += 1
    assert refused is not None, "60 documents of ~0.6 MB were all kept, past a 4 MB budget"
    r, spent = refused
    kind = store_spec[:6]
    print(f"\n[fixtures {kind}] {accepted} documents kept, the next refused in {spent:.2f} s")
    assert r.status_code == 400 and r.json()["code"] == 1201, r.text[:300]
    assert "DELETE /__admin/fixtures first" in r.json()["message"]
    assert 4 <= accepted < 10
    summary = client.get("/__admin/fixtures").json()["data"]["summary"]
    assert summary["videos"] == accepted * 9_000
