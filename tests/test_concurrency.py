"""Load against a real server process: races, lost tasks, monotone statuses, bad receivers."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from mock_server import media

from .hostile.harness import (
    AUTH,
    FailingReceiver,
    MediaServer,
    ServerProcess,
    assert_envelope,
    percentile,
)

IDENTIFY = "/v1/videos/identify-face"
TASKS = "/v1/videos/advanced-lip-sync"
RACE_KEY = "race-api-key"
CALLBACK_ACCESS_KEY = "callback-ak"
CALLBACK_KEY = "callback-api-key"
RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
TERMINAL = {"succeed", "failed"}
# Built once and shared: httpx builds a verifying SSL context per client otherwise (~50 ms
# each), which would dominate starting 100 clients. Every URL here is plain http anyway.
TLS = ssl.create_default_context()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One mock process: short phases, quick callback give-up, an account per test."""
    args = (
        *("--submit-delay", "0.2", "--processing-delay", "0.5"),
        *("--callback-attempts", "3", "--callback-timeout", "0.3"),
        *("--account", f"race-ak:race-sk:{RACE_KEY}"),
        *("--account", f"{CALLBACK_ACCESS_KEY}:callback-sk:{CALLBACK_KEY}"),
    )
    with ServerProcess(*args) as proc:
        yield proc
        assert proc.running, "the mock died"
        assert "Traceback" not in proc.log_text(), proc.log_text()[-4000:]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_body(session_id: str, external_task_id: str, sound_file: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "face_choose": [
            {
                "face_id": "0",
                "sound_file": sound_file,
                "sound_start_time": 0,
                "sound_end_time": 3000,
                "sound_insert_time": 0,
            }
        ],
        "external_task_id": external_task_id,
    }


# -- 100 clients creating and polling ----------------------------------------------------------


@dataclass(slots=True)
class Seen:
    status: str
    created_at: int
    updated_at: int


