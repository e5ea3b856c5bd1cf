"""Callback delivery: order, payload, retries, signing, chaos and isolation from bad receivers."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from mock_server.domain.models import (
    AccountId,
    DeliveryAttempt,
    Outcome,
    ParentVideo,
    SessionId,
    SoundChoice,
    Task,
    TaskEvent,
    TaskId,
    TaskStatus,
)
from mock_server.domain.store import MemoryStore
from mock_server.web.callbacks import (
    CONTENT_TYPE,
    CallbackDispatcher,
    ChaosSettings,
    backoff_s,
    sign,
)

from .conftest import create_body, identify, mock_of

SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
FAST: dict[str, Any] = {"callback_backoff_s": 0.05, "callback_timeout_s": 1.0}
LIFECYCLE = ["submitted", "processing", "succeed"]

T = TypeVar("T")


# -- a real receiver ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic()

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def status(self) -> str:
        return str(self.payload["task_status"])


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the dispatcher hangs up on slow answers; the broken pipes are expected


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and answers from a script (then 200)."""

    def __init__(self) -> None:
        self.script: deque[int] = deque()
        self.hang_s = 0.0
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver._received.append(Received(headers, body, time.monotonic()))
                    status = receiver.script.popleft() if receiver.script else 200
                if receiver.hang_s:
                    receiver._release.wait(receiver.hang_s)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/callback"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, n: int, timeout_s: float = 5.0) -> list[Received]:
        return wait_until(lambda: self.received if len(self.received) >= n else None, timeout_s)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback receiver on a free port of 127.0.0.1; answers 200 unless scripted."""
    r = Receiver()
    yield r
    r.close()


def wait_until(probe: Callable[[], T | None], timeout_s: float = 5.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- driving the in-process mock ---------------------------------------------------------------


def on_loop(client: TestClient, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` on the app's event loop, where the ticker and the dispatcher live."""
    assert client.portal is not None
    return client.portal.call(fn, *args)


def start_task(client: TestClient, url: str, **overrides: Any) -> str:
    session = identify(client)
    body = create_body(session["session_id"], callback_url=url, **overrides)
    r = client.post("/v1/videos/advanced-lip-sync", json=body)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["data"]["task_id"]
    return task_id


def advance(client: TestClient, ms: int) -> None:
    backend = mock_of(client).backend
    on_loop(client, backend.advance_clock, ms)


def run_lifecycle(client: TestClient, url: str, **overrides: Any) -> str:
    task_id = start_task(client, url, **overrides)
    advance(client, 1000)
    advance(client, 3000)
    return task_id


def attempts(client: TestClient, task_id: str | None = None) -> list[DeliveryAttempt]:
    return on_loop(client, mock_of(client).backend.deliveries, task_id)


def wait_attempts(
    client: TestClient, task_id: str, n: int, timeout_s: float = 5.0
) -> list[DeliveryAttempt]:
    return wait_until(
        lambda: got if len(got := attempts(client, task_id)) >= n else None, timeout_s
    )


def wait_idle(client: TestClient, timeout_s: float = 5.0) -> None:
    callbacks = mock_of(client).callbacks
    wait_until(lambda: True if callbacks.pending == 0 else None, timeout_s)


# -- the dispatcher on its own -----------------------------------------------------------------


def make_task(task_id: str, status: TaskStatus, url: str, external_id: str = "") -> Task:
    return Task(
        task_id=TaskId(task_id),
        account=AccountId("acct"),
        external_task_id=external_id,
        session_id=SessionId("s1"),
        face_id="0",
        parent=ParentVideo("", "https://example.com/v.mp4", 5000, 1280, 720),
        sound=SoundChoice(None, 3000, 0, 3000, 0, 1.0, 1.0),
        watermark=False,
        callback_url=url,
        outcome=Outcome(1000, 3000),
        status=status,
        status_msg="",
        created_at_ms=1_722_769_557_708,
        updated_at_ms=1_722_769_557_708,
    )


def event(task_id: str, url: str = "http://receiver.test/cb") -> TaskEvent:
    return TaskEvent(make_task(task_id, TaskStatus.SUBMITTED, url), None)


def dispatcher(
    handler: Callable[[httpx.Request], Any], **options: Any
) -> tuple[CallbackDispatcher, MemoryStore]:
    store = MemoryStore()
    d = CallbackDispatcher(
        store,
        "http://mock.test",
        transport=httpx.MockTransport(handler),
        backoff_base_s=0.01,
        **options,
    )
    return d, store


# -- tests -------------------------------------------------------------------------------------


