"""The Store contract: one suite that the memory store and the SQLite store both pass.

Task state (tasks, schedule, clock), records (journal, deliveries: byte budget, filters pushed
into the store), blobs and fixture documents; what only SQLite does (files, reopening,
migration, concurrency across connections) is in tests/test_sqlite_store.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mock_server.domain.clock import Clock, ClockMode, ClockState
from mock_server.domain.errors import ApiError
from mock_server.domain.models import (
    AccountId,
    BlobKey,
    DeliveryAttempt,
    Face,
    JournalEntry,
    JournalQuery,
    MetaSource,
    Outcome,
    ParentVideo,
    Session,
    SessionId,
    SoundChoice,
    Task,
    TaskId,
    TaskStatus,
    VideoId,
    VideoMeta,
)
from mock_server.domain.sqlite_store import SqliteStore
from mock_server.domain.store import DuplicateExternalId, MemoryStore, Store, fixture_doc

T0 = 1_722_769_557_708
A = AccountId("acct-a")
B = AccountId("acct-b")
MakeStore = Callable[..., Store]


def make_task(
    n: int,
    account: AccountId = A,
    external: str = "",
    status: TaskStatus = TaskStatus.SUBMITTED,
    created: int = T0,
) -> Task:
    return Task(
        task_id=TaskId(f"{10**17 + n}"),
        account=account,
        external_task_id=external,
        session_id=SessionId("800000000000000001"),
        face_id="0",
        parent=ParentVideo("", "https://example.com/speaker.mp4", 13_600, 1920, 1080),
        sound=SoundChoice(BlobKey("ab" * 32), 6000, 0, 3000, 500, 1.0, 0.5),
        watermark=False,
        callback_url="",
        outcome=Outcome(1000, 3000),
        status=status,
        status_msg="",
        created_at_ms=created,
        updated_at_ms=created,
    )


def entry(seq: int, **changes: Any) -> JournalEntry:
    plain = JournalEntry(
        seq, T0, T0, "GET", "/v1/x", "", None, None, None, None, None, 200, 0, f"r{seq}", 0.5
    )
    return dataclasses.replace(plain, **changes)


def attempt(seq: int, task_id: str) -> DeliveryAttempt:
    return DeliveryAttempt(
        seq, f"msg_{seq}", task_id, "a", "succeed", "http://x/", 1, 200, None, 1.0, T0
    )


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Builds stores of one implementation (keyword options as both constructors take them);
    each is closed after the test."""
    made: list[Store] = []

    def make(**options: Any) -> Store:
        if request.param == "memory":
            s: Store = MemoryStore(**options)
        else:
            s = SqliteStore(tmp_path / f"store{len(made)}.db", **options)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    """An empty store of each implementation, keeping 5 journal entries and 5 deliveries."""
    return make_store(journal_limit=5)


# -- the Store contract, on both stores --------------------------------------------------------


class TestTasks:
    @pytest.mark.parametrize("page_size", [1, 2, 3, 7, 30])
    def test_pages_hold_each_task_once_newest_first(self, store: Store, page_size: int) -> None:
        """Paging through an account (or all) yields every task exactly once, newest first."""
        for n in range(17):
            store.insert_task(make_task(n, A if n % 3 else B, created=T0 + n))
        for account in (A, B, None):
            seen: list[Task] = []
            for page in itertools.count():
                got = store.list_tasks(account, page * page_size, page_size)
                assert len(got) <= page_size
                if not got:
                    break
                seen += got
            expected = [make_task(n, A if n % 3 else B, created=T0 + n) for n in range(17)]
            expected = [t for t in expected if account in (None, t.account)][::-1]
            assert seen == expected
            assert store.count_tasks(account) == len(expected)

    def test_external_id_is_unique_per_account(self, store: Store) -> None:
        """A second task with an account's external_task_id is refused; other accounts and
        empty external ids are free."""
        store.insert_task(make_task(1, A, "order-1"))
        with pytest.raises(DuplicateExternalId):
            store.insert_task(make_task(2, A, "order-1"))
        store.insert_task(make_task(3, B, "order-1"))
        store.insert_task(make_task(4, A))
        store.insert_task(make_task(5, A))
        assert store.task_by_external_id(A, "order-1") == make_task(1, A, "order-1")
        assert store.task_by_external_id(A, "") is None
        assert store.get_task(make_task(2).task_id) is None
        assert store.count_tasks(A) == 3

    def test_in_flight_counts_follow_statuses(self, store: Store) -> None:
        """count_in_flight counts an account's submitted and processing tasks only."""
        for n in range(4):
            store.insert_task(make_task(n))
        store.insert_task(make_task(9, B))
        store.save_task(dataclasses.replace(make_task(0), status=TaskStatus.PROCESSING))
        store.save_task(dataclasses.replace(make_task(1), status=TaskStatus.SUCCEED))
        store.save_task(dataclasses.replace(make_task(2), status=TaskStatus.FAILED))
        assert store.count_in_flight(A) == 2
        assert store.count_in_flight(B) == 1

    def test_result_video_finds_its_task(self, store: Store) -> None:
        """A task saved with a result video id is found by it."""
        store.insert_task(make_task(1))
        done = dataclasses.replace(
            make_task(1), status=TaskStatus.SUCCEED, result_video_id=VideoId("v1")
        )
        store.save_task(done)
        assert store.task_by_result_video(VideoId("v1")) == done
        assert store.task_by_result_video(VideoId("v2")) is None