@dataclass(slots=True)
class ClientLog:
    created: dict[str, str] = field(default_factory=dict)  # task_id -> external_task_id
    seen: dict[str, list[Seen]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    requests: int = 0

    def observe(self, task: dict[str, Any]) -> None:
        self.seen.setdefault(task["task_id"], []).append(
            Seen(task["task_status"], task["created_at"], task["updated_at"])
        )

    def unfinished(self) -> list[str]:
        return [t for t in self.created if self.seen[t][-1].status not in TERMINAL]


async def one_client(
    number: int, base_url: str, go: asyncio.Event, create_s: float, settle_s: float
) -> ClientLog:
    """Create tasks and poll the unfinished ones for `create_s`, then poll until all finish."""
    log = ClientLog()
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(
        base_url=base_url, headers=AUTH, timeout=30, trust_env=False, verify=TLS
    ) as http:

        async def get(task_id: str) -> None:
            r = await http.get(f"{TASKS}/{task_id}")
            log.requests += 1
            if r.status_code != 200:
                log.failures.append(f"GET {task_id}: {r.status_code} {r.text[:200]}")
                return
            log.observe(r.json()["data"])

        await go.wait()
        r = await http.post(IDENTIFY, json={"video_url": f"https://example.com/load-{number}.mp4"})
        log.requests += 1
        session_id = r.json()["data"]["session_id"]
        create_until = loop.time() + create_s
        serial = 0
        while loop.time() < create_until:
            external = f"load-{number}-{serial}"
            serial += 1
            body = create_body(session_id, external, "https://example.com/voice.mp3")
            r = await http.post(TASKS, json=body)
            log.requests += 1
            if r.status_code != 200:
                log.failures.append(f"create {external}: {r.status_code} {r.text[:200]}")
                continue
            data = r.json()["data"]
            log.created[data["task_id"]] = external
            log.observe(data)
            for task_id in log.unfinished():
                await get(task_id)
        settle_until = loop.time() + settle_s
        while log.unfinished() and loop.time() < settle_until:
            for task_id in log.unfinished():
                await get(task_id)
            await asyncio.sleep(0.05)
    return log


async def list_all(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    page = 1
    while True:
        r = await http.get(TASKS, params={"pageNum": page, "pageSize": 500})
        assert r.status_code == 200, r.text[:300]
        data: list[dict[str, Any]] = r.json()["data"]
        tasks += data
        if len(data) < 500:
            return tasks
        page += 1


async def fetch_each(http: httpx.AsyncClient, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    slots = asyncio.Semaphore(32)
    found: dict[str, dict[str, Any]] = {}

    async def fetch(task_id: str) -> None:
        async with slots:
            r = await http.get(f"{TASKS}/{task_id}")
        assert r.status_code == 200, r.text[:300]
        found[task_id] = r.json()["data"]

    await asyncio.gather(*(fetch(t) for t in task_ids))
    return found


def assert_never_backwards(task_id: str, seen: list[Seen]) -> None:
    ranks = [RANK[s.status] for s in seen]
    assert ranks == sorted(ranks), (task_id, [s.status for s in seen])
    updated = [s.updated_at for s in seen]
    assert updated == sorted(updated), (task_id, updated)
    assert len({s.created_at for s in seen}) == 1, task_id
    finals = [s.status for s in seen if s.status in TERMINAL]
    assert len(set(finals)) <= 1, (task_id, finals)  # a terminal status never changes


@pytest.mark.slow
class TestConcurrentClients:
    def test_no_task_lost_duplicated_or_going_backwards(self, server: ServerProcess) -> None:
        """100 clients creating and polling for 4 s: each task listed once, none goes backwards."""

        async def scenario() -> tuple[list[ClientLog], list[dict[str, Any]], dict[str, Any]]:
            go = asyncio.Event()
            clients = [
                asyncio.create_task(one_client(n, server.base_url, go, 4.0, 4.0))
                for n in range(100)
            ]
            await asyncio.sleep(0.2)  # let every client open before the start signal
            started = time.monotonic()
            go.set()
            logs = await asyncio.gather(*clients)
            elapsed = time.monotonic() - started
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=AUTH, timeout=30, trust_env=False
            ) as http:
                listed = await list_all(http)
                created = [t for log in logs for t in log.created]
                found = await fetch_each(http, created)
            requests = sum(log.requests for log in logs)
            print(
                f"\n[concurrency] 100 clients, {elapsed:.1f} s: {len(created)} tasks created, "
                f"{requests} requests ({requests / elapsed:.0f}/s), "
                f"statuses {dict(Counter(t['task_status'] for t in found.values()))}"
            )
            return logs, listed, found

        logs, listed, found = asyncio.run(scenario())
        failures = [f for log in logs for f in log.failures]
        assert not failures, failures[:5]
        created: dict[str, str] = {}
        for log in logs:
            assert not created.keys() & log.created.keys(), "a task_id was handed out twice"
            created.update(log.created)
        assert all(log.created for log in logs), "a client never got a task created"
        assert len(set(created.values())) == len(created)
        listed_ids = Counter(t["task_id"] for t in listed)
        assert all(n == 1 for n in listed_ids.values()), listed_ids.most_common(3)
        assert set(listed_ids) == set(created), "the list lost or invented tasks"
        by_list = {t["task_id"]: t["task_info"]["external_task_id"] for t in listed}
        assert by_list == created
        assert set(found) == set(created)
        for log in logs:
            for task_id, seen in log.seen.items():
                final = found[task_id]
                seen = [*seen, Seen(final["task_status"], final["created_at"], final["updated_at"])]
                assert_never_backwards(task_id, seen)
        assert all(t["task_status"] in TERMINAL for t in found.values())


# -- racing one external_task_id ---------------------------------------------------------------


class TestExternalIdRace:
    def test_exactly_one_create_wins(self, server: ServerProcess) -> None:
        """40 clients racing each of 5 external_task_ids: one 200, the rest 1201 (unique rule)."""
        wav = media.make_audio(media.MediaFormat.WAV, 4000)
        with MediaServer({"/voice.wav": wav}) as voices:
            # A loopback sound is fetched and probed: every create awaits between its
            # uniqueness check and the insert, which is where a race would slip through.
            sound = voices.url("/voice.wav")

            async def race(session_id: str, external: str) -> list[httpx.Response]:
                go = asyncio.Event()
                clients = [
                    httpx.AsyncClient(
                        base_url=server.base_url,
                        headers=bearer(RACE_KEY),
                        timeout=30,
                        trust_env=False,
                        verify=TLS,
                    )
                    for _ in range(40)
                ]

                async def one(http: httpx.AsyncClient) -> httpx.Response:
                    async with http:
                        await go.wait()
                        return await http.post(TASKS, json=create_body(session_id, external, sound))

                pending = [asyncio.create_task(one(c)) for c in clients]
                await asyncio.sleep(0.05)
                go.set()
                return await asyncio.gather(*pending)

            async def scenario() -> dict[str, list[httpx.Response]]:
                async with httpx.AsyncClient(
                    base_url=server.base_url, headers=bearer(RACE_KEY), trust_env=False
                ) as http:
                    r = await http.post(IDENTIFY, json={"video_url": "https://example.com/r.mp4"})
                    session_id = r.json()["data"]["session_id"]
                return {f"race-{n}": await race(session_id, f"race-{n}") for n in range(5)}

            results = asyncio.run(scenario())

        with httpx.Client(
            base_url=server.base_url, headers=bearer(RACE_KEY), trust_env=False
        ) as http:
            for external, responses in results.items():
                winners = [r for r in responses if r.status_code == 200]
                assert len(winners) == 1, [r.text[:200] for r in responses[:3]]
                for loser in (r for r in responses if r.status_code != 200):
                    body = assert_envelope(loser, 1201)
                    assert "rule external-task-id-unique" in body["message"], body["message"]
                task_id = winners[0].json()["data"]["task_id"]
                by_external = http.get(f"{TASKS}/{external}").json()["data"]
                assert by_external["task_id"] == task_id
            listed = http.get(TASKS, params={"pageSize": 500}).json()["data"]
        assert sorted(t["task_info"]["external_task_id"] for t in listed) == sorted(results)
        print(f"\n[concurrency] external_task_id race: 5 x 40 clients, {len(listed)} tasks")


# -- callbacks to receivers that never acknowledge --------------------------------------------


def timed_gets(http: httpx.Client, path: str, seconds: float) -> list[float]:
    """Latencies (ms) of back-to-back GETs of `path` for `seconds`."""
    latencies: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        r = http.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text[:300]
    return latencies


def failed_attempts(http: httpx.Client) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = http.get("/__admin/callbacks").json()["data"]
    return [
        a
        for a in attempts
        if a["account"] == CALLBACK_ACCESS_KEY
        and (a["http_status"] is None or not 200 <= a["http_status"] < 300)
    ]


@pytest.mark.slow
class TestFailingCallbacks:
    def test_api_latency_unaffected_by_bad_receivers(self, server: ServerProcess) -> None:
        """About 1000 failing callback attempts (hang, reset, 500) leave GET p50 within 3x."""
        with (
            httpx.Client(
                base_url=server.base_url, headers=bearer(CALLBACK_KEY), timeout=30, trust_env=False
            ) as http,
            FailingReceiver("hang") as hang,
            FailingReceiver("reset") as reset,
            FailingReceiver("500") as error,
        ):
            r = http.post(IDENTIFY, json={"video_url": "https://example.com/cb.mp4"})
            session_id = r.json()["data"]["session_id"]
            sound = "https://example.com/voice.mp3"
            r = http.post(TASKS, json=create_body(session_id, "probe", sound))
            assert r.status_code == 200, r.text
            probe = f"{TASKS}/{r.json()['data']['task_id']}"
            fault = {
                "kind": "slow_task",
                "account": CALLBACK_ACCESS_KEY,
                "submitted_ms": 20,
                "processing_ms": 50,
            }
            assert http.post("/__admin/faults", json=fault).json()["code"] == 0
            deadline = time.monotonic() + 5
            while http.get(probe).json()["data"]["task_status"] not in TERMINAL:
                assert time.monotonic() < deadline
                time.sleep(0.05)

            baseline = timed_gets(http, probe, 2.0)

            receivers = (hang, reset, error)
            tasks = 120  # x 3 status changes x 3 attempts = 1080 failing attempts
            before = len(failed_attempts(http))
            for n in range(tasks):
                body = create_body(session_id, f"cb-{n}", sound)
                body["callback_url"] = receivers[n % 3].url
                r = http.post(TASKS, json=body)
                assert r.status_code == 200, r.text
            during = timed_gets(http, probe, 5.0)
            in_window = len(failed_attempts(http)) - before

            deadline = time.monotonic() + 20
            while (total := len(failed_attempts(http))) < tasks * 9:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            http.delete("/__admin/faults")
            connections = {rc.kind: rc.connections for rc in receivers}

        b50, b99 = percentile(baseline, 50), percentile(baseline, 99)
        d50, d99 = percentile(during, 50), percentile(during, 99)
        print(
            f"\n[callbacks] GET one task: baseline p50 {b50:.2f} ms p99 {b99:.2f} ms "
            f"({len(baseline)} requests); with failing callbacks p50 {d50:.2f} ms "
            f"p99 {d99:.2f} ms ({len(during)} requests); ratio p50 {d50 / b50:.2f}x "
            f"p99 {d99 / b99:.2f}x; failed attempts {in_window} during the window, "
            f"{total} in all; receiver connections {connections}"
        )
        assert in_window >= 300, "the measurement did not overlap the failing callbacks"
        assert total >= 900
        assert d50 <= 3 * b50
        assert d99 <= max(10 * b99, 100.0)  # a blocked event loop would show the 300 ms timeout