class TestDelivery:
    def test_statuses_arrive_in_order_once_each(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """A task's callbacks arrive as submitted, processing, succeed, each exactly once."""
        client = make_client(**FAST)
        task_id = run_lifecycle(client, receiver.url)
        receiver.wait_for(3)
        wait_idle(client)
        got = receiver.received
        assert [r.status for r in got] == LIFECYCLE
        assert {r.payload["task_id"] for r in got} == {task_id}
        recorded = attempts(client, task_id)
        assert [(a.task_status, a.attempt, a.http_status) for a in recorded] == [
            (s, 1, 200) for s in LIFECYCLE
        ]
        assert len({a.delivery_id for a in recorded}) == 3

    def test_payload_is_the_legacy_task_body(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """Every body validates against CallbackPayload, has no envelope and matches polling."""
        client = make_client(**FAST)
        task_id = run_lifecycle(client, receiver.url, external_task_id="order-1")
        got = receiver.wait_for(3)
        validator = mock_of(client).spec.validator("CallbackPayload")
        for r in got:
            assert r.headers["content-type"] == CONTENT_TYPE
            assert list(validator.iter_errors(r.payload)) == []
            assert "code" not in r.payload and "data" not in r.payload
            assert r.payload["task_info"]["external_task_id"] == "order-1"
        polled = client.get(f"/v1/videos/advanced-lip-sync/{task_id}").json()["data"]
        final = got[-1].payload
        assert final["task_result"] == polled["task_result"]
        assert final["updated_at"] == polled["updated_at"]
        assert final["task_result"]["videos"][0]["url"].startswith("http")

    def test_no_callback_url_sends_nothing(self, make_client: Callable[..., TestClient]) -> None:
        """A task created without callback_url records no delivery attempt."""
        client = make_client(**FAST)
        task_id = start_task(client, "")
        advance(client, 4000)
        wait_idle(client)
        assert attempts(client, task_id) == []

    def test_dispatcher_is_wired_into_the_app(self, make_client: Callable[..., TestClient]) -> None:
        """build_mock puts the dispatcher on the Mock and registers it as a backend listener."""
        mock = mock_of(make_client())
        assert isinstance(mock.callbacks, CallbackDispatcher)
        assert mock.callbacks.on_event in mock.backend._listeners


class TestRetries:
    def test_two_failures_then_success(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """500, 500, 200 gives three attempts of one delivery, then later statuses follow."""
        receiver.script.extend([500, 500])
        client = make_client(**FAST)
        task_id = run_lifecycle(client, receiver.url)
        receiver.wait_for(5)
        wait_idle(client)
        assert [r.status for r in receiver.received] == ["submitted"] * 3 + LIFECYCLE[1:]
        first = [a for a in attempts(client, task_id) if a.task_status == "submitted"]
        assert [(a.attempt, a.http_status) for a in first] == [(1, 500), (2, 500), (3, 200)]
        assert len({a.delivery_id for a in first}) == 1
        gaps = [(b.wall_ms - a.wall_ms) / 1000 for a, b in itertools.pairwise(first)]
        assert gaps[0] >= 0.05 * 0.9 and gaps[1] >= 0.1 * 0.9

    def test_connection_refused_is_retried_up_to_the_limit(
        self, make_client: Callable[..., TestClient]
    ) -> None:
        """A closed port is tried callback_attempts times, each recorded with the error."""
        client = make_client(callback_attempts=3, **FAST)
        task_id = start_task(client, f"http://127.0.0.1:{free_port()}/cb")
        wait_attempts(client, task_id, 3)
        wait_idle(client)
        got = attempts(client, task_id)
        assert [a.attempt for a in got] == [1, 2, 3]
        assert all(a.http_status is None and a.error for a in got)

    def test_timeouts_are_retried(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """A receiver slower than callback_timeout_s counts as a failed, retried attempt."""
        receiver.hang_s = 1.0
        client = make_client(callback_attempts=2, callback_backoff_s=0.05, callback_timeout_s=0.2)
        task_id = start_task(client, receiver.url)
        got = wait_attempts(client, task_id, 2)
        assert [a.attempt for a in got] == [1, 2]
        assert all(a.error and "timeout" in a.error for a in got)
        assert all(a.latency_ms < 900 for a in got)

    def test_unusable_url_is_refused_at_create(
        self, make_client: Callable[..., TestClient]
    ) -> None:
        """A callback_url with a port out of range is refused up front, never attempted."""
        client = make_client(**FAST)
        session = identify(client)
        body = create_body(session["session_id"], callback_url="http://127.0.0.1:99999/cb")
        r = client.post("/v1/videos/advanced-lip-sync", json=body)
        assert (r.status_code, r.json()["code"]) == (400, 1201)
        assert "callback-url-http" in r.json()["message"]
        assert mock_of(client).backend.deliveries() == []

    def test_backoff_doubles_up_to_the_cap(self) -> None:
        """Backoff is base * 2**(n-1), without jitter, capped."""
        assert [backoff_s(n, 0.5) for n in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]
        assert backoff_s(20, 0.5) == 30.0
        assert backoff_s(3, 1.0, cap_s=2.5) == 2.5


class TestSigning:
    def test_official_test_vector(self) -> None:
        """sign() reproduces the documented Standard Webhooks vector."""
        body = (
            '{"id":"1234567890","status":"succeeded","message":"",'
            '"create_time":1781080778802,"update_time":1781080794151}'
        )
        expected = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="
        assert sign(SECRET, "9876543210", 1781080794, body) == expected
        assert sign(SECRET, "9876543210", 1781080794, body.encode()) == expected

    def test_deliveries_verify_with_standardwebhooks(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """Each real delivery passes the standardwebhooks verifier, with a fresh timestamp."""
        client = make_client(webhook_secret=SECRET, **FAST)
        task_id = run_lifecycle(client, receiver.url)
        got = receiver.wait_for(3)
        wait_idle(client)
        verifier = Webhook(SECRET)
        for r in got:
            assert verifier.verify(r.body, r.headers)["task_id"] == task_id
            assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
        recorded = attempts(client, task_id)
        assert [r.headers["webhook-id"] for r in got] == [a.delivery_id for a in recorded]
        assert all(a.signed for a in recorded)  # the record says so (contract coverage reads it)

    def test_retries_keep_the_webhook_id(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """Every attempt of one delivery carries the same webhook-id and a valid signature."""
        receiver.script.append(503)
        client = make_client(webhook_secret=SECRET, **FAST)
        start_task(client, receiver.url)
        got = receiver.wait_for(2)
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        for r in got:
            Webhook(SECRET).verify(r.body, r.headers)

    def test_no_secret_no_signature_headers(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """Without a webhook secret the callback carries no webhook-* headers."""
        client = make_client(**FAST)
        start_task(client, receiver.url)
        (r,) = receiver.wait_for(1)
        assert not [h for h in r.headers if h.startswith("webhook-")]

    def test_malformed_secret_is_refused_at_start(self) -> None:
        """A secret that is not base64 after whsec_ fails when the dispatcher is built."""
        with pytest.raises(ValueError, match="whsec_"):
            CallbackDispatcher(MemoryStore(), "http://mock.test", secret="whsec_not*base64!")


class TestChaos:
    def test_duplicate_sends_each_status_twice(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """With duplicate on, every status arrives twice with the same webhook-id."""
        client = make_client(webhook_secret=SECRET, **FAST)
        mock_of(client).callbacks.set_chaos(None, ChaosSettings(duplicate=True))
        task_id = run_lifecycle(client, receiver.url)
        got = receiver.wait_for(6)
        wait_idle(client)
        assert [r.status for r in got] == [s for s in LIFECYCLE for _ in range(2)]
        assert [r.headers["webhook-id"] for r in got[::2]] == [
            r.headers["webhook-id"] for r in got[1::2]
        ]
        assert [a.chaos for a in attempts(client, task_id)] == [None, "duplicate"] * 3

    def test_drop_records_but_never_sends(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """With drop on, nothing is sent and each status is recorded as dropped."""
        client = make_client(**FAST)
        mock_of(client).callbacks.set_chaos(None, ChaosSettings(drop=True))
        task_id = run_lifecycle(client, receiver.url)
        got = wait_attempts(client, task_id, 3)
        wait_idle(client)
        time.sleep(0.1)
        assert receiver.received == []
        assert [(a.task_status, a.chaos, a.http_status) for a in got] == [
            (s, "dropped", None) for s in LIFECYCLE
        ]

    def test_reorder_delivers_newest_first(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """With reorder on, held statuses go out newest first once the terminal one arrives."""
        client = make_client(**FAST)
        mock_of(client).callbacks.set_chaos(None, ChaosSettings(reorder=True))
        task_id = run_lifecycle(client, receiver.url)
        got = receiver.wait_for(3)
        assert [r.status for r in got] == LIFECYCLE[::-1]
        wait_idle(client)
        assert {a.chaos for a in attempts(client, task_id)} == {"reordered"}

    def test_reorder_hold_is_bounded(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """A held status is sent after max_hold_ms even if no newer status comes."""
        client = make_client(**FAST)
        mock_of(client).callbacks.set_chaos(None, ChaosSettings(reorder=True, max_hold_ms=200))
        started = time.monotonic()
        start_task(client, receiver.url)
        (r,) = receiver.wait_for(1)
        assert r.status == "submitted"
        assert 0.15 <= r.at - started < 2.0

    def test_delay_sends_late(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """With delay_ms, the callback arrives no sooner than that after the status change."""
        client = make_client(**FAST)
        mock_of(client).callbacks.set_chaos(None, ChaosSettings(delay_ms=300))
        started = time.monotonic()
        task_id = start_task(client, receiver.url)
        (r,) = receiver.wait_for(1)
        assert r.at - started >= 0.3
        wait_idle(client)
        assert [a.chaos for a in attempts(client, task_id)] == ["delayed"]

    def test_scope_by_external_id_or_task_id(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """Chaos scoped to an external_task_id hits only that task; a task_id scope overrides."""
        client = make_client(**FAST)
        callbacks = mock_of(client).callbacks
        callbacks.set_chaos("order-drop", ChaosSettings(drop=True))
        dropped = start_task(client, receiver.url, external_task_id="order-drop")
        normal = start_task(client, receiver.url, external_task_id="order-ok")
        receiver.wait_for(1)
        wait_idle(client)
        assert [r.payload["task_id"] for r in receiver.received] == [normal]
        assert [a.chaos for a in attempts(client, dropped)] == ["dropped"]
        callbacks.set_chaos(dropped, ChaosSettings())  # task_id beats external_task_id
        advance(client, 1000)
        receiver.wait_for(3)
        assert {r.payload["task_id"] for r in receiver.received[1:]} == {normal, dropped}

    def test_chaos_state_round_trip(self) -> None:
        """set_chaos (object or keywords), chaos_state, remove_chaos and clear_chaos agree."""
        d = CallbackDispatcher(MemoryStore(), "http://mock.test")
        d.set_chaos(None, duplicate=True)
        d.set_chaos("t1", ChaosSettings(delay_ms=50))
        state = d.chaos_state()
        assert state["global"]["duplicate"] is True
        assert state["scopes"]["t1"]["delay_ms"] == 50
        assert d.chaos_for("t1").delay_ms == 50 and d.chaos_for("t2").duplicate
        assert d.remove_chaos("t1") and not d.remove_chaos("t1")
        d.clear_chaos()
        assert d.chaos_state() == {"global": state["global"] | {"duplicate": False}, "scopes": {}}

    def test_invalid_chaos_is_refused(self) -> None:
        """Negative delays and non-boolean switches raise instead of being half-applied."""
        with pytest.raises(ValueError):
            ChaosSettings(delay_ms=-1)
        with pytest.raises(TypeError):
            ChaosSettings(duplicate="yes")  # type: ignore[arg-type]
        d = CallbackDispatcher(MemoryStore(), "http://mock.test")
        unknown: dict[str, Any] = {"explode": True}
        with pytest.raises(TypeError):
            d.set_chaos(None, **unknown)
        assert d.chaos_state()["global"] == dataclasses.asdict(ChaosSettings())


class TestIsolation:
    def test_hanging_receiver_does_not_slow_the_api(
        self, make_client: Callable[..., TestClient], receiver: Receiver
    ) -> None:
        """While callbacks hang for 2 s, API requests still answer in a fraction of that."""
        receiver.hang_s = 2.0
        client = make_client(callback_timeout_s=5.0, callback_backoff_s=0.05)
        task_ids = [start_task(client, receiver.url) for _ in range(10)]
        receiver.wait_for(10)
        latencies = []
        for task_id in task_ids[:5]:
            started = time.perf_counter()
            assert client.get(f"/v1/videos/advanced-lip-sync/{task_id}").status_code == 200
            latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        start_task(client, receiver.url)
        latencies.append(time.perf_counter() - started)
        assert max(latencies) < 0.5, latencies
        assert len(receiver.received) >= 10 and mock_of(client).callbacks.pending >= 10

    def test_concurrent_requests_are_capped(self) -> None:
        """No more than max_concurrency callbacks are on the wire at once."""
        live = 0
        peak = 0

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            await asyncio.sleep(0.02)
            live -= 1
            return httpx.Response(200)

        async def main() -> list[DeliveryAttempt]:
            d, store = dispatcher(handler, max_concurrency=4)
            await d.start()
            for i in range(40):
                d.on_event(event(f"t{i}"))
            assert await d.idle(5.0)
            await d.aclose()
            return store.deliveries()

        got = asyncio.run(main())
        assert len(got) == 40 and all(a.http_status == 200 for a in got)
        assert peak == 4

    def test_aclose_is_bounded(self) -> None:
        """aclose gives hanging deliveries drain_s, then cancels them."""

        async def handler(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            return httpx.Response(200)

        async def main() -> float:
            d, _ = dispatcher(handler, timeout_s=60.0, drain_s=0.2)
            await d.start()
            for i in range(5):
                d.on_event(event(f"t{i}"))
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            await d.aclose()
            return time.perf_counter() - started

        assert asyncio.run(main()) < 1.0

    def test_events_from_other_threads_and_before_start(self) -> None:
        """on_event works from any thread and before start(); nothing is lost."""

        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(204)

        async def main() -> list[DeliveryAttempt]:
            d, store = dispatcher(handler)
            d.on_event(event("early"))
            await d.start()
            await asyncio.to_thread(d.on_event, event("threaded"))
            assert await d.idle(5.0)
            await d.aclose()
            return store.deliveries()

        assert sorted(a.task_id for a in asyncio.run(main())) == ["early", "threaded"]

    def test_pending_is_bounded(self) -> None:
        """Past max_pending, a callback is recorded as not sent instead of queued."""
        release = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200)

        async def main() -> list[DeliveryAttempt]:
            d, store = dispatcher(handler, max_pending=2)
            await d.start()
            for i in range(5):
                d.on_event(event(f"t{i}"))
            refused = store.deliveries()
            assert d.pending == 2
            release.set()
            assert await d.idle(5.0)
            await d.aclose()
            return refused

        refused = asyncio.run(main())
        assert len(refused) == 3 and all("not sent" in (a.error or "") for a in refused)

    def test_reset_forgets_pending_work(self) -> None:
        """reset() drops queued and in-flight deliveries and the chaos settings."""

        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(500)

        async def main() -> tuple[bool, int, int]:
            d, store = dispatcher(handler, attempts=50)
            d.set_chaos(None, ChaosSettings(delay_ms=10))
            await d.start()
            d.on_event(event("t1"))
            timed_out = not await d.idle(0.1)
            d.reset()
            assert d.chaos_state()["global"]["delay_ms"] == 0
            await asyncio.sleep(0.05)
            count = len(store.deliveries())
            await asyncio.sleep(0.1)
            growth = len(store.deliveries()) - count
            await d.aclose()
            return timed_out, d.pending, growth

        timed_out, pending, growth = asyncio.run(main())
        assert timed_out and pending == 0 and growth == 0


class TestNeverTheMockItself:
    def test_a_name_that_resolves_to_the_mock_is_not_sent(self) -> None:
        """A callback host the create rule cannot know (an /etc/hosts or DNS name) but that
        resolves to the mock's own address on its port: the attempt is refused before any
        byte is sent, recorded, and not retried."""
        sent: list[httpx.Request] = []

        async def handler(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(200)

        async def reaches_self(url: str) -> bool:
            return "selfname.test" in url

        async def main() -> list[DeliveryAttempt]:
            d, store = dispatcher(handler, reaches_self=reaches_self)
            await d.start()
            d.on_event(event("t1", "http://selfname.test:8000/__admin/reset"))
            d.on_event(event("t2", "http://receiver.test/cb"))
            assert await d.idle(5.0)
            await d.aclose()
            return store.deliveries()

        got = {a.task_id: a for a in asyncio.run(main())}
        assert [str(r.url) for r in sent] == ["http://receiver.test/cb"]
        assert got["t1"].http_status is None and got["t1"].attempt == 1
        assert "own address" in (got["t1"].error or "")
        assert got["t2"].http_status == 200

    def test_resolution_decides_for_names_on_the_mocks_port(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The check resolves a name only on the mock's port; loopback, 0.0.0.0 and the bound
        address count as the mock, another machine's address does not."""
        from mock_server.config import Config
        from mock_server.web.compose import resolved_self_check

        answers = {"self.test": "127.0.0.5", "any.test": "0.0.0.0", "far.test": "192.0.2.10"}

        async def fake_getaddrinfo(host: str, port: int, **kw: Any) -> list[Any]:
            if host not in answers:
                raise OSError("unknown host")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

        check = resolved_self_check(Config(port=8123), lambda url: False)

        async def main() -> list[bool]:
            loop = asyncio.get_running_loop()
            monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
            urls = [
                "http://self.test:8123/x",
                "http://any.test:8123/x",
                "http://far.test:8123/x",
                "http://self.test:9000/x",
                "http://nowhere.test:8123/x",
            ]
            return [await check(u) for u in urls]

        assert asyncio.run(main()) == [True, True, False, False, False]
