"""What is kept costs what its budget says: measured with tracemalloc, not estimated.

orjson hands back its working buffer as the bytes object (~4 KB for a 500-byte document), so
a kept document that is not copied to its own size holds eight times what it is counted as:
the journal of 10,000 polls once took 90 MB more than before.
"""

from __future__ import annotations

import tracemalloc

from mock_server.domain.models import JournalEntry, TaskStatus
from mock_server.domain.store import MemoryStore
from mock_server.web import responses, serialize
from tests.test_hotpath import make_task

BUDGET = 4 * 1024 * 1024


def entry(seq: int) -> JournalEntry:
    return JournalEntry(
        seq=seq, wall_ms=1_764_590_000_000 + seq, clock_ms=1_722_769_557_708 + seq,
        method="GET", path=f"/v1/videos/advanced-lip-sync/9{seq:017d}", query="",
        operation="getLipSyncTask", account="mock-access-key", auth="jwt",
        token_lifetime_s=1800, body=None, http_status=200, code=0,
        request_id=f"6b0d4f1e-5c1a-4b8e-9a51-{seq:012x}", latency_ms=0.25,
        task_status="succeed",
    )  # fmt: skip


def test_the_journal_holds_what_its_byte_budget_counts() -> None:
    store = MemoryStore(journal_bytes=BUDGET, journal_limit=10**9)
    entries = [entry(i) for i in range(30_000)]  # made first: their own memory is not counted
    tracemalloc.start()
    try:
        for e in entries:
            store.add_journal(e)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = store.last_journal_seq() - store.journal()[0].seq + 1
    print(f"\njournal: {kept:,} entries kept, {held / 2**20:.1f} MiB held for a 4 MiB budget")
    assert 1_000 < kept < 30_000  # the budget evicted, and kept a fair number
    assert held < 1.5 * BUDGET


def test_the_task_json_cache_holds_documents_of_their_own_size() -> None:
    tasks = [
        make_task(f"92{i:016d}", TaskStatus.SUCCEED) for i in range(serialize.TASK_DOC_CACHE)
    ]
    docs = [serialize.task(t, "http://127.0.0.1:8000") for t in tasks]
    tracemalloc.start()
    try:
        sizes = [len(responses.dumps_data(d)) for d in docs]  # each encoded once and kept
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"\ntask JSON cache: {len(sizes):,} documents of {sum(sizes) / len(sizes):.0f} B, "
        f"{held / len(sizes):.0f} B held each"
    )
    assert held < 2 * sum(sizes) + 64 * len(sizes)
