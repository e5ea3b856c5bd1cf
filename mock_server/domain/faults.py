"""Injected faults: error answers, latency, rate and concurrency limits, forced task outcomes."""

from __future__ import annotations

import enum
import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import CONCURRENCY_LIMITED, INVALID_PARAMETER, RATE_LIMITED, ApiError
from .models import Outcome, TaskStatus

INJECTABLE_CODES = frozenset(
    {1100, 1101, 1102, 1103, 1200, 1201, 1300, 1301, 1302, 1303, 1304, 5000, 5001, 5002}
)


class FaultKind(enum.StrEnum):
    ERROR = "error"  # answer `code` instead of serving the request
    LATENCY = "latency"  # wait `latency_ms` before serving
    RATE_LIMIT = "rate_limit"  # 1302 above `rate_per_s` requests per second per account
    CONCURRENCY_LIMIT = "concurrency_limit"  # 1303 above `max_in_flight` unfinished tasks
    TASK_FAILURE = "task_failure"  # new tasks end `failed` with `message`
    SLOW_TASK = "slow_task"  # new tasks take `submitted_ms` + `processing_ms`


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    id: str = ""
    operation: str | None = None  # an operationId, or None for every operation
    path: str | None = None  # a path prefix, or None
    account: str | None = None
    external_task_id: str | None = None  # TASK_FAILURE / SLOW_TASK: only this task
    times: int | None = None  # the next N matching requests (or tasks); None: until cleared
    code: int = 5000
    message: str = ""
    latency_ms: int = 0
    rate_per_s: float = 0.0
    max_in_flight: int = 0
    submitted_ms: int | None = None
    processing_ms: int | None = None
    hits: int = 0
    _window: deque[float] = field(default_factory=deque, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("_window")
        out["kind"] = self.kind.value
        return {k: v for k, v in out.items() if v is not None}

    def matches(self, operation: str | None, path: str, account: str | None) -> bool:
        return (
            (self.operation is None or self.operation == operation)
            and (self.path is None or path.startswith(self.path))
            and (self.account is None or self.account == account)
        )

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


def _bad(message: str) -> ApiError:
    return ApiError(INVALID_PARAMETER, f"fault: {message}")


def fault_from_dict(raw: Mapping[str, Any]) -> Fault:
    """A fault from its JSON/YAML description; unknown keys and bad values are refused."""
    known = {f for f in Fault.__dataclass_fields__ if not f.startswith("_")} - {"hits", "id"}
    unknown = set(raw) - known
    if unknown:
        raise _bad(f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        kind = FaultKind(str(raw.get("kind")))
    except ValueError as exc:
        raise _bad(f"kind must be one of {[k.value for k in FaultKind]}") from exc
    values = dict(raw)
    values["kind"] = kind
    try:
        fault = Fault(**values)
    except TypeError as exc:
        raise _bad(str(exc)) from exc
    ints = ("times", "code", "latency_ms", "max_in_flight", "submitted_ms", "processing_ms")
    for name in ints:
        value = getattr(fault, name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise _bad(f"{name} must be a non-negative integer")
    if not isinstance(fault.rate_per_s, int | float) or fault.rate_per_s < 0:
        raise _bad("rate_per_s must be a non-negative number")
    if kind is FaultKind.ERROR and fault.code not in INJECTABLE_CODES:
        raise _bad(f"code must be one of {sorted(INJECTABLE_CODES)}")
    if kind is FaultKind.RATE_LIMIT and fault.rate_per_s <= 0:
        raise _bad("rate_limit needs rate_per_s > 0")
    if kind is FaultKind.TASK_FAILURE and not fault.message:
        fault.message = "Failure to pass the risk control system"
    return fault


class FaultRegistry:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        fault.id = fault.id or f"f{next(self._ids)}"
        self._faults.append(fault)
        return fault

    def all(self) -> list[Fault]:
        return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) < before

    def clear(self) -> None:
        self._faults.clear()

    def _active(self, kind: FaultKind) -> list[Fault]:
        return [f for f in self._faults if f.kind is kind and not f.exhausted]

    def before_request(self, operation: str | None, path: str, account: str | None) -> int:
        """Latency to add (ms); raises the injected error or the rate limit."""
        if not self._faults:  # the common case: nothing injected, nothing to scan
            return 0
        latency = 0
        for f in self._active(FaultKind.LATENCY):
            if f.matches(operation, path, account):
                f.hits += 1
                latency += f.latency_ms
        now = time.monotonic()
        for f in self._active(FaultKind.RATE_LIMIT):
            if f.matches(operation, path, account):
                window = f._window
                while window and now - window[0] >= 1.0:
                    window.popleft()
                if len(window) >= f.rate_per_s:
                    f.hits += 1
                    raise ApiError(
                        RATE_LIMITED,
                        f"API request too fast: more than {f.rate_per_s:g} requests per second",
                    )
                window.append(now)
        for f in self._active(FaultKind.ERROR):
            if f.matches(operation, path, account):
                f.hits += 1
                raise ApiError(f.code, f.message or f"injected fault {f.id}: code {f.code}")
        return latency

    def check_in_flight(self, account: str, in_flight: int) -> None:
        if not self._faults:
            return
        for f in self._active(FaultKind.CONCURRENCY_LIMIT):
            if f.matches(None, "", account) and in_flight >= f.max_in_flight:
                f.hits += 1
                raise ApiError(
                    CONCURRENCY_LIMITED,
                    f"concurrency limit: {in_flight} tasks in flight, the limit is "
                    f"{f.max_in_flight}",
                )

    def outcome_for(self, account: str, external_id: str, default: Outcome) -> Outcome:
        """The default outcome with forced failures and slow phases applied."""
        if not self._faults:
            return default
        outcome = default
        for f in self._active(FaultKind.SLOW_TASK) + self._active(FaultKind.TASK_FAILURE):
            if f.account not in (None, account):
                continue
            if f.external_task_id not in (None, external_id):
                continue
            f.hits += 1
            if f.kind is FaultKind.SLOW_TASK:
                outcome = Outcome(
                    outcome.submitted_ms if f.submitted_ms is None else f.submitted_ms,
                    outcome.processing_ms if f.processing_ms is None else f.processing_ms,
                    outcome.status,
                    outcome.message,
                )
            else:
                outcome = Outcome(
                    outcome.submitted_ms, outcome.processing_ms, TaskStatus.FAILED, f.message
                )
        return outcome
