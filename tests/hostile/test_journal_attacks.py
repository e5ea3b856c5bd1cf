"""The request journal under attack, on a real server process, on both stores.

Each attack is one kind of request a client (or anyone, without a key) can send; the test
measures the server's RSS (from /proc/PID/status) before and after, and how long
`GET /__admin/journal?limit=1` takes once the journal holds what the attack left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mock_server.web.journal import MAX_NODES, summarise

from .harness import AUTH, ServerProcess

MB = 1024 * 1024
TASKS = "/v1/videos/advanced-lip-sync"
JSON = {"Content-Type": "application/json", **AUTH}
BODY_LIMIT = 10 * MB
REPEATS = 5  # 9.5 MB bodies each time: enough to see retention, cheap enough for 2 cores


def many_keys_body(size: int) -> bytes:
    """A JSON object of tiny keys (`"k0000001":0,`) just under `size` bytes."""
    per = len(b'"k0000000":0,')
    n = (size - 2) // per
    return b"{" + b",".join(b'"k%07d":0' % i for i in range(n)) + b"}"


def long_key_body(size: int) -> bytes:
    return b'{"' + b"k" * (size - 8) + b'":1}'


def journal_limit_1_s(http: httpx.Client) -> float:
    started = time.perf_counter()
    r = http.get("/__admin/journal", params={"limit": 1}, timeout=300)
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["data"]) == 1
    return elapsed


@pytest.fixture(params=["memory", "sqlite"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A mock process on the memory store or on a fresh SQLite file."""
    args = () if request.param == "memory" else ("--store", f"sqlite:{tmp_path / 'mock.db'}")
    with ServerProcess(*args) as proc:
        yield proc


def settle(http: httpx.Client) -> None:
    """One small request, so lazily built state (validators, pools) is in the baseline."""
    r = http.post(TASKS, content=b'{"session_id": "1"}', headers=JSON)
    assert r.status_code == 400


@pytest.mark.slow
class TestJournalBudget:
    @pytest.mark.parametrize("shape", ["many-keys", "long-key"])
    def test_huge_bodies_do_not_stay_in_memory(self, server: ServerProcess, shape: str) -> None:
        """Bodies of 9.5 MB (800k tiny keys, or one long key) leave a bounded trace: RSS grows
        by less than 64 MB over all of them and a one-entry journal read stays fast."""
        body = (many_keys_body if shape == "many-keys" else long_key_body)(BODY_LIMIT - MB // 2)
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=120) as http:
            settle(http)
            before = server.rss_kb()
            for _ in range(REPEATS):
                r = http.post(TASKS, content=body, headers=JSON)
                assert r.status_code == 400, r.text[:300]
                assert r.json()["code"] == 1201
            grown_mb = (server.rss_kb() - before) / 1024
            read_s = journal_limit_1_s(http)
            entry = http.get("/__admin/journal", params={"limit": 1, "after": 1}).json()["data"]
        entry_bytes = len(httpx.Response(200, json=entry).content)
        print(
            f"\n[journal {shape}] {REPEATS} x {len(body) / MB:.1f} MB bodies: RSS "
            f"{grown_mb:+.1f} MB; GET /__admin/journal?limit=1 {read_s * 1000:.0f} ms; "
            f"one entry {entry_bytes} bytes"
        )
        assert server.running
        assert grown_mb < 64
        assert read_s < 1.0
        assert entry_bytes < 64 * 1024

    def test_unauthenticated_long_queries_are_bounded(self, server: ServerProcess) -> None:
        """1000 requests without a key, each with a long query string, grow RSS by < 32 MB."""
        query = "q=" + "x" * 60_000
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http:
            settle(http)
            before = server.rss_kb()
            started = time.perf_counter()
            for _ in range(1000):
                r = http.get(f"{TASKS}?{query}")
                assert r.status_code == 401, r.text[:300]
            spent = time.perf_counter() - started
            grown_mb = (server.rss_kb() - before) / 1024
            read_s = journal_limit_1_s(http)
            last = http.get("/__admin/journal", params={"after": 1000, "limit": 1})
            kept = last.json()["data"][0]["query"]
        print(
            f"\n[journal query] 1000 x {len(query) / 1024:.0f} KB queries in {spent:.1f} s: "
            f"RSS {grown_mb:+.1f} MB; GET /__admin/journal?limit=1 {read_s * 1000:.0f} ms; "
            f"query kept {len(kept)} chars"
        )
        assert grown_mb < 32
        assert len(kept) <= 1024
        assert read_s < 1.0


