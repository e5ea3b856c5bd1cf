"""coverage: what a client's test suite exercised against the mock, and what never happened.

It reads the mock's request journal, its callback delivery log and its task list (live from
`--base-url`, from saved JSON files, or from every mock a pytest session started with
`pytest --lipsync-coverage`) and reports six dimensions, each a list of items covered or not:

* **operations**: every operationId answered with success (`op:createLipSyncTask`) and
  refused at least once (`op:createLipSyncTask:refused`); the report lists every code each
  operation answered.
* **rules**: every `x-kling-rules` id the client ran into (a refusal naming the rule).
* **statuses**: the task statuses the client saw (`submitted-task`, `processing-task`,
  `succeeded-task`, `failed-task`), the transitions it saw on one task
  (`submitted->processing`, `processing->succeed`, `processing->failed`) and `stuck-task`: a
  task the client stopped following while it was still unfinished (its own timeout). A status
  is seen when a create or a query answered it, or when a callback carrying it was answered
  2xx by the client's receiver.
* **errors**: every code of `x-kling-errors` the client was answered.
* **conditions**: the hard days it ran under: `rate-limit` (1302), `concurrency-limit`
  (1303), `server-error` (5000-5002), `expired-token` (1004), and callbacks delivered
  `duplicate`, `reordered`, `dropped` or `late` (`duplicate-callback`, ...).
* **receiver**: how its callback receiver answered: `receiver-2xx`, `receiver-non-2xx`,
  `receiver-no-answer` (timeout or connection error) and `signed-callback` (deliveries of a
  mock started with a webhook secret).

The journal keeps what was asked, not what was answered: a query's status is read off the
task's `created_at` / `updated_at` (from the task list) and the submit delay, or a callback
the receiver acknowledged. Without `--tasks`, only creates and callbacks show statuses.

The figure is the mean of the dimensions' percentages (each dimension weighs the same, so the
35 rules do not drown the 8 statuses); `--dimensions` picks which count.

Python API::

    from contracts.coverage import Segment, measure

    result = measure([Segment.from_admin(mock.admin)])
    print(result.text())
    assert "failed-task" in result.covered_ids()

Command line (exit 0 when the gates hold, 1 when one fails, 2 when the input cannot be read)::

    python -m contracts coverage --base-url http://127.0.0.1:8000 --fail-under 80
    python -m contracts coverage --journal journal.json --callbacks deliveries.json \\
        --tasks tasks.json --require failed-task,1303,duplicate-callback --report html -o cov.html
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mock_server.admin_client import AdminClient
from mock_server.spec import load_spec

from .report import HtmlSection, JUnitCase, html_page, json_text, junit_xml, table
from .scenarios import operation_ids

__all__ = [
    "DIMENSIONS",
    "Coverage",
    "Dimension",
    "Segment",
    "add_arguments",
    "main",
    "measure",
    "run",
]

TASK_PATH = "/v1/videos/advanced-lip-sync/"
TERMINAL = ("succeed", "failed")
RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
STATUS_ITEMS = {
    "submitted": "submitted-task",
    "processing": "processing-task",
    "succeed": "succeeded-task",
    "failed": "failed-task",
}
TRANSITIONS = (("submitted", "processing"), ("processing", "succeed"), ("processing", "failed"))
CHAOS_ITEMS = {
    "duplicate": "duplicate-callback",
    "reordered": "reordered-callback",
    "dropped": "dropped-callback",
    "delayed": "late-callback",
}
CODE_CONDITIONS = {1302: "rate-limit", 1303: "concurrency-limit", 1004: "expired-token"}
MISSING_SHOWN = 10  # the text table; JSON, JUnit and HTML list every missing item
SERVER_ERRORS = frozenset({5000, 5001, 5002})

HOW_TO: dict[str, str] = {
    "operations": "call each operation once with a valid request and once with a refused "
    "one (e.g. InjectedError(1201, op) in a Scenario)",
    "rules": "feed the client the one-rule-broken inputs of contracts.strategies "
    "(invalid_create_requests and friends) and assert it refuses or surfaces the 1201",
    "statuses": "poll a task through processing (Scenario(processing_ms=60_000)), end one "
    "failed (Scenario(failure=...)) and one past the client's timeout "
    "(Scenario(processing_ms=20 * 60_000))",
    "errors": "InjectedError(code) for every injectable code; 1000-1004 by sending no, a "
    "malformed, a wrongly signed, a not-yet-valid and an expired token",
    "conditions": "Scenario(rate_limit_per_s=1), Scenario(max_in_flight=0), "
    "InjectedError(5000..5002), an expired JWT, CallbackChaos(duplicate/reorder/drop) and "
    "admin.set_chaos(delay_ms=...)",
    "receiver": "a callback_url the receiver answers 2xx, one it refuses (a bad signature: "
    "a receiver secret the mock does not have), one that is down, and a mock with "
    "webhook_secret",
}


@dataclass(frozen=True, slots=True)
class Dimension:
    """One dimension: its items, in a stable order."""

    name: str
    items: tuple[str, ...]
    meaning: str


def _dimensions() -> tuple[Dimension, ...]:
    spec = load_spec()
    ops = operation_ids()
    return (
        Dimension(
            "operations",
            tuple(i for op in ops for i in (f"op:{op}", f"op:{op}:refused")),
            "each operation answered with success, and refused at least once",
        ),
        Dimension(
            "rules",
            tuple(f"rule:{r}" for r in spec.rules),
            "each x-kling-rules rule the client ran into (a refusal naming it)",
        ),
        Dimension(
            "statuses",
            (
                *STATUS_ITEMS.values(),
                *(f"{a}->{b}" for a, b in TRANSITIONS),
                "stuck-task",
            ),
            "task statuses and transitions the client saw, by query or by a callback it "
            "acknowledged, and a task it stopped following unfinished",
        ),
        Dimension(
            "errors",
            tuple(str(c) for c in sorted(spec.http_status)),
            "each x-kling-errors code the client was answered",
        ),
        Dimension(
            "conditions",
            (
                "rate-limit",
                "concurrency-limit",
                "server-error",
                "expired-token",
                *CHAOS_ITEMS.values(),
            ),
            "faults and callback chaos the client ran under",
        ),
        Dimension(
            "receiver",
            ("receiver-2xx", "receiver-non-2xx", "receiver-no-answer", "signed-callback"),
            "how the client's callback receiver answered, and whether deliveries were signed",
        ),
    )


DIMENSIONS: tuple[Dimension, ...] = _dimensions()


# -- input -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """What one mock saw between two resets: its journal, deliveries and tasks.

    `signed`: the mock signed its callbacks (started with a webhook secret). `submit_ms`: how
    long a task stays `submitted` (the mock's `submit_delay_s`), used when neither a callback
    nor the task list says whether a query answered `submitted` or `processing`.
    """

    journal: Sequence[Mapping[str, Any]]
    deliveries: Sequence[Mapping[str, Any]] = ()
    tasks: Sequence[Mapping[str, Any]] = ()
    signed: bool = False
    submit_ms: int = 1000

    @classmethod
    def from_admin(
        cls, admin: AdminClient, *, signed: bool = False, submit_ms: int = 1000
    ) -> Segment:
        """The current journal, deliveries and tasks of a running mock."""
        return cls(
            admin.journal(),
            admin.callbacks(),
            admin.tasks(page_size=1000),
            signed=signed,
            submit_ms=submit_ms,
        )


# -- measuring ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Coverage:
    """Hit counts per item and the codes each operation answered, over one or more segments."""

    hits: Counter[str] = field(default_factory=Counter)
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    requests: int = 0
    deliveries: int = 0
    segments: int = 0
    dimensions: tuple[str, ...] = tuple(d.name for d in DIMENSIONS)

    def merge(self, other: Coverage) -> None:
        """Add another measurement (e.g. of another mock of the same session)."""
        self.hits.update(other.hits)
        for op, codes in other.answers.items():
            self.answers[op].update(codes)
        self.requests += other.requests
        self.deliveries += other.deliveries
        self.segments += other.segments

    def state(self) -> dict[str, Any]:
        """Plain data to rebuild this value (:meth:`from_state`): how xdist workers report."""
        return {
            "hits": dict(self.hits),
            "answers": {
                op: {str(c): n for c, n in codes.items()} for op, codes in self.answers.items()
            },
            "requests": self.requests,
            "deliveries": self.deliveries,
            "segments": self.segments,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Coverage:
        cov = cls(
            Counter(state["hits"]),
            requests=int(state["requests"]),
            deliveries=int(state["deliveries"]),
            segments=int(state["segments"]),
        )
        for op, codes in state["answers"].items():
            cov.answers[op].update({int(c): int(n) for c, n in codes.items()})
        return cov

    def covered_ids(self) -> set[str]:
        return {k for k, v in self.hits.items() if v}

    def dimension(self, name: str) -> Dimension:
        return next(d for d in DIMENSIONS if d.name == name)

    def percent(self, name: str) -> float:
        items = self.dimension(name).items
        return 100.0 * sum(1 for i in items if self.hits[i]) / len(items)

    def missing(self, name: str) -> list[str]:
        return [i for i in self.dimension(name).items if not self.hits[i]]

    @property
    def total(self) -> float:
        """The figure: the mean of the counted dimensions' percentages."""
        return sum(self.percent(n) for n in self.dimensions) / len(self.dimensions)

    def unmet(self, required: Iterable[str]) -> list[str]:
        """Required items (see :func:`resolve_item`) that never happened."""
        return [r for r in required if not self.hits[resolve_item(r)]]

    # -- rendering -------------------------------------------------------------------------

    def to_dict(self, *, fail_under: float = 0.0, required: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "total_percent": round(self.total, 1),
            "counted_dimensions": list(self.dimensions),
            "fail_under": fail_under,
            "required": list(required),
            "unmet": self.unmet(required),
            "ok": self.ok(fail_under, required),
            "requests": self.requests,
            "deliveries": self.deliveries,
            "segments": self.segments,
            "dimensions": [
                {
                    "name": d.name,
                    "meaning": d.meaning,
                    "percent": round(self.percent(d.name), 1),
                    "covered": {i: self.hits[i] for i in d.items if self.hits[i]},
                    "missing": self.missing(d.name),
                    "how_to_cover": HOW_TO[d.name],
                }
                for d in DIMENSIONS
            ],
            "answers": {
                op: {str(c): n for c, n in sorted(codes.items())}
                for op, codes in sorted(self.answers.items())
            },
        }

    def ok(self, fail_under: float = 0.0, required: Sequence[str] = ()) -> bool:
        return self.total + 1e-9 >= fail_under and not self.unmet(required)

    def _verdict(self, fail_under: float, required: Sequence[str]) -> str:
        parts = [f"coverage: {self.total:.1f}%"]
        if fail_under:
            parts.append(f"(fail-under {fail_under:g}%)")
        unmet = self.unmet(required)
        if unmet:
            parts.append(f"required but never happened: {', '.join(unmet)}")
        verdict = "OK" if self.ok(fail_under, required) else "FAILED"
        return (
            f"{' '.join(parts)}: {verdict} ({self.requests} requests, {self.deliveries} "
            f"deliveries, {self.segments} mocks/resets)"
        )

    def text(self, *, fail_under: float = 0.0, required: Sequence[str] = ()) -> str:
        """The pytest-cov style table: one row per dimension with what is missing."""
        rows = []
        for d in DIMENSIONS:
            missing = self.missing(d.name)
            shown = ", ".join(missing[:MISSING_SHOWN]) or "-"
            if len(missing) > MISSING_SHOWN:
                shown += f", ... (+{len(missing) - MISSING_SHOWN} more)"
            covered = len(d.items) - len(missing)
            star = "" if d.name in self.dimensions else " (not counted)"
            rows.append(
                (
                    d.name + star,
                    str(len(d.items)),
                    str(covered),
                    f"{self.percent(d.name):.0f}%",
                    shown,
                )
            )
        rows.append(("TOTAL", "", "", f"{self.total:.0f}%", ""))
        lines = [
            "lipsync contract coverage",
            table(("dimension", "items", "covered", "cover", "missing"), rows),
            "",
            "answers per operation (code: count; 0 is success):",
        ]
        for op in operation_ids():
            codes = self.answers.get(op)
            seen = (
                ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
                if codes
                else "never called"
            )
            lines.append(f"  {op:<20} {seen}")
        lines += ["", self._verdict(fail_under, required)]
        return "\n".join(lines)

    def junit(self, *, fail_under: float = 0.0, required: Sequence[str] = ()) -> str:
        """One test case per dimension (failed when a required item of it is missing)."""
        unmet = set(self.unmet(required))
        cases = []
        for d in DIMENSIONS:
            missing_required = [r for r in required if r in unmet and resolve_item(r) in d.items]
            failure = None
            if missing_required:
                failure = (
                    f"required but never happened: {', '.join(missing_required)}",
                    f"how to cover: {HOW_TO[d.name]}",
                )
            cases.append(
                JUnitCase(
                    "coverage",
                    d.name,
                    failure=failure,
                    failure_type="required",
                    system_out=f"{self.percent(d.name):.1f}%; missing: "
                    + (", ".join(self.missing(d.name)) or "nothing"),
                )
            )
        total_failure = None
        if self.total + 1e-9 < fail_under:
            total_failure = (f"{self.total:.1f}% < {fail_under:g}%", self._verdict(fail_under, ()))
        cases.append(
            JUnitCase(
                "coverage",
                "total",
                failure=total_failure,
                failure_type="fail-under",
                system_out=f"{self.total:.1f}%",
            )
        )
        return junit_xml("contracts.coverage", cases)

    def html(self, *, fail_under: float = 0.0, required: Sequence[str] = ()) -> str:
        """A self-contained page: the verdict, one table per dimension, the answers."""
        sections = [
            HtmlSection(
                "Dimensions",
                ("dimension", "cover", "covered", "missing", "meaning"),
                [
                    (
                        d.name,
                        f"{self.percent(d.name):.0f}%",
                        f"{len(d.items) - len(self.missing(d.name))}/{len(d.items)}",
                        ", ".join(self.missing(d.name)) or "-",
                        d.meaning,
                    )
                    for d in DIMENSIONS
                ],
                bad_rows=frozenset(i for i, d in enumerate(DIMENSIONS) if self.missing(d.name)),
            )
        ]
        for d in DIMENSIONS:
            sections.append(
                HtmlSection(
                    f"{d.name}: {self.percent(d.name):.0f}%",
                    ("item", "hits"),
                    [(i, str(self.hits[i])) for i in d.items],
                    bad_rows=frozenset(k for k, i in enumerate(d.items) if not self.hits[i]),
                    text=f"{d.meaning}. To cover the rest: {HOW_TO[d.name]}.",
                )
            )
        sections.append(
            HtmlSection(
                "Answers per operation",
                ("operation", "codes (code: count)"),
                [
                    (
                        op,
                        ", ".join(f"{c}: {n}" for c, n in sorted(self.answers[op].items()))
                        if op in self.answers
                        else "never called",
                    )
                    for op in operation_ids()
                ],
            )
        )
        return html_page(
            "contracts coverage",
            self._verdict(fail_under, required),
            sections,
            ok=self.ok(fail_under, required),
        )


def resolve_item(name: str) -> str:
    """The item id of a `--require` name: an item id, a bare rule id or an operationId.

    >>> resolve_item("video-duration"), resolve_item("createTts"), resolve_item("1303")
    ('rule:video-duration', 'op:createTts', '1303')
    """
    known = {i for d in DIMENSIONS for i in d.items}
    if name in known:
        return name
    for candidate in (f"rule:{name}", f"op:{name}"):
        if candidate in known:
            return candidate
    raise ValueError(
        f"unknown coverage item {name!r}; use an item of the report (e.g. failed-task, 1303, "
        "duplicate-callback, op:createTts, rule:video-duration)"
    )


def _task_key(path: str) -> str | None:
    if path.startswith(TASK_PATH):
        rest = path[len(TASK_PATH) :]
        return rest or None
    return None


def _measure_segment(segment: Segment) -> Coverage:
    cov = Coverage(segments=1)
    hits = cov.hits
    journal = sorted(segment.journal, key=lambda e: int(e.get("seq", 0)))
    cov.requests = len(journal)
    cov.deliveries = len(segment.deliveries)

    # tasks by id and by external id; the account + clock of a create names its task
    tasks: dict[str, Mapping[str, Any]] = {}
    created_by: dict[tuple[Any, int], list[str]] = defaultdict(list)
    for task in segment.tasks:
        task_id = str(task.get("task_id", ""))
        tasks[task_id] = task
        if task.get("external_task_id"):
            tasks[str(task["external_task_id"])] = task
        created_by[(task.get("account"), int(task.get("created_at", -1)))].append(task_id)

    # what the receiver acknowledged, with the wall time of the status it got first
    acked_at: dict[tuple[str, str], int] = {}
    seen: dict[str, set[str]] = defaultdict(set)
    last_seen: dict[str, tuple[int, str]] = {}  # task -> (wall_ms, status) of the newest look

    def saw(task_id: str, status: str, wall_ms: int) -> None:
        seen[task_id].add(status)
        if status in STATUS_ITEMS:
            hits[STATUS_ITEMS[status]] += 1
        if task_id not in last_seen or wall_ms >= last_seen[task_id][0]:
            last_seen[task_id] = (wall_ms, status)

    for d in segment.deliveries:
        chaos = d.get("chaos")
        if chaos in CHAOS_ITEMS:
            hits[CHAOS_ITEMS[str(chaos)]] += 1
        if chaos == "dropped":
            continue
        status = d.get("http_status")
        if segment.signed or d.get("signed"):
            hits["signed-callback"] += 1
        if status is None:
            hits["receiver-no-answer"] += 1
        elif 200 <= int(status) < 300:
            hits["receiver-2xx"] += 1
            key = (str(d.get("task_id")), str(d.get("task_status")))
            wall = int(d.get("wall_ms", 0))
            acked_at[key] = min(wall, acked_at.get(key, wall))
            saw(key[0], key[1], wall)
        else:
            hits["receiver-non-2xx"] += 1

    for e in journal:
        op = e.get("operation")
        code = int(e.get("code", 0))
        wall = int(e.get("wall_ms", 0))
        if op:
            cov.answers[str(op)][code] += 1
            hits[f"op:{op}" if code == 0 else f"op:{op}:refused"] += 1
        if code:
            hits[str(code)] += 1
            if code in CODE_CONDITIONS:
                hits[CODE_CONDITIONS[code]] += 1
            if code in SERVER_ERRORS:
                hits["server-error"] += 1
        if e.get("rule"):
            hits[f"rule:{e['rule']}"] += 1
        if code != 0:
            continue
        clock = int(e.get("clock_ms", 0))
        if op == "createLipSyncTask":
            for task_id in created_by.get((e.get("account"), clock), [""])[:1]:
                saw(task_id or f"#create{e.get('seq')}", "submitted", wall)
        elif op == "getLipSyncTask":
            polled = tasks.get(_task_key(str(e.get("path", ""))) or "")
            answered = e.get("task_status")  # kept by the mock; inferred for older journals
            if polled is not None:
                inferred = _status_at(polled, clock, wall, acked_at, segment.submit_ms)
                saw(str(polled["task_id"]), str(answered or inferred), wall)

    for task_id, statuses in seen.items():
        for a, b in TRANSITIONS:
            if a in statuses and b in statuses:
                hits[f"{a}->{b}"] += 1
        _, newest = last_seen[task_id]
        # the client's last look was an unfinished task, and it never heard of the end
        if newest not in TERMINAL and not statuses & set(TERMINAL) and task_id in tasks:
            hits["stuck-task"] += 1
    return cov


def _status_at(
    task: Mapping[str, Any],
    clock_ms: int,
    wall_ms: int,
    acked_at: Mapping[tuple[str, str], int],
    submit_ms: int,
) -> str:
    """The status a query at `clock_ms` answered, from the task's times and its callbacks.

    For journals that do not keep the answer (older ones): a task's `updated_at` is when it
    reached its current status, its `created_at` when it was submitted. Between the two, a
    callback of `processing` already delivered, or else the submit delay, says which it was.
    """
    status = str(task.get("task_status", ""))
    created = int(task.get("created_at", 0))
    updated = int(task.get("updated_at", created))
    if clock_ms >= updated:
        return status
    if status == "processing":
        return "submitted"
    processing_wall = acked_at.get((str(task.get("task_id")), "processing"))
    if processing_wall is not None:
        return "processing" if wall_ms >= processing_wall else "submitted"
    return "processing" if clock_ms >= created + submit_ms else "submitted"


def measure(segments: Iterable[Segment], dimensions: Sequence[str] | None = None) -> Coverage:
    """The coverage of one or more segments (mocks, or one mock between resets), merged."""
    total = Coverage()
    for segment in segments:
        total.merge(_measure_segment(segment))
    if dimensions:
        unknown = [d for d in dimensions if d not in {x.name for x in DIMENSIONS}]
        if unknown:
            raise ValueError(
                f"unknown dimension {unknown[0]!r}; use {[d.name for d in DIMENSIONS]}"
            )
        total.dimensions = tuple(dimensions)
    return total


# -- command line ------------------------------------------------------------------------------


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("source (a live mock, or saved JSON files)")
    source.add_argument("--base-url", help="a running mock: read its journal, deliveries, tasks")
    source.add_argument("--admin-token", help="X-Admin-Token of a mock started with one")
    source.add_argument("--journal", help="saved GET /__admin/journal answer (or its data)")
    source.add_argument("--callbacks", help="saved GET /__admin/callbacks answer")
    source.add_argument("--tasks", help="saved GET /__admin/tasks answer")
    source.add_argument(
        "--signed", action="store_true", help="the mock signed its callbacks (webhook secret)"
    )
    source.add_argument(
        "--submit-ms", type=int, default=1000, help="the mock's submit delay (default 1000)"
    )
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT")
    parser.add_argument(
        "--require", help="comma-separated items that must have happened: failed-task,1303,..."
    )
    parser.add_argument(
        "--dimensions", help="comma-separated dimensions counted in the figure (default: all)"
    )
    parser.add_argument("--report", choices=("text", "json", "junit", "html"), default="text")
    parser.add_argument("-o", "--output", help="write the report here instead of stdout")
    parser.add_argument("--junit-xml", help="also write a JUnit XML report here")


def _load(path: str) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array or a control-API answer with data")
    return data


def run(args: argparse.Namespace) -> int:
    """Run from parsed arguments; the exit status."""
    try:
        required = _split(args.require)
        for name in required:
            resolve_item(name)
        if args.base_url:
            admin = AdminClient(args.base_url, admin_token=args.admin_token)
            try:
                segment = Segment.from_admin(admin, signed=args.signed, submit_ms=args.submit_ms)
            finally:
                admin.close()
        elif args.journal:
            segment = Segment(
                _load(args.journal),
                _load(args.callbacks) if args.callbacks else (),
                _load(args.tasks) if args.tasks else (),
                signed=args.signed,
                submit_ms=args.submit_ms,
            )
        else:
            raise ValueError("give --base-url, or --journal (with --callbacks and --tasks)")
        coverage = measure([segment], _split(args.dimensions) or None)
    except (OSError, ValueError) as exc:
        print(f"coverage: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the control API refused or is unreachable
        print(f"coverage: cannot read the mock: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    gates = {"fail_under": args.fail_under, "required": required}
    rendered = {
        "text": lambda: coverage.text(**gates),
        "json": lambda: json_text(coverage.to_dict(**gates)),
        "junit": lambda: coverage.junit(**gates),
        "html": lambda: coverage.html(**gates),
    }[args.report]()
    if args.output:
        Path(args.output).write_text(rendered + "\n", encoding="utf-8")
    else:
        print(rendered)
    if args.junit_xml:
        Path(args.junit_xml).write_text(coverage.junit(**gates), encoding="utf-8")
    return 0 if coverage.ok(args.fail_under, required) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts coverage")
    add_arguments(parser)
    return run(parser.parse_args(argv))