class TestSchedule:
    def test_due_tasks_pop_once_in_due_order(self, store: Store) -> None:
        """pop_due returns what is due by now, earliest first, and removes it from the schedule."""
        store.insert_task(make_task(1, created=T0 + 500))
        store.insert_task(make_task(2, created=T0))
        store.insert_task(make_task(3, created=T0 + 5000))
        assert store.next_due_ms() == T0 + 1000
        assert store.pop_due(T0 + 999) == []
        assert store.pop_due(T0 + 1500) == [make_task(2).task_id, make_task(1).task_id]
        assert store.pop_due(T0 + 1500) == []
        assert store.next_due_ms() == T0 + 6000

    def test_saved_next_state_is_scheduled(self, store: Store) -> None:
        """After a popped task is saved in its next status, its next transition is due."""
        store.insert_task(make_task(1))
        assert store.pop_due(T0 + 1000) == [make_task(1).task_id]
        store.save_task(dataclasses.replace(make_task(1), status=TaskStatus.PROCESSING))
        assert store.next_due_ms() == T0 + 4000
        assert store.pop_due(T0 + 4000) == [make_task(1).task_id]
        store.save_task(dataclasses.replace(make_task(1), status=TaskStatus.SUCCEED))
        assert store.next_due_ms() is None

    def test_a_due_time_fires_at_most_once(self, store: Store) -> None:
        """Saving a popped task again without a status change does not make it due again."""
        store.insert_task(make_task(1))
        assert store.pop_due(T0 + 1000) == [make_task(1).task_id]
        store.save_task(dataclasses.replace(make_task(1), status_msg="touched"))
        store.save_task(dataclasses.replace(make_task(1), status_msg="again"))
        assert store.pop_due(T0 + 10_000) == []

    def test_a_zero_ms_phase_fires_both_transitions(self, store: Store) -> None:
        """With 0 ms of processing, the end of processing is due when processing starts, and
        fires once even if the processing task is saved twice."""
        task = dataclasses.replace(make_task(1), outcome=Outcome(1000, 0))
        store.insert_task(task)
        assert store.pop_due(T0 + 1000) == [task.task_id]
        processing = dataclasses.replace(task, status=TaskStatus.PROCESSING)
        store.save_task(processing)
        store.save_task(processing)
        assert store.pop_due(T0 + 1000) == [task.task_id]
        assert store.pop_due(T0 + 1000) == []


