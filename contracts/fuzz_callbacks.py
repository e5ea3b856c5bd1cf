"""fuzz-callbacks: send generated callback deliveries to a receiver and check how it answers.

The other half of an integration is the endpoint that receives the task callbacks. This
command sends it sequences of deliveries, first a fixed set (each status, the same delivery
twice, `succeed` before `processing`, a task it never created, malformed and oversized bodies,
and with `--secret` missing, wrong and stale Standard Webhooks signatures), then sequences
Hypothesis generates. Each expectation is a named check:

* **valid-accepted**: a well-formed, correctly signed delivery (a repeat or an out-of-order one
  too) is answered 2xx: anything else makes the service retry, then give up on it.
* **answers-in-time**: every delivery is answered within `--timeout` (the service's callback
  timeout): a receiver that hangs is a receiver that drops callbacks.
* **bad-signature-refused** (with `--secret`): a delivery without a signature, signed with
  another key or signed more than 5 minutes ago is refused with 4xx, never 2xx (accepting it
  lets anyone forge a result) and never 5xx (the service would retry it).
* **malformed-refused**: a body that is not JSON, not an object, or lacks `task_id` /
  `task_status` is refused with 4xx, not 5xx: a 5xx makes the real service retry it.
* **oversized-handled**: a 2 MB delivery is answered (2xx or 4xx), never 5xx.
* **unknown-task-not-5xx**: a delivery for a task the receiver never created is not 5xx.
* **newest-status-held** (with `--state-url` or a `state` hook): after each sequence, the
  status the receiver holds per task is the newest one delivered (repeats and reordering
  never move it back).

A failing check is searched again and shrunk to the shortest delivery sequence that breaks it,
printed as curl commands. Only loopback URLs are accepted.

Python API (an ASGI or WSGI app in-process, or a URL)::

    from contracts.fuzz_callbacks import FuzzOptions, fuzz_asgi

    report = fuzz_asgi(app, "/kling/callback", FuzzOptions(secret="whsec_..."),
                       state=lambda: my_store.statuses())
    assert report.ok, report.summary_table()

Command line (exit 0 when every check held, 1 when one failed, 2 on bad options)::

    python -m contracts fuzz-callbacks --url http://127.0.0.1:9000/kling/callback \\
        --secret whsec_dGVzdHNlY3JldA== --state-url http://127.0.0.1:9000/kling/state
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import enum
import hashlib
import hmac
import ipaddress
import itertools
import json
import random
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from hypothesis import HealthCheck, Phase, find, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from .report import CheckFailure, CheckKind, Report

__all__ = [
    "Answer",
    "Delivery",
    "FuzzOptions",
    "FuzzReport",
    "Kind",
    "Step",
    "add_arguments",
    "fuzz",
    "fuzz_asgi",
    "fuzz_url",
    "fuzz_wsgi",
    "main",
    "run",
    "steps",
]

OVERSIZED_BYTES = 2 * 1024 * 1024
STALE_S = 600  # Standard Webhooks receivers refuse timestamps more than 5 minutes off
CHECK_NAMES = (
    "valid-accepted",
    "answers-in-time",
    "bad-signature-refused",
    "malformed-refused",
    "oversized-handled",
    "unknown-task-not-5xx",
    "newest-status-held",
)
RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
MALFORMED = (
    b"{not json",
    b"",
    b"[]",
    b'"succeed"',
    b'{"task_status": "succeed"}',
    b'{"task_id": 5, "task_status": "succeed"}',
    b'{"task_id": "t", "task_status": "exploded"}',
    b"\xff\xfe\x00{",
)


class Kind(enum.StrEnum):
    VALID = "valid"
    DUPLICATE = "duplicate"
    UNKNOWN_TASK = "unknown-task"
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    MISSING_SIGNATURE = "missing-signature"
    WRONG_SIGNATURE = "wrong-signature"
    STALE_SIGNATURE = "stale-signature"


SIGNATURE_KINDS = frozenset({Kind.MISSING_SIGNATURE, Kind.WRONG_SIGNATURE, Kind.STALE_SIGNATURE})


@dataclass(frozen=True, slots=True)
class Step:
    """One delivery of a sequence: its kind, which of three tasks, and a status or variant.

    Task 1 ends `failed`, tasks 0 and 2 end `succeed`; `stage` 0, 1, 2 is submitted,
    processing, the terminal status. `variant` picks the malformed body.
    """

    kind: Kind
    task: int = 0
    stage: int = 0
    variant: int = 0

    @property
    def status(self) -> str:
        return ("submitted", "processing", "failed" if self.task == 1 else "succeed")[self.stage]


def steps(secret: bool) -> st.SearchStrategy[list[Step]]:
    """Sequences of 1-10 deliveries; valid ones first in `one_of`, so failures shrink to them."""
    kinds = [Kind.VALID, Kind.DUPLICATE, Kind.UNKNOWN_TASK, Kind.MALFORMED, Kind.OVERSIZED]
    if secret:
        kinds += sorted(SIGNATURE_KINDS)
    step = st.builds(
        Step,
        kind=st.sampled_from(kinds),
        task=st.integers(0, 2),
        stage=st.integers(0, 2),
        variant=st.integers(0, len(MALFORMED) - 1),
    )
    return st.lists(step, min_size=1, max_size=10)


def fixed_sequences(secret: bool) -> list[list[Step]]:
    """The cases every run starts with, one per kind of trouble."""
    out = [
        [Step(Kind.VALID, 0, 0), Step(Kind.VALID, 0, 1), Step(Kind.VALID, 0, 2)],
        [Step(Kind.VALID, 1, 0), Step(Kind.VALID, 1, 1), Step(Kind.VALID, 1, 2)],
        [Step(Kind.VALID, 0, 2), Step(Kind.DUPLICATE)],
        [Step(Kind.VALID, 0, 2), Step(Kind.VALID, 0, 1)],  # succeed before processing
        [Step(Kind.UNKNOWN_TASK)],
        [Step(Kind.MALFORMED, variant=i) for i in range(len(MALFORMED))],
        [Step(Kind.OVERSIZED)],
    ]
    if secret:
        out.append([Step(k, stage=2) for k in sorted(SIGNATURE_KINDS)])
    return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST as sent: body bytes (or a padded body), headers, and what it stands for."""

    step: Step
    task_id: str
    body: bytes
    headers: Mapping[str, str]
    pad: int = 0  # OVERSIZED: `body` is prefix + suffix, `pad` "x" characters go between

    def content(self) -> bytes:
        if not self.pad:
            return self.body
        head, tail = self.body.split(b"\x00", 1)
        return head + b"x" * self.pad + tail

    def curl(self, url: str) -> str:
        headers = " ".join(f"-H {shlex.quote(f'{k}: {v}')}" for k, v in self.headers.items())
        command = (
            f"curl -sS -o /dev/null -w '%{{http_code}}\\n' -X POST {shlex.quote(url)} {headers}"
        )
        if self.pad:
            head, tail = self.body.split(b"\x00", 1)
            gen = (
                f"import sys; sys.stdout.write({head.decode()!r} + 'x' * {self.pad}"
                f" + {tail.decode()!r})"
            )
            return f"python3 -c {shlex.quote(gen)} | {command} --data-binary @-"
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            gen = f"import sys; sys.stdout.buffer.write(bytes.fromhex({self.body.hex()!r}))"
            return f"python3 -c {shlex.quote(gen)} | {command} --data-binary @-"
        return f"{command} --data-binary {shlex.quote(text)}"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None
    elapsed_s: float
    error: str | None = None


