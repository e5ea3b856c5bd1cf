"""Server-behaviour scenarios: what the mock does to a task, as values and a Hypothesis strategy.

A `Scenario` says how long each phase of a task lasts, whether the task fails, which requests
are answered with which documented error code, which rate or concurrency limit applies and how
callbacks misbehave. `Scenario.play(admin)` installs it on a running mock through the control
API; `lipsync_scenarios()` generates them, and shrinks a failure toward the default scenario
(no faults, default timings) so the report shows the least that still breaks your client.

Example (a session-scoped mock, reset for every generated scenario)::

    from hypothesis import given, settings

    from contracts.check_client import Check, check_journal
    from contracts.scenarios import Scenario, lipsync_scenarios

    @settings(max_examples=25, deadline=None)
    @given(scenario=lipsync_scenarios())
    def test_client_survives(lipsync_mock_session, scenario: Scenario) -> None:
        mock = lipsync_mock_session
        mock.admin.reset()
        scenario.play(mock.admin)
        try:
            video = my_client(mock.base_url, mock.api_key).lip_sync(...)
            assert video.url
        except MyClientError:
            pass  # a typed error is an acceptable answer to a bad day
        # never retried a non-retryable code:
        journal = mock.admin.journal()
        assert not [f for f in check_journal(journal) if f.check is Check.RETRIED_NON_RETRYABLE]

`@given` with a function-scoped fixture fails Hypothesis' `function_scoped_fixture` health
check, because the fixture is not re-created between examples: use `lipsync_mock_session`
(session-scoped, reset by the plugin before each test) and reset it yourself per example, or
create a `mock_server.testing.MockServer` inside the test.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from hypothesis import strategies as st

from mock_server.admin_client import AdminClient
from mock_server.spec import ADMIN_SPEC_FILE, load_document, load_spec

__all__ = [
    "FAILURE_MESSAGES",
    "RETRYABLE_CODES",
    "CallbackChaos",
    "InjectedError",
    "Scenario",
    "http_status_of",
    "injectable_codes",
    "is_retryable",
    "lipsync_scenarios",
    "operation_ids",
]

# Codes worth retrying: rate and concurrency limits, and the internal errors (the documented
# table calls them "too fast", "exceeds limit", "internal error", "temporarily unavailable",
# "internal timeout"). Every other non-zero code answers the same way however often it is sent.
RETRYABLE_CODES = frozenset({1302, 1303, 5000, 5001, 5002})

FAILURE_MESSAGES = (
    "Failure to pass the risk control system",
    "The face in the video is not clear enough",
    "Audio content is invalid",
    "Internal error, please try again later",
)

MINUTE_MS = 60_000


def is_retryable(code: int) -> bool:
    """Whether a client may resend a request answered with this Kling code."""
    return code in RETRYABLE_CODES


@functools.cache
def injectable_codes() -> tuple[int, ...]:
    """Documented error codes the mock can inject (the control API's `Fault.code` enum)."""
    document, _ = load_document(ADMIN_SPEC_FILE)
    enum = document["components"]["schemas"]["Fault"]["properties"]["code"]["enum"]
    documented = load_spec().http_status
    return tuple(sorted(int(c) for c in enum if int(c) in documented))


def http_status_of(code: int) -> int:
    """The HTTP status the spec's error table (`x-kling-errors`) gives a code."""
    return load_spec().http_status[code]


@functools.cache
def operation_ids() -> tuple[str, ...]:
    """The API's operationIds, in spec order (faults can target each of them)."""
    out: list[str] = []
    for item in load_spec().document["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "operationId" in op:
                out.append(str(op["operationId"]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class InjectedError:
    """The next `times` requests of `operation` (any operation when None) answer `code`.

    `times=None` answers the code until the scenario is replaced. Injections are matched in
    scenario order, so `(InjectedError(5001), InjectedError(1201, "createLipSyncTask"))`
    answers 5001 to the first request and 1201 to the first create after it.
    """

    code: int
    operation: str | None = None
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.code not in injectable_codes():
            raise ValueError(
                f"InjectedError: {self.code} is not an injectable documented code; "
                f"use one of {list(injectable_codes())}"
            )
        if self.operation is not None and self.operation not in operation_ids():
            raise ValueError(
                f"InjectedError: unknown operation {self.operation!r}; "
                f"use one of {list(operation_ids())} or None for any"
            )
        if self.times is not None and self.times < 1:
            raise ValueError(f"InjectedError: times must be >= 1 or None, got {self.times}")

    @property
    def http_status(self) -> int:
        return http_status_of(self.code)

    @property
    def retryable(self) -> bool:
        return is_retryable(self.code)

    def fault(self) -> dict[str, Any]:
        """The control API body (`POST /__admin/faults`) that installs this injection."""
        body: dict[str, Any] = {"kind": "error", "code": self.code}
        if self.operation is not None:
            body["operation"] = self.operation
        if self.times is not None:
            body["times"] = self.times
        return body

    def __repr__(self) -> str:
        args = [str(self.code)]
        if self.operation is not None:
            args.append(repr(self.operation))
        if self.times != 1:
            args.append(f"times={self.times!r}")
        return f"InjectedError({', '.join(args)})"

    def __str__(self) -> str:
        where = self.operation or "any request"
        count = "every time" if self.times is None else f"x{self.times}"
        return f"{self.code} (HTTP {self.http_status}) on {where} {count}"


@dataclass(frozen=True, slots=True)
class CallbackChaos:
    """How the mock mistreats callbacks: deliver each twice, newest first, or never."""

    duplicate: bool = False
    reorder: bool = False
    drop: bool = False

    def __bool__(self) -> bool:
        return self.duplicate or self.reorder or self.drop

    def __repr__(self) -> str:
        on = [f"{f.name}=True" for f in fields(self) if getattr(self, f.name)]
        return f"CallbackChaos({', '.join(on)})"

    def __str__(self) -> str:
        on = [f.name for f in fields(self) if getattr(self, f.name)]
        return "callbacks " + "+".join(on) if on else "callbacks as documented"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One server behaviour. Every field's default is "as the mock does by default".

    Fields:
        submitted_ms / processing_ms: time in `submitted` / `processing` (None: the mock's
            configured default, 1 s and 3 s unless started otherwise).
        failure: the task ends `failed` with this `task_status_msg` (None: it succeeds).
        errors: injected error answers, matched in order (see `InjectedError`).
        rate_limit_per_s: answer 1302 above this many API requests per (real) second.
        max_in_flight: answer 1303 to a create while this many tasks are unfinished.
        callbacks: callback chaos (duplicate, reorder, drop).
    """

    submitted_ms: int | None = None
    processing_ms: int | None = None
    failure: str | None = None
    errors: tuple[InjectedError, ...] = ()
    rate_limit_per_s: float | None = None
    max_in_flight: int | None = None
    callbacks: CallbackChaos = field(default_factory=CallbackChaos)

    def __post_init__(self) -> None:
        for name in ("submitted_ms", "processing_ms", "max_in_flight"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Scenario: {name} must be >= 0, got {value}")
        if self.rate_limit_per_s is not None and self.rate_limit_per_s <= 0:
            raise ValueError(f"Scenario: rate_limit_per_s must be > 0, got {self.rate_limit_per_s}")
        if self.failure == "":
            raise ValueError("Scenario: failure needs a message (None means the task succeeds)")

    @property
    def is_default(self) -> bool:
        """True for the scenario that changes nothing."""
        return self == Scenario()

    @property
    def injected_codes(self) -> frozenset[int]:
        return frozenset(e.code for e in self.errors)

    @property
    def non_retryable_codes(self) -> frozenset[int]:
        """Injected codes a correct client must not resend."""
        return frozenset(c for c in self.injected_codes if not is_retryable(c))

    def faults(self) -> list[dict[str, Any]]:
        """The control API fault bodies that install this scenario, in installation order."""
        out: list[dict[str, Any]] = [e.fault() for e in self.errors]
        if self.submitted_ms is not None or self.processing_ms is not None:
            slow: dict[str, Any] = {"kind": "slow_task"}
            if self.submitted_ms is not None:
                slow["submitted_ms"] = self.submitted_ms
            if self.processing_ms is not None:
                slow["processing_ms"] = self.processing_ms
            out.append(slow)
        if self.failure is not None:
            out.append({"kind": "task_failure", "message": self.failure})
        if self.rate_limit_per_s is not None:
            out.append({"kind": "rate_limit", "rate_per_s": self.rate_limit_per_s})
        if self.max_in_flight is not None:
            out.append({"kind": "concurrency_limit", "max_in_flight": self.max_in_flight})
        return out

    def play(self, admin: AdminClient) -> None:
        """Install on a mock: replaces its faults and callback chaos, keeps tasks and journal.

        Call `admin.reset()` first when each scenario should start from an empty mock (the
        usual case inside `@given`).
        """
        admin.clear_faults()
        admin.clear_chaos()
        for body in self.faults():
            options = dict(body)
            admin.add_fault(options.pop("kind"), **options)
        if self.callbacks:
            admin.set_chaos(
                duplicate=self.callbacks.duplicate,
                reorder=self.callbacks.reorder,
                drop=self.callbacks.drop,
            )

    apply = play

    def _changes(self) -> Iterator[tuple[str, Any]]:
        default = Scenario()
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                yield f.name, value

    def __repr__(self) -> str:
        return "Scenario(" + ", ".join(f"{k}={v!r}" for k, v in self._changes()) + ")"

    def __str__(self) -> str:
        if self.is_default:
            return "default behaviour: no faults, default timings"
        parts: list[str] = []
        if self.submitted_ms is not None:
            parts.append(f"submitted for {self.submitted_ms} ms")
        if self.processing_ms is not None:
            parts.append(f"processing for {self.processing_ms} ms")
        if self.failure is not None:
            parts.append(f"fails with {self.failure!r}")
        parts.extend(str(e) for e in self.errors)
        if self.rate_limit_per_s is not None:
            parts.append(f"1302 above {self.rate_limit_per_s:g} req/s")
        if self.max_in_flight is not None:
            parts.append(f"1303 above {self.max_in_flight} tasks in flight")
        if self.callbacks:
            parts.append(str(self.callbacks))
        return "; ".join(parts)


def _optional(strategy: st.SearchStrategy[Any], enabled: bool) -> st.SearchStrategy[Any]:
    # none() first: one_of shrinks toward its first branch, i.e. toward "unchanged".
    return st.none() | strategy if enabled else st.none()


def lipsync_scenarios(
    *,
    operations: Sequence[str | None] | None = None,
    codes: Collection[int] | None = None,
    max_errors: int = 3,
    timings: bool = True,
    max_processing_ms: int = 20 * MINUTE_MS,
    failures: bool = True,
    rate_limits: bool = True,
    callbacks: bool = True,
) -> st.SearchStrategy[Scenario]:
    """Scenarios for `@given`; failures shrink toward `Scenario()` (no faults, default timings).

    Args:
        operations: operationIds errors may target (None in the list: any request). Default:
            every operation of the spec, and None.
        codes: documented codes to inject. Default: every injectable documented code
            (`injectable_codes()`), each answered with its HTTP status from the spec.
        max_errors: at most this many injections per scenario (0: none).
        timings: vary phase durations (up to `max_processing_ms` of processing).
        failures: let tasks end `failed` with a message.
        rate_limits: add 1302 rate limits and 1303 concurrency limits.
        callbacks: duplicate, reorder or drop callbacks.

    Example::

        @given(scenario=lipsync_scenarios(codes=[5001, 1302], callbacks=False))
        def test_retries(scenario): ...
    """
    ops: list[str | None] = [None, *operation_ids()] if operations is None else list(operations)
    for op in ops:
        if op is not None and op not in operation_ids():
            raise ValueError(f"lipsync_scenarios: unknown operation {op!r}")
    chosen = sorted(set(injectable_codes() if codes is None else codes))
    unknown = [c for c in chosen if c not in injectable_codes()]
    if unknown:
        raise ValueError(
            f"lipsync_scenarios: {unknown} cannot be injected; use codes from "
            f"{list(injectable_codes())}"
        )
    if max_errors and (not chosen or not ops):
        raise ValueError("lipsync_scenarios: errors need at least one code and one operation")

    injected = st.builds(
        InjectedError,
        code=st.sampled_from(chosen) if chosen else st.nothing(),
        operation=st.sampled_from(ops) if ops else st.nothing(),
        # 1-3 times, or (4) every time: an integer shrinks toward 1 where one_of might not.
        times=st.integers(1, 4).map(lambda n: None if n == 4 else n),
    )
    messages = st.sampled_from(FAILURE_MESSAGES) | st.text(min_size=1, max_size=60)
    chaos = (
        st.builds(CallbackChaos, st.booleans(), st.booleans(), st.booleans())
        if callbacks
        else st.just(CallbackChaos())
    )
    return st.builds(
        Scenario,
        submitted_ms=_optional(st.integers(0, 2 * MINUTE_MS), timings),
        processing_ms=_optional(st.integers(0, max_processing_ms), timings),
        failure=_optional(messages, failures),
        errors=st.lists(injected, max_size=max_errors).map(tuple),
        rate_limit_per_s=_optional(st.integers(1, 10).map(float), rate_limits),
        max_in_flight=_optional(st.integers(0, 2), rate_limits),
        callbacks=chaos,
    )