class TestSummary:
    def test_small_values_stay_exactly_as_sent(self) -> None:
        """A typical create body (numbers, short strings, booleans, null) is kept unchanged:
        check-client re-validates these values."""
        body = {
            "session_id": "800000000000000001",
            "face_choose": [
                {"face_id": "0", "sound_start_time": 0, "sound_end_time": 3000, "sound_volume": 1.5}
            ],
            "watermark_info": {"enabled": False},
            "callback_url": None,
            "n": -(2**63),
        }
        assert summarise(body) == body

    def test_long_and_big_values_are_described(self) -> None:
        """Long strings give their kind and length, long keys are cut, huge ints their size."""
        out = summarise({"a": "x" * 300, "u": "https://" + "y" * 300, "k" * 500: 2**200})
        assert out["a"] == "<base64 300 chars>" and out["u"] == "<url 308 chars>"
        (long_key,) = (k for k in out if k.startswith("kkk"))
        assert len(long_key) <= 64 and long_key.endswith("<500 chars>")
        assert out[long_key] == "<integer 201 bits>"

    def test_huge_and_deep_bodies_cost_bounded_time(self) -> None:
        """800k keys, a 200k-item list and 5000 levels of nesting are summarised in < 50 ms
        each into a few KB, saying how much was left out."""
        deep: list[object] = []
        cursor = deep
        for _ in range(5000):
            cursor.append([])
            cursor = cursor[0]  # type: ignore[assignment]
        for value, marker in (
            ({f"k{i}": 0 for i in range(800_000)}, "<799950 more keys>"),
            (list(range(200_000)), "<199950 more items>"),
            (deep, "nested deeper than 16 levels"),
        ):
            started = time.perf_counter()
            out = summarise(value)
            spent = time.perf_counter() - started
            text = json.dumps(out)
            print(f"\n[summary] {marker}: {spent * 1000:.2f} ms, {len(text)} bytes")
            assert spent < 0.05 and len(text) < 8192 and marker in text

    def test_many_wide_containers_stop_at_the_node_budget(self) -> None:
        """50 lists of 50 long-ish strings stop after MAX_NODES values in all, saying so."""
        out = summarise({f"f{i}": ["s" * 200] * 50 for i in range(50)})
        text = json.dumps(out)
        assert text.count("s" * 200) <= MAX_NODES and "more keys>" in text
        assert len(text) < MAX_NODES * 260


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_journal_stays_within_journal_mb(tmp_path: Path, store: str) -> None:
    """With --journal-mb 1, 300 requests of ~13 KB summaries each leave a journal of at most
    ~1 MB: the oldest entries are gone, the newest kept, seq numbers contiguous."""
    args = ["--journal-mb", "1"]
    if store == "sqlite":
        args += ["--store", f"sqlite:{tmp_path / 'mock.db'}"]
    body = json.dumps({f"field{i}": "v" * 250 for i in range(50)}).encode()
    with (
        ServerProcess(*args) as server,
        httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http,
    ):
        for _ in range(300):
            assert http.post(TASKS, content=body, headers=JSON).status_code == 400
        r = http.get("/__admin/journal")
        kept = r.json()["data"]
    seqs = [e["seq"] for e in kept]
    print(
        f"\n[journal-mb 1, {store}] 300 requests of {len(body) / 1024:.0f} KB: {len(kept)} "
        f"entries kept, {len(r.content) / 1024:.0f} KB as JSON"
    )
    assert seqs == list(range(301 - len(kept), 301)) and 30 < len(kept) < 300
    assert len(r.content) < 1.5 * MB
    assert kept[-1]["body_bytes"] == len(body) and len(kept[-1]["body_sha256"]) == 64


@pytest.mark.slow
def test_one_entry_of_a_full_journal_is_read_in_milliseconds(server: ServerProcess) -> None:
    """With 10,000 entries journaled, `limit=1` (plain, or filtered past 9000) answers in
    under 100 ms (median of 5): the store stops at the limit."""
    body = json.dumps(
        {
            "session_id": "1",
            "face_choose": [
                {"face_id": "0", "sound_file": "https://e.com/a.mp3", "sound_end_time": 3000}
            ],
        }
    ).encode()
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http:
        for _ in range(10_000):
            http.post(TASKS, content=body, headers=JSON)
        times = [journal_limit_1_s(http) for _ in range(5)]
        started = time.perf_counter()
        r = http.get(
            "/__admin/journal",
            params={"limit": 1, "operation": "createLipSyncTask", "after": 9000},
        )
        filtered_s = time.perf_counter() - started
    median = sorted(times)[2]
    print(
        f"\n[journal full] 10k entries: limit=1 median {median * 1000:.1f} ms, filtered "
        f"{filtered_s * 1000:.1f} ms, RSS {server.rss_kb() / 1024:.0f} MB"
    )
    assert [e["seq"] for e in r.json()["data"]] == [9001]
    assert median < 0.1 and filtered_s < 0.1