class Target(Protocol):
    url: str

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer: ...


@dataclass(frozen=True, slots=True)
class FuzzOptions:
    """What to send and how long a receiver may take.

    `secret`: the receiver's Standard Webhooks secret (`whsec_...`); without it, deliveries
    are unsigned and the signature checks are not exercised. `examples`: generated sequences
    after the fixed ones. `timeout_s`: the longest an answer may take.
    """

    secret: str | None = None
    examples: int = 50
    timeout_s: float = 5.0
    seed: int = 0
    shrink: bool = True


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def _sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    # The Standard Webhooks scheme (what `standardwebhooks.Webhook.sign` computes), over bytes,
    # so bodies that are not UTF-8 can be signed too.
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _payload(task_id: str, status: str, now_ms: int) -> dict[str, Any]:
    """A callback body shaped like the service's (the task object, no envelope)."""
    videos = []
    if status == "succeed":
        videos = [
            {"id": f"v-{task_id}", "url": f"https://cdn.example/{task_id}.mp4", "duration": "5.0"}
        ]
    return {
        "task_id": task_id,
        "task_status": status,
        "task_status_msg": "Failure to pass the risk control system" if status == "failed" else "",
        "task_info": {"external_task_id": f"ext-{task_id}"},
        "task_result": {"videos": videos},
        "final_unit_deduction": "1",
        "created_at": now_ms - 60_000,
        "updated_at": now_ms + RANK[status],
    }


