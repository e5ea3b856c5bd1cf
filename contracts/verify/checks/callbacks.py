"""The callbacks a server sends, received on a loopback receiver verify runs itself.

verify creates tasks whose ``callback_url`` is its receiver (or ``--callback-url``, a public URL
forwarded to it, for a server that cannot reach 127.0.0.1), polls them to their end, waits for
their terminal callback, and checks every delivery:

* ``callback_schema``: a JSON body valid against the spec's ``CallbackPayload``, of the task it
  was sent for (its units go through the ``kling_*`` unit checks too);
* ``callback_signature``: with ``--webhook-secret``, the Standard Webhooks headers and signature
  (``standardwebhooks`` verifies them, timestamp tolerance included);
* ``callback_order``: along the payloads' ``updated_at``, the status never goes back and the
  task ends once (deliveries may arrive out of order: the spec says so, polling is the truth);
* ``callback_announced``: every status change was announced (``processing`` and the end the
  task reached, and every status polling saw after ``submitted``).
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mock_server.urls import is_loopback

from ...report import CheckKind
from ..target import summarise
from .base import CREATE, QUERY, Context, Session
from .lifecycle import STATUS_ORDER, TERMINAL
from .session import create_body

SCHEMA = "callback_schema"
SIGNATURE = "callback_signature"
ORDER = "callback_order"
ANNOUNCED = "callback_announced"
CALLBACK_CHECKS: Final = (SCHEMA, SIGNATURE, ORDER, ANNOUNCED)
LABEL = "POST {callback_url}"
TASKS = 2


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    index: int


class CallbackReceiver:
    """An HTTP server on 127.0.0.1 that answers 200 to every POST and keeps what it got."""

    def __init__(self, port: int = 0) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._changed:
                    index = len(receiver.deliveries)
                    receiver.deliveries.append(Delivery(self.path, headers, body, index))
                    receiver._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the server's deliveries are not verify's progress

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="verify-callbacks", daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"

    def wait_for(self, done: Callable[[list[Delivery]], bool], timeout_s: float) -> bool:
        """Wait until ``done(deliveries)`` holds (woken by each delivery) or the timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: done(list(self.deliveries)), timeout_s)

    def of(self, path: str) -> list[Delivery]:
        with self._changed:
            return [d for d in self.deliveries if d.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def payload_of(delivery: Delivery) -> Any:
    try:
        return json.loads(delivery.body)
    except ValueError:
        return None


def callbacks(ctx: Context, session: Session | None) -> None:
    """Create tasks with a callback URL on the receiver and check what arrives."""
    options = ctx.options
    if not options.callbacks:
        return _skip_all(ctx, "--no-callbacks was given")
    if session is None or session.video_ms is None:
        return _skip_all(ctx, "no session: identify-face or the first task failed")
    if not options.callback_url and not is_loopback(options.base_url):
        return _skip_all(
            ctx,
            "the target is not on loopback, so it cannot reach verify's receiver on "
            "127.0.0.1: pass --callback-url, a public URL forwarded to --callback-port",
        )
    if not options.webhook_secret:
        ctx.report.skip(SIGNATURE, CheckKind.KLING, "no --webhook-secret given")
    receiver = CallbackReceiver(options.callback_port)
    try:
        base = (options.callback_url or receiver.base_url).rstrip("/")
        for n in range(TASKS):
            path = f"/callbacks/{ctx.run_id}/{n}"
            _one_task(ctx, session, receiver, base + path, path)
    finally:
        receiver.close()


def _skip_all(ctx: Context, reason: str) -> None:
    for name in CALLBACK_CHECKS:
        ctx.report.skip(name, CheckKind.KLING, reason)


def _one_task(
    ctx: Context, session: Session, receiver: CallbackReceiver, url: str, path: str
) -> None:
    body = create_body(ctx, session, {"sound_file": ctx.sound_file}, callback_url=url)
    if body is None:
        return _skip_all(ctx, "no valid create-task body for the session")
    answer = ctx.t.send("createLipSyncTask", body=body)
    if not ctx.accepted("createLipSyncTask", CREATE, body, answer):
        return None
    task_id = str((answer.data or {}).get("task_id", ""))
    polled = _poll(ctx, task_id)
    final = polled[-1] if polled and polled[-1] in TERMINAL else None
    if final is None:
        return _skip_all(ctx, f"task {task_id} did not end within {ctx.options.poll_timeout_s:g} s")

    def ended(deliveries: list[Delivery]) -> bool:
        return any(d.path == path and _status(payload_of(d)) in TERMINAL for d in deliveries)

    receiver.wait_for(ended, ctx.options.callback_timeout_s)
    deliveries = receiver.of(path)
    payloads: list[tuple[Delivery, dict[str, Any]]] = []
    for delivery in deliveries:
        payload = _check_delivery(ctx, delivery, task_id)
        if payload is not None:
            payloads.append((delivery, payload))
    _check_order(ctx, task_id, payloads)
    _check_announced(ctx, task_id, polled, final, [p for _, p in payloads])


def _poll(ctx: Context, task_id: str) -> list[str]:
    """The statuses polling saw, in order, until the task ended or the poll timeout."""
    seen: list[str] = []
    deadline = time.monotonic() + ctx.options.poll_timeout_s
    while True:
        answer = ctx.t.send("getLipSyncTask", path_parameters={"id": task_id})
        status = _status(answer.data)
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
        if status in TERMINAL or time.monotonic() > deadline:
            return seen
        time.sleep(ctx.options.poll_interval_s)  # polling, as a client does


def _status(payload: Any) -> str | None:
    status = payload.get("task_status") if isinstance(payload, dict) else None
    return status if isinstance(status, str) else None


def _check_delivery(ctx: Context, delivery: Delivery, task_id: str) -> dict[str, Any] | None:
    request = f"{len(delivery.body)} bytes to {delivery.path}"
    problems: list[str] = []
    content_type = delivery.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        problems.append(f"Content-Type is {content_type!r}, not application/json")
    payload = payload_of(delivery)
    if not isinstance(payload, dict):
        problems.append("the body is not a JSON object")
    else:
        request = summarise(payload)
        validator = ctx.spec.validator("CallbackPayload")
        problems += [
            f"{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"[:200]
            for e in validator.iter_errors(payload)
        ]
        if payload.get("task_id") != task_id:
            problems.append(f"task_id {payload.get('task_id')!r} is not the task {task_id}")
        ctx.units.payload(LABEL, request, payload)
    ctx.case(SCHEMA, LABEL, request, None, "; ".join(problems) or None)
    secret = ctx.options.webhook_secret
    if secret:
        problem = None
        try:
            Webhook(secret).verify(delivery.body, delivery.headers, json_parse=False)
        except WebhookVerificationError as exc:
            problem = f"the Standard Webhooks signature does not verify: {exc}"
        except Exception as exc:  # a malformed header: still the server's fault
            problem = f"the Standard Webhooks headers cannot be read: {exc!r}"
        headers = {k: v for k, v in delivery.headers.items() if k.startswith("webhook-")}
        ctx.case(SIGNATURE, LABEL, json.dumps(headers), None, problem)
    return payload if isinstance(payload, dict) else None


def _check_order(
    ctx: Context, task_id: str, payloads: list[tuple[Delivery, dict[str, Any]]]
) -> None:
    timeline = sorted(
        (p.get("updated_at") if isinstance(p.get("updated_at"), int) else 0, d.index, p)
        for d, p in payloads
    )
    statuses = [_status(p) for _, _, p in timeline]
    problem = None
    ranks = [STATUS_ORDER.get(s or "", -1) for s in statuses]
    if any(b < a for a, b in itertools.pairwise(ranks)):
        problem = f"along updated_at the statuses go back: {statuses}"
    elif len({s for s in statuses if s in TERMINAL}) > 1:
        problem = f"the task ended twice, differently: {statuses}"
    ctx.case(ORDER, LABEL, f"task {task_id}: {len(payloads)} deliveries", None, problem)


def _check_announced(
    ctx: Context, task_id: str, polled: list[str], final: str, payloads: list[dict[str, Any]]
) -> None:
    announced = {_status(p) for p in payloads}
    changes = {"processing", final} | (set(polled) - {"submitted"})
    missing = sorted(changes - announced)
    problem = None
    if missing:
        problem = (
            f"task {task_id} went through {', '.join(missing)} (polled: {polled}) without a "
            f"callback by its terminal one (or {ctx.options.callback_timeout_s:g} s); "
            f"announced: {sorted(s or '?' for s in announced)}"
        )
    ctx.case(ANNOUNCED, QUERY, f"task {task_id}", None, problem)
