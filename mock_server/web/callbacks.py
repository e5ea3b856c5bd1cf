"""Callback delivery: POSTs every task status change to its `callback_url`, retried, with chaos."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import dataclasses
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .. import tls
from ..domain.models import DeliveryAttempt, TaskEvent
from ..domain.store import Store
from . import serialize

log = logging.getLogger("mock_server.callbacks")

SECRET_PREFIX = "whsec_"
CONTENT_TYPE = "application/json; charset=utf-8"
BACKOFF_CAP_S = 30.0


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 text after `whsec_`, decoded."""
    raw = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(
            "webhook secret: expected 'whsec_' followed by base64, as the Kling console "
            "shows it (e.g. whsec_dGVzdHNlY3JldA==)"
        ) from exc
    if not key:
        raise ValueError("webhook secret: the key after 'whsec_' is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """`webhook-signature` value: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(
        secret_key(secret), f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff_s(attempt: int, base_s: float, cap_s: float = BACKOFF_CAP_S) -> float:
    """Wait after failed attempt `attempt` (from 1): base, 2*base, 4*base, ... capped; no jitter."""
    return float(min(cap_s, base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """Misbehaviours the dispatcher applies to the deliveries of a status change."""

    duplicate: bool = False  # deliver every status twice, with the same webhook-id
    reorder: bool = False  # hold statuses and deliver them newest first
    drop: bool = False  # never send; the attempt is still recorded with chaos="dropped"
    delay_ms: int = 0  # send this much (real) time after the status changed
    max_hold_ms: int = 5000  # a reordered status is held at most this long

    def __post_init__(self) -> None:
        for name in ("duplicate", "reorder", "drop"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"chaos {name} must be true or false")
        for name in ("delay_ms", "max_hold_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"chaos {name} must be an integer number of milliseconds")
        if self.delay_ms < 0:
            raise ValueError(f"chaos delay_ms must be >= 0, got {self.delay_ms}")
        if self.max_hold_ms <= 0:
            raise ValueError(f"chaos max_hold_ms must be > 0, got {self.max_hold_ms}")


@dataclass(slots=True)
class _Item:
    """One status change waiting to be delivered."""

    delivery_id: str
    task_id: str
    account: str
    status: str
    url: str
    body: bytes
    chaos: ChaosSettings
    arrived: float  # time.monotonic() when the status changed
    terminal: bool
    reordered: bool = False


class _OwnAddress(Exception):
    """A callback URL whose host resolves to the mock itself (caught before sending)."""


class CallbackDispatcher:
    """Queues status changes and POSTs them; never blocks or fails the API on a bad receiver.

    Per task, deliveries go out one after another in arrival order; different tasks run in
    parallel, with at most `max_concurrency` requests on the wire. A delivery is retried on
    connection errors, timeouts and non-2xx answers, up to `attempts` tries, waiting
    `backoff_s(n, backoff_base_s)` between tries. Every try is recorded in the store.
    All state is touched on the event loop that ran `start()`; `on_event` hops onto it.
    """

    def __init__(
        self,
        store: Store,
        base_url: str,
        *,
        secret: str | None = None,
        attempts: int = 5,
        timeout_s: float = 5.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = BACKOFF_CAP_S,
        max_concurrency: int = 64,
        max_pending: int = 10_000,
        drain_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], float] = time.time,
        reaches_self: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"callback attempts must be >= 1, got {attempts}")
        self.store = store
        self.base_url = base_url
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_concurrency = max_concurrency
        self.max_pending = max_pending
        self.drain_s = drain_s
        self._secret = secret or None
        if self._secret is not None:
            secret_key(self._secret)  # a bad secret fails at start-up, not on the first callback
        self._transport = transport
        self._wall = wall_clock
        self._reaches_self = reaches_self  # checked before every attempt, after DNS
        self._global = ChaosSettings()
        self._scoped: dict[str, ChaosSettings] = {}
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._early: list[_Item] = []  # events before start(), accepted by it
        self._inbound = 0  # events handed over from other threads, not yet accepted
        self._inbound_lock = threading.Lock()
        self._queues: dict[str, deque[_Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, list[_Item]] = {}
        self._hold_timers: dict[str, asyncio.TimerHandle] = {}
        self._outstanding = 0  # accepted and not finished: held, queued or being delivered
        self._generation = 0  # bumped by reset(); workers of older generations keep quiet
        self._closed = False

    # -- chaos (the control API calls these) --------------------------------------------------

    def set_chaos(
        self,
        scope: str | None,
        settings: ChaosSettings | None = None,
        *,
        duplicate: bool = False,
        reorder: bool = False,
        drop: bool = False,
        delay_ms: int = 0,
        max_hold_ms: int = 5000,
    ) -> ChaosSettings:
        """Scope None sets the default; a task_id or external_task_id overrides it for one task.

        Pass a `ChaosSettings`, or its fields as keywords (fields left out are off). A scoped
        setting replaces the default entirely, so `ChaosSettings()` exempts one task.
        """
        if settings is None:
            settings = ChaosSettings(duplicate, reorder, drop, delay_ms, max_hold_ms)
        if scope is None:
            self._global = settings
        else:
            self._scoped[scope] = settings
        return settings

    def remove_chaos(self, scope: str) -> bool:
        return self._scoped.pop(scope, None) is not None

    def clear_chaos(self) -> None:
        self._global = ChaosSettings()
        self._scoped = {}

    def chaos_state(self) -> dict[str, Any]:
        return {
            "global": dataclasses.asdict(self._global),
            "scopes": {k: dataclasses.asdict(v) for k, v in self._scoped.items()},
        }

    def chaos_for(self, task_id: str, external_task_id: str = "") -> ChaosSettings:
        for key in (task_id, external_task_id):
            if key and key in self._scoped:
                return self._scoped[key]
        return self._global

    # -- intake -----------------------------------------------------------------------------

    def on_event(self, event: TaskEvent) -> None:
        """Backend listener: snapshot the payload now, deliver later; safe from any thread."""
        task = event.task
        if self._closed or not task.callback_url:
            return
        try:
            item = _Item(
                # Random, not seeded: task ids repeat after a reset with the same seed, and a
                # receiver that dedupes on webhook-id would then drop genuine deliveries.
                delivery_id=f"msg_{uuid.uuid4().hex}",
                task_id=task.task_id,
                account=task.account,
                status=task.status.value,
                url=task.callback_url,
                body=json.dumps(
                    serialize.callback_payload(task, self.base_url),
                    separators=(",", ":"),
                    ensure_ascii=False,
                ).encode(),
                chaos=self.chaos_for(task.task_id, task.external_task_id),
                arrived=time.monotonic(),
                terminal=task.status.terminal,
            )
            self._hand_over(item)
        except Exception:  # a callback problem must never fail the API request that caused it
            log.exception("queueing the callback of task %s failed", task.task_id)

    def _hand_over(self, item: _Item) -> None:
        loop = self._loop
        if loop is None:
            if len(self._early) < self.max_pending:
                self._early.append(item)
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._accept(item)
            return
        with self._inbound_lock:
            self._inbound += 1
        try:
            loop.call_soon_threadsafe(self._accept_handed_over, item)
        except RuntimeError:  # the loop is closed: the mock is shutting down
            with self._inbound_lock:
                self._inbound -= 1

    def _accept_handed_over(self, item: _Item) -> None:
        with self._inbound_lock:
            self._inbound -= 1
        self._accept(item)

    def _accept(self, item: _Item) -> None:
        if self._closed:
            return
        if item.chaos.drop:
            self._record(item, 1, None, None, 0.0, "dropped")
            return
        if self._outstanding >= self.max_pending:
            error = f"not sent: {self.max_pending} callbacks already pending"
            self._record(item, 1, None, error, 0.0, None)
            return
        self._outstanding += 1
        held = self._held.get(item.task_id)
        if item.chaos.reorder:
            if held is None:
                held = self._held[item.task_id] = []
                assert self._loop is not None
                self._hold_timers[item.task_id] = self._loop.call_later(
                    item.chaos.max_hold_ms / 1000, self._release, item.task_id
                )
            held.append(item)
            if item.terminal:  # nothing newer will come: let them all go, newest first
                self._release(item.task_id)
            return
        if held is not None:
            self._release(item.task_id)
        self._enqueue(item)

    def _release(self, task_id: str) -> None:
        """Hand a task's held statuses to its queue, newest first."""
        timer = self._hold_timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        for item in reversed(self._held.pop(task_id, [])):
            item.reordered = True
            self._enqueue(item)

    def _enqueue(self, item: _Item) -> None:
        queue = self._queues.get(item.task_id)
        if queue is None:
            queue = self._queues[item.task_id] = deque()
            assert self._loop is not None
            self._workers[item.task_id] = self._loop.create_task(
                self._drain_queue(item.task_id, queue, self._generation), context=self._context
            )
        queue.append(item)

    # -- delivery ---------------------------------------------------------------------------

    async def _drain_queue(self, task_id: str, queue: deque[_Item], generation: int) -> None:
        try:
            while queue:
                item = queue.popleft()
                try:
                    await self._deliver(item)
                except Exception:  # a bug here must not stop the task's later deliveries
                    log.exception("callback delivery for task %s failed", task_id)
                finally:
                    if generation == self._generation:
                        self._outstanding -= 1
        finally:
            if generation == self._generation:
                del self._workers[task_id]
                del self._queues[task_id]

    async def _deliver(self, item: _Item) -> None:
        wait = item.arrived + item.chaos.delay_ms / 1000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        label = "reordered" if item.reordered else "delayed" if item.chaos.delay_ms else None
        await self._send_with_retries(item, label)
        if item.chaos.duplicate:
            await self._send_with_retries(item, "duplicate")

    async def _send_with_retries(self, item: _Item, label: str | None) -> None:
        for attempt in range(1, self.attempts + 1):
            if await self._attempt(item, attempt, label):
                return
            if attempt < self.attempts:
                await asyncio.sleep(backoff_s(attempt, self.backoff_base_s, self.backoff_cap_s))

    async def _attempt(self, item: _Item, attempt: int, label: str | None) -> bool:
        """One POST, recorded; True when no further attempt should be made."""
        assert self._client is not None and self._slots is not None
        headers = {"content-type": CONTENT_TYPE}
        if self._secret is not None:
            # Signed per attempt, so a retry after a long backoff still passes the ±5 min check.
            timestamp = int(self._wall())
            headers["webhook-id"] = item.delivery_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign(
                self._secret, item.delivery_id, timestamp, item.body
            )
        status: int | None = None
        error: str | None = None
        final = False
        async with self._slots:
            wall_s = self._wall()
            started = time.perf_counter()
            try:
                if self._reaches_self is not None and await self._reaches_self(item.url):
                    raise _OwnAddress(item.url)
                request = self._client.build_request(
                    "POST", item.url, content=item.body, headers=headers
                )
                async with asyncio.timeout(self.timeout_s):
                    response = await self._client.send(request, stream=True)
                    await response.aclose()  # the receiver's body is of no interest
                status = response.status_code
                final = 200 <= status < 300
            except TimeoutError:
                error = f"timeout: no answer within {self.timeout_s} s"
            except _OwnAddress as exc:
                error, final = f"not sent: {exc} resolves to this mock's own address", True
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                error, final = f"{type(exc).__name__}: {exc}", True
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except Exception as exc:  # e.g. a URL httpx cannot even parse: retrying won't help
                error, final = f"{type(exc).__name__}: {exc}", True
            latency_ms = (time.perf_counter() - started) * 1000
        self._record(item, attempt, status, error, latency_ms, label, wall_s)
        return final

    def _record(
        self,
        item: _Item,
        attempt: int,
        status: int | None,
        error: str | None,
        latency_ms: float,
        chaos: str | None,
        wall_s: float | None = None,
    ) -> None:
        self.store.add_delivery(
            DeliveryAttempt(
                seq=next(self._seq),
                delivery_id=item.delivery_id,
                task_id=item.task_id,
                account=item.account,
                task_status=item.status,
                url=item.url,
                attempt=attempt,
                http_status=status,
                error=error,
                latency_ms=round(latency_ms, 3),
                wall_ms=int((self._wall() if wall_s is None else wall_s) * 1000),
                chaos=chaos,
                signed=self._secret is not None,
            )
        )

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Status changes not yet finished: waiting, held, queued or being delivered."""
        return self._outstanding + self._inbound + len(self._early)

    async def idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is pending but statuses held for reordering (True), or until
        `timeout_s` has passed (False). Held statuses wait for a later status by design: a
        clock advance that does not reach one must not wait for them."""
        deadline = time.monotonic() + timeout_s
        while self.pending - sum(len(h) for h in self._held.values()):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def reset(self) -> None:
        """Forget chaos and every pending delivery (the control API's reset); call on the loop."""
        self.clear_chaos()
        self._generation += 1
        for timer in self._hold_timers.values():
            timer.cancel()
        for worker in self._workers.values():
            worker.cancel()
        self._hold_timers.clear()
        self._held.clear()
        self._workers.clear()
        self._queues.clear()
        self._early.clear()
        self._outstanding = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._client = httpx.AsyncClient(
            transport=self._transport,
            verify=tls.client_context(),
            timeout=self.timeout_s,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=16),
            headers={"user-agent": "kling-lipsync-mock/callbacks"},
        )
        self._closed = False
        early, self._early = self._early, []
        for item in early:
            self._accept(item)

    async def aclose(self) -> None:
        """Stop taking events, give outstanding deliveries `drain_s` to finish, cancel the rest."""
        self._closed = True
        for task_id in list(self._held):
            self._release(task_id)
        workers = list(self._workers.values())
        if workers:
            _, late = await asyncio.wait(workers, timeout=self.drain_s)
            for worker in late:
                worker.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._generation += 1
        self._workers.clear()
        self._queues.clear()
        self._early.clear()
        self._outstanding = 0
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None