class TestBounds:
    def test_journal_keeps_the_newest_entries(self, store: Store) -> None:
        """The journal holds journal_limit entries; after_seq and limit select among them."""
        for seq in range(1, 9):
            store.add_journal(entry(seq))
        assert [e.seq for e in store.journal()] == [4, 5, 6, 7, 8]
        assert [e.seq for e in store.journal(JournalQuery(after_seq=5))] == [6, 7, 8]
        assert [e.seq for e in store.journal(JournalQuery(after_seq=5, limit=2))] == [6, 7]

    def test_deliveries_are_bounded_and_filtered_by_task(self, store: Store) -> None:
        """Delivery attempts are bounded like the journal and filtered by task id."""
        for seq in range(1, 9):
            store.add_delivery(attempt(seq, "t1" if seq % 2 else "t2"))
        assert [d.seq for d in store.deliveries()] == [4, 5, 6, 7, 8]
        assert [d.seq for d in store.deliveries("t1")] == [5, 7]
        assert [d.seq for d in store.last_deliveries(2)] == [7, 8]
        assert [d.seq for d in store.last_deliveries(50)] == [4, 5, 6, 7, 8]

    def test_blobs_evict_the_least_recently_used(self, make_store: MakeStore) -> None:
        """Over the byte budget the least recently used blob goes; a read counts as a use;
        equal bytes share one key."""
        s = make_store(blob_budget_bytes=250)
        assert s.put_blob(b"1" * 100) == s.put_blob(b"1" * 100)
        one, two = s.put_blob(b"1" * 100), s.put_blob(b"2" * 100)
        assert s.get_blob(one) is not None
        three = s.put_blob(b"3" * 100)
        assert s.get_blob(two) is None
        assert s.get_blob(one) == b"1" * 100 and s.get_blob(three) == b"3" * 100
        big = s.put_blob(b"4" * 1000)  # alone over budget: kept, everything else goes
        assert s.get_blob(big) == b"4" * 1000
        assert s.get_blob(one) is None and s.get_blob(three) is None

    def test_reset_forgets_everything(self, store: Store) -> None:
        """reset empties tasks, the schedule, sessions, blobs, journal, deliveries and fixtures."""
        store.insert_task(make_task(1, external="x"))
        key = store.put_blob(b"data")
        store.add_journal(entry(1))
        store.add_delivery(attempt(1, "t"))
        store.add_fixture_doc({"outcomes": []})
        store.reset()
        assert store.list_tasks(None, 0, 10) == [] and store.next_due_ms() is None
        assert store.task_by_external_id(A, "x") is None and store.get_blob(key) is None
        assert store.journal() == [] and store.deliveries() == [] and store.fixture_docs() == []
        store.insert_task(make_task(1, external="x"))