class _Builder:
    """Turns steps into deliveries for one sequence, with task ids of its own."""

    def __init__(self, options: FuzzOptions, prefix: str) -> None:
        self.key = _key(options.secret) if options.secret else None
        self.prefix = prefix
        self.last_valid: Delivery | None = None

    def task_id(self, step: Step) -> str:
        return f"{self.prefix}-t{step.task}"

    def headers(self, body: bytes, *, key: bytes | None = None, age_s: int = 0) -> dict[str, str]:
        out = {"content-type": "application/json; charset=utf-8"}
        key = key or self.key
        if key is not None:
            msg_id = f"msg_{uuid.uuid4().hex}"
            stamp = int(time.time()) - age_s
            out |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": _sign(key, msg_id, stamp, body),
            }
        return out

    def build(self, step: Step) -> Delivery:
        now = int(time.time() * 1000)
        kind = step.kind
        if kind is Kind.DUPLICATE and self.last_valid is not None:
            return Delivery(
                step, self.last_valid.task_id, self.last_valid.body, self.last_valid.headers
            )
        if kind in (Kind.VALID, Kind.DUPLICATE):
            step = (
                Step(Kind.VALID, step.task, step.stage) if kind is Kind.VALID else Step(Kind.VALID)
            )
            task_id = self.task_id(step)
            body = json.dumps(_payload(task_id, step.status, now)).encode()
            delivery = Delivery(step, task_id, body, self.headers(body))
            self.last_valid = delivery
            return delivery
        if kind is Kind.UNKNOWN_TASK:
            task_id = f"{self.prefix}-never-created"
            body = json.dumps(_payload(task_id, "succeed", now)).encode()
            return Delivery(step, task_id, body, self.headers(body))
        if kind is Kind.MALFORMED:
            body = MALFORMED[step.variant % len(MALFORMED)]
            return Delivery(step, "", body, self.headers(body))
        if kind is Kind.OVERSIZED:
            task_id = f"{self.prefix}-oversized"
            payload = _payload(task_id, "processing", now) | {"padding": "\x00"}
            template = json.dumps(payload).encode()
            head, tail = template.split(b"\\u0000", 1)
            full = head + b"x" * OVERSIZED_BYTES + tail
            return Delivery(
                step, task_id, head + b"\x00" + tail, self.headers(full), OVERSIZED_BYTES
            )
        # a forged result for a task of its own, so accepting it shows only in its own check
        task_id = f"{self.prefix}-forged"
        body = json.dumps(_payload(task_id, "succeed", now)).encode()
        if kind is Kind.MISSING_SIGNATURE:
            headers = {"content-type": "application/json; charset=utf-8"}
        elif kind is Kind.WRONG_SIGNATURE:
            headers = self.headers(body, key=b"not-the-receivers-key")
        else:
            headers = self.headers(body, age_s=STALE_S)
        return Delivery(step, task_id, body, headers)


# -- targets -----------------------------------------------------------------------------------


def _loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"fuzz-callbacks sends only to this machine (127.0.0.1, ::1); got {url!r}")