class TestJournal:
    def test_filters_are_applied_by_the_store(self, make_store: MakeStore) -> None:
        """method, path prefix, operation, account, code, after and limit select the same
        entries as filtering everything by hand, oldest first."""
        store = make_store()
        made = [
            entry(
                seq,
                method="POST" if seq % 2 else "GET",
                path=f"/v1/{'videos' if seq % 3 else 'audio'}/{seq}",
                operation=None if seq % 5 == 0 else ("a" if seq % 4 else "b"),
                account="x" if seq % 3 == 1 else None,
                code=0 if seq % 6 else 1201,
            )
            for seq in range(1, 41)
        ]
        for e in made:
            store.add_journal(e)
        queries = [
            JournalQuery(),
            JournalQuery(method="POST"),
            JournalQuery(path_prefix="/v1/aud"),
            JournalQuery(path_prefix="/v1/videos/1", limit=3),
            JournalQuery(operation="b", after_seq=10),
            JournalQuery(account="x", code=0),
            JournalQuery(code=1201, limit=2),
            JournalQuery(method="GET", path_prefix="/v1/videos", after_seq=30, limit=100),
            JournalQuery(path_prefix="%"),  # a LIKE wildcard matches nothing here
            JournalQuery(limit=0),
        ]
        for q in queries:
            expected = [e for e in made if q.matches(e)][: q.limit]
            assert store.journal(q) == expected, q
        assert store.last_journal_seq() == 40

    def test_the_byte_budget_evicts_the_oldest(self, make_store: MakeStore) -> None:
        """With a 64 KB budget, entries of ~4 KB each are kept up to the budget, the newest
        ones, contiguous; an entry alone over the budget is still kept (it is the newest)."""
        store = make_store(journal_bytes=64 * 1024)
        for seq in range(1, 101):
            store.add_journal(entry(seq, message="m" * 4000))
        kept = [e.seq for e in store.journal()]
        print(f"\n[journal budget] 64 KB budget, 100 entries of ~4 KB: {len(kept)} kept")
        assert 8 <= len(kept) <= 16
        assert kept == list(range(101 - len(kept), 101))
        store.add_journal(entry(101, message="m" * 100_000))
        assert [e.seq for e in store.journal()] == [101]

    def test_deliveries_have_a_byte_budget_and_a_limit(self, make_store: MakeStore) -> None:
        """The delivery log evicts by bytes as the journal does; `limit` caps a read."""
        store = make_store(journal_bytes=32 * 1024)
        for seq in range(1, 101):
            store.add_delivery(dataclasses.replace(attempt(seq, "t"), error="e" * 2000))
        kept = [d.seq for d in store.deliveries()]
        assert 8 <= len(kept) <= 16 and kept == list(range(101 - len(kept), 101))
        assert [d.seq for d in store.deliveries("t", limit=2)] == kept[:2]
        assert store.deliveries("nobody") == []

    def test_a_read_costs_the_limit_not_the_journal(self, make_store: MakeStore) -> None:
        """Reading one entry of a journal of 5000 costs no more than ~10x reading one of a
        journal of 50 (the whole journal would cost 100x)."""

        def one_read_s(size: int) -> float:
            store = make_store()
            for seq in range(1, size + 1):
                store.add_journal(entry(seq, body={"k": "v" * 200}))
            started = time.perf_counter()
            for _ in range(50):
                assert len(store.journal(JournalQuery(after_seq=size // 2, limit=1))) == 1
            return (time.perf_counter() - started) / 50

        small, large = one_read_s(50), one_read_s(5000)
        print(f"\n[journal read] limit=1: {small * 1e6:.0f} us of 50, {large * 1e6:.0f} us of 5000")
        assert large < max(10 * small, 0.002)


class TestClockState:
    @pytest.mark.parametrize("mode", list(ClockMode))
    def test_a_saved_clock_loads_back(self, store: Store, mode: ClockMode) -> None:
        """save_clock/load_clock keep mode, speed and anchor; nothing saved loads None."""
        assert store.load_clock() is None
        state = ClockState(mode, 60.0, T0 + 5, 1_700_000_000.25)
        store.save_clock(state)
        assert store.load_clock() == state

    def test_a_restored_clock_resumes_its_timeline(self, store: Store) -> None:
        """A clock listening to the store saves every change; a new clock restored from it
        reads the same time (manual), and never an earlier one (real, scaled)."""
        first = Clock(ClockMode.MANUAL, 1.0, T0)
        first.listeners.append(store.save_clock)
        first.advance(3_600_000)
        first.set_mode(ClockMode.MANUAL, 30.0)
        saved = store.load_clock()
        assert saved is not None
        again = Clock(ClockMode.REAL, 1.0, None)
        again.restore(saved)
        assert (again.mode, again.speed, again.now_ms()) == (ClockMode.MANUAL, 30.0, T0 + 3_600_000)
        first.set_mode(ClockMode.REAL)
        before = first.now_ms()
        real = store.load_clock()
        assert real is not None
        again.restore(real)
        assert again.mode is ClockMode.REAL and before <= again.now_ms() < T0 + 3_700_000


class TestFixtureDocs:
    def test_documents_come_back_in_order_and_typed(self, store: Store) -> None:
        """Kept documents read back in order with only videos, audios and outcomes."""
        store.add_fixture_doc(fixture_doc({"videos": [{"url": "u", "duration_ms": 1}]}))
        store.add_fixture_doc(fixture_doc({"outcomes": [{"status": "failed"}], "faults": [{}]}))
        assert store.fixture_docs() == [
            {"videos": [{"url": "u", "duration_ms": 1}]},
            {"outcomes": [{"status": "failed"}]},
        ]
        store.clear_fixture_docs()
        assert store.fixture_docs() == []

    def test_documents_over_the_byte_budget_are_refused(self, make_store: MakeStore) -> None:
        """A document that would take the kept documents over fixture_bytes is refused with
        1201 and not kept; after a clear it fits again."""
        store = make_store(fixture_bytes=1000)
        doc = fixture_doc({"videos": [{"url": "u" * 300, "duration_ms": 1}]})
        store.add_fixture_doc(doc)
        store.add_fixture_doc(doc)
        with pytest.raises(ApiError, match=r"over the 1000 the store keeps") as caught:
            store.add_fixture_doc(doc)
        assert caught.value.code == 1201
        assert store.fixture_docs() == [doc, doc]
        store.clear_fixture_docs()
        store.add_fixture_doc(doc)
        assert store.fixture_docs() == [doc]


def test_sessions_are_counted_and_a_reset_empties_them(store: Store) -> None:
    """count_sessions counts distinct (account, session) pairs, what --max-sessions limits."""
    video = VideoMeta(5000, 1280, 720, 1000, "mp4", (Face("0", 0, 5000),), MetaSource.DERIVED)
    for account, sid in (("a", "1"), ("a", "2"), ("b", "1"), ("a", "1")):
        store.put_session(Session(SessionId(sid), AccountId(account), "", "u", video, 0))
    assert store.count_sessions() == 3
    store.reset()
    assert store.count_sessions() == 0