class _HttpTarget:
    def __init__(self, url: str, timeout_s: float, transport: httpx.BaseTransport | None = None):
        self.url = url
        self._client = httpx.Client(timeout=timeout_s, trust_env=False, transport=transport)

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        started = time.perf_counter()
        try:
            response = self._client.post(self.url, content=body, headers=dict(headers))
            return Answer(response.status_code, time.perf_counter() - started)
        except httpx.TimeoutException:
            return Answer(None, time.perf_counter() - started, "no answer (timeout)")
        except httpx.HTTPError as exc:
            return Answer(None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._client.close()


class _AsgiTarget:
    def __init__(self, app: Any, path: str, timeout_s: float) -> None:
        self.url = "http://receiver.invalid" + path
        self._app = app
        self._timeout_s = timeout_s

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        async def send() -> int:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.post(self.url, content=body, headers=dict(headers))
                return response.status_code

        started = time.perf_counter()
        try:
            status = asyncio.run(asyncio.wait_for(send(), self._timeout_s))
        except TimeoutError:
            return Answer(None, time.perf_counter() - started, "no answer (timeout)")
        except Exception as exc:  # the app raised: what a server would turn into a 500
            return Answer(500, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return Answer(status, time.perf_counter() - started)

    def close(self) -> None:
        pass


# -- running -----------------------------------------------------------------------------------


class FuzzReport(Report):
    """The checks of one fuzz run; failures carry the shrunk sequence as curl commands."""

    command = "fuzz-callbacks"

    def __init__(self, base_url: str, seed: int) -> None:
        Report.__init__(self, base_url, seed)
        self.deliveries = 0
        self.sequences = 0

    def _extra_dict(self) -> dict[str, Any]:
        return {"deliveries": self.deliveries, "sequences": self.sequences}

    def _extra_lines(self) -> list[str]:
        return [f"({self.sequences} sequences, {self.deliveries} deliveries sent)"]


Verdict = tuple[str, str | None]  # (check, reason it failed or None)


def _judge(delivery: Delivery, answer: Answer, timeout_s: float) -> list[Verdict]:
    kind = delivery.step.kind
    status = answer.status
    out: list[Verdict] = []
    in_time = status is not None and answer.elapsed_s <= timeout_s
    out.append(
        (
            "answers-in-time",
            None
            if in_time
            else answer.error or f"answered after {answer.elapsed_s:.1f} s (limit {timeout_s} s)",
        )
    )
    if status is None:
        return out
    if kind in (Kind.VALID, Kind.DUPLICATE):
        what = "a repeated" if kind is Kind.DUPLICATE else "a valid"
        reason = (
            None
            if 200 <= status < 300
            else f"{what} {delivery.step.status} delivery got HTTP {status}"
        )
        out.append(("valid-accepted", reason))
    elif kind in SIGNATURE_KINDS:
        reason = None
        if 200 <= status < 300:
            reason = f"{kind.value}: accepted (HTTP {status}); anyone could forge a result"
        elif status >= 500:
            reason = f"{kind.value}: HTTP {status}; a 5xx makes the service retry it"
        elif not 400 <= status < 500:
            reason = f"{kind.value}: HTTP {status}, expected 4xx"
        out.append(("bad-signature-refused", reason))
    elif kind is Kind.MALFORMED:
        reason = None
        if not 400 <= status < 500:
            reason = f"body {delivery.body[:40]!r}: HTTP {status}, expected 4xx" + (
                " (a 5xx makes the service retry it)" if status >= 500 else ""
            )
        out.append(("malformed-refused", reason))
    elif kind is Kind.OVERSIZED:
        out.append(
            ("oversized-handled", f"HTTP {status} to a 2 MB body" if status >= 500 else None)
        )
    elif kind is Kind.UNKNOWN_TASK:
        out.append(
            (
                "unknown-task-not-5xx",
                f"HTTP {status} for a task it never created" if status >= 500 else None,
            )
        )
    return out


@dataclass(slots=True)
class _Outcome:
    verdicts: list[tuple[str, str | None, Delivery]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def failed(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for check, reason, _ in self.verdicts:
            if reason is not None:
                out.setdefault(check, reason)
        return out


class _Runner:
    def __init__(
        self,
        target: Target,
        options: FuzzOptions,
        state: Callable[[], Mapping[str, Any]] | None,
    ) -> None:
        self.target = target
        self.options = options
        self.state = state
        self.run_id = uuid.UUID(int=random.Random(options.seed).getrandbits(128)).hex[:8]
        self.counter = itertools.count(1)
        self.answered = 0
        self.last_error: str | None = None

    def play(self, sequence: Sequence[Step]) -> _Outcome:
        prefix = f"fuzz-{self.run_id}-{next(self.counter)}"
        builder = _Builder(self.options, prefix)
        outcome = _Outcome()
        newest: dict[str, str] = {}
        for step in sequence:
            delivery = builder.build(step)
            answer = self.target.post(delivery.content(), delivery.headers)
            if answer.status is None:
                self.last_error = answer.error
            else:
                self.answered += 1
            outcome.deliveries.append(delivery)
            for check, reason in _judge(delivery, answer, self.options.timeout_s):
                outcome.verdicts.append((check, reason, delivery))
            if delivery.step.kind is Kind.VALID or step.kind is Kind.DUPLICATE:
                status = delivery.step.status if step.kind is Kind.VALID else _status_of(delivery)
                held = newest.get(delivery.task_id)
                if held is None or RANK[status] > RANK[held]:
                    newest[delivery.task_id] = status
        if self.state is not None and newest:
            outcome.verdicts.append(
                ("newest-status-held", self._held(newest), outcome.deliveries[-1])
            )
        return outcome

    def _held(self, newest: Mapping[str, str]) -> str | None:
        try:
            held = self.state() if self.state else {}
        except Exception as exc:
            return f"the state could not be read: {type(exc).__name__}: {exc}"
        for task_id, status in newest.items():
            if held.get(task_id) != status:
                return (
                    f"task {task_id}: holds {held.get(task_id)!r} after the deliveries, "
                    f"the newest delivered is {status!r}"
                )
        return None


def _status_of(delivery: Delivery) -> str:
    return str(json.loads(delivery.body)["task_status"])


def _record(report: FuzzReport, outcome: _Outcome) -> None:
    report.sequences += 1
    report.deliveries += len(outcome.deliveries)
    for check, reason, delivery in outcome.verdicts:
        failure = None
        if reason is not None:
            failure = CheckFailure(check, f"{delivery.step.kind.value} delivery", reason)
        report.record(check, CheckKind.KLING, failure)


def _curls(url: str, outcome: _Outcome) -> str:
    return "\n".join(d.curl(url) for d in outcome.deliveries)


def fuzz(
    target: Target,
    options: FuzzOptions | None = None,
    state: Callable[[], Mapping[str, Any]] | None = None,
) -> FuzzReport:
    """Run the fixed sequences, then generated ones; shrink each failed check's sequence."""
    options = options or FuzzOptions()
    report = FuzzReport(target.url, options.seed)
    started = time.perf_counter()
    runner = _Runner(target, options, state)
    for name in CHECK_NAMES:
        report.check(name, CheckKind.KLING)
    if not options.secret:
        report.skip("bad-signature-refused", CheckKind.KLING, "no --secret given")
    if state is None:
        report.skip("newest-status-held", CheckKind.KLING, "no --state-url or state hook")

    for sequence in fixed_sequences(bool(options.secret)):
        _record(report, runner.play(sequence))
    if not runner.answered:  # nothing listens there: say so once instead of fuzzing on
        report.errors.append(f"the receiver never answered: {runner.last_error}")
        report.elapsed_s = time.perf_counter() - started
        return report

    strategy = steps(bool(options.secret))
    if options.examples:

        @settings(
            max_examples=options.examples,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @seed(options.seed)
        @given(strategy)
        def explore(sequence: list[Step]) -> None:
            _record(report, runner.play(sequence))

        explore()

    if options.shrink:
        for name in report.failed_checks():
            _shrink(report, runner, strategy, name)
    report.elapsed_s = time.perf_counter() - started
    return report


def _shrink(
    report: FuzzReport, runner: _Runner, strategy: st.SearchStrategy[list[Step]], name: str
) -> None:
    """Replace the check's first example by the shortest sequence found that fails it."""
    try:
        shortest = find(
            strategy,
            lambda seq: name in runner.play(seq).failed(),
            settings=settings(
                max_examples=300,
                database=None,
                deadline=None,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            ),
            random=random.Random(runner.options.seed),
        )
    except NoSuchExample:
        return
    outcome = runner.play(shortest)
    reason = outcome.failed().get(name)
    if reason is None:  # flaky: the replay held; keep the examples found before
        return
    summary = report.checks[name]
    example = CheckFailure(
        name,
        f"shortest sequence ({len(shortest)} deliveries: "
        + ", ".join(s.kind.value if s.kind is not Kind.VALID else s.status for s in shortest)
        + ")",
        reason,
        request=_curls(runner.target.url, outcome),
    )
    summary.examples.insert(0, example)
    del summary.examples[5:]


def fuzz_url(
    url: str, options: FuzzOptions | None = None, state_url: str | None = None
) -> FuzzReport:
    """Fuzz a receiver listening on this machine; `state_url` answers task_id -> status."""
    options = options or FuzzOptions()
    _loopback(url)
    target = _HttpTarget(url, options.timeout_s)
    state = None
    if state_url:
        _loopback(state_url)

        def state() -> Mapping[str, Any]:
            data = httpx.get(state_url, timeout=options.timeout_s, trust_env=False).json()
            if not isinstance(data, dict):
                raise ValueError(f"{state_url} answered {type(data).__name__}, not an object")
            return data

    try:
        return fuzz(target, options, state)
    finally:
        target.close()


def fuzz_asgi(
    app: Any,
    path: str = "/",
    options: FuzzOptions | None = None,
    state: Callable[[], Mapping[str, Any]] | None = None,
) -> FuzzReport:
    """Fuzz an ASGI app in-process (an exception it raises counts as HTTP 500)."""
    options = options or FuzzOptions()
    return fuzz(_AsgiTarget(app, path, options.timeout_s), options, state)


def fuzz_wsgi(
    app: Any,
    path: str = "/",
    options: FuzzOptions | None = None,
    state: Callable[[], Mapping[str, Any]] | None = None,
) -> FuzzReport:
    """Fuzz a WSGI app in-process (no timeout can interrupt it: answers-in-time is measured)."""
    options = options or FuzzOptions()
    target = _HttpTarget(
        "http://receiver.invalid" + path, options.timeout_s, httpx.WSGITransport(app=app)
    )
    try:
        return fuzz(target, options, state)
    finally:
        target.close()


# -- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the callback receiver (on this machine)")
    parser.add_argument("--secret", help="the receiver's webhook secret (whsec_...)")
    parser.add_argument(
        "--state-url", help="GET answers a JSON object task_id -> status the receiver holds"
    )
    parser.add_argument("--examples", type=int, default=50, help="generated sequences (50)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per answer (5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shrink", action="store_true", help="report without shrinking")
    parser.add_argument("--report", choices=("text", "json", "junit", "html"), default="text")
    parser.add_argument("-o", "--output", help="write the report here instead of stdout")
    parser.add_argument("--junit-xml", help="also write a JUnit XML report here")


def run(args: argparse.Namespace) -> int:
    if args.examples < 0 or args.timeout <= 0:
        print("fuzz-callbacks: --examples must be >= 0 and --timeout > 0", file=sys.stderr)
        return 2
    options = FuzzOptions(
        secret=args.secret,
        examples=args.examples,
        timeout_s=args.timeout,
        seed=args.seed,
        shrink=not args.no_shrink,
    )
    try:
        if args.secret:
            _key(args.secret)
        report = fuzz_url(args.url, options, args.state_url)
    except ValueError as exc:
        print(f"fuzz-callbacks: {exc}", file=sys.stderr)
        return 2
    rendered = {
        "text": report.summary_table,
        "json": report.to_json,
        "junit": report.junit_xml,
        "html": report.to_html,
    }[args.report]()
    if args.output:
        Path(args.output).write_text(rendered + "\n", encoding="utf-8")
    else:
        print(rendered)
    if args.junit_xml:
        Path(args.junit_xml).write_text(report.junit_xml(), encoding="utf-8")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts fuzz-callbacks")
    add_arguments(parser)
    return run(parser.parse_args(argv))
