"""check-client: read the mock's request journal and report what a client did wrong.

For every journaled request it reports:

* **spec-violation**: the body (or query/path parameter) broke the spec's schema; each
  violation names the field and the `x-kling-rules` rule, worded as the mock words its 1201.
* **refused**: the mock answered a client-side error code (1000-1004 authentication,
  1200-1203 request), with the rule when the schema pins it.
* **seconds-for-ms**: `sound_start_time`, `sound_end_time` and `sound_insert_time` all below
  100 and a crop shorter than 2000: seconds sent where milliseconds are expected.
* **poll-too-fast**: the same task queried again sooner than `min_poll_interval_s`.
* **retried-non-retryable**: a request resent after a code other than 1302, 1303, 5000,
  5001, 5002 (a resend after an authentication error counts only when it fails again: a
  client that refreshes its token is doing the right thing).
* **token-lifetime** (warning): a JWT valid longer than the documented 30 minutes.
* **external-task-id-reused**: a create reusing the `external_task_id` of an earlier created
  task of the same account.

Python API::

    from contracts.check_client import CheckOptions, check_journal

    findings = check_journal(mock.admin.journal(), CheckOptions(min_poll_interval_s=2))
    assert not [f for f in findings if f.severity is Severity.ERROR], findings

Command line (exit 0 only when no finding is an error; 2 when the journal cannot be read)::

    python -m contracts check-client --base-url http://127.0.0.1:8000
    python -m contracts check-client --journal journal.json --junit-xml check-client.xml
    python -m contracts check-client --journal journal.json --report json
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import enum
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from mock_server.admin_client import AdminClient
from mock_server.domain.errors import ApiError
from mock_server.spec import Spec, load_spec

from .report import JUnitCase, json_text, junit_xml, table
from .scenarios import RETRYABLE_CODES

__all__ = [
    "Check",
    "CheckOptions",
    "Finding",
    "Severity",
    "TimeSource",
    "add_arguments",
    "check_journal",
    "fetch_journal",
    "load_journal",
    "main",
    "render_json",
    "render_junit",
    "render_text",
    "run",
]

AUTH_CODES = frozenset({1000, 1001, 1002, 1003, 1004})
REQUEST_CODES = frozenset({1200, 1201, 1202, 1203})
# Answers that mean the client sent something wrong; every other non-zero code is the server's
# or the account's doing (limits, policy, outages) and is not held against the client.
CLIENT_ERROR_CODES = AUTH_CODES | REQUEST_CODES
DOCUMENTED_TOKEN_LIFETIME_S = 1800
NBF_SKEW_S = 5  # the documented sample signs nbf = now - 5, so exp - nbf is 1805 s
SECONDS_HINT_LIMIT = 100
MIN_CROP_MS = 2000
TIME_FIELDS = ("sound_start_time", "sound_end_time", "sound_insert_time")
_SUMMARISED = re.compile(r"^<(?:url|base64) (\d+) chars>$")


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Check(enum.StrEnum):
    SPEC_VIOLATION = "spec-violation"
    REFUSED = "refused"
    SECONDS_FOR_MS = "seconds-for-ms"
    POLL_TOO_FAST = "poll-too-fast"
    RETRIED_NON_RETRYABLE = "retried-non-retryable"
    TOKEN_LIFETIME = "token-lifetime"
    EXTERNAL_ID_REUSED = "external-task-id-reused"


class TimeSource(enum.StrEnum):
    """Which journal timestamp measures polling intervals."""

    WALL = "wall"  # wall_ms: real time, right for clients that really sleep
    CLOCK = "clock"  # clock_ms: the mock's clock, right when the test advances a manual clock


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """Thresholds of the client-behaviour checks."""

    min_poll_interval_s: float = 1.0
    time_source: TimeSource = TimeSource.WALL
    max_token_lifetime_s: int = DOCUMENTED_TOKEN_LIFETIME_S
    # Codes not reported as refusals, e.g. 1201 when a scenario injected it on purpose.
    ignore_codes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a client did that the spec forbids or the real API would punish."""

    seq: int
    method: str
    path: str
    check: Check
    severity: Severity
    message: str
    rule: str | None = None
    field: str | None = None
    code: int | None = None

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["check"] = self.check.value
        out["severity"] = self.severity.value
        return out


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    wall_ms: int
    clock_ms: int
    method: str
    path: str
    query: str
    operation: str | None
    account: str | None
    auth: str | None
    token_lifetime_s: int | None
    body: Any
    code: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | Any) -> _Entry:
        if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
            raw = dataclasses.asdict(raw)
        if not isinstance(raw, Mapping):
            raise ValueError(f"a journal entry is an object, got {type(raw).__name__}")
        try:
            return cls(
                seq=int(raw["seq"]),
                wall_ms=int(raw.get("wall_ms", 0)),
                clock_ms=int(raw.get("clock_ms", 0)),
                method=str(raw["method"]).upper(),
                path=str(raw["path"]),
                query=str(raw.get("query") or ""),
                operation=raw.get("operation"),
                account=raw.get("account"),
                auth=raw.get("auth"),
                token_lifetime_s=raw.get("token_lifetime_s"),
                body=raw.get("body"),
                code=int(raw.get("code", 0)),
            )
        except KeyError as exc:
            raise ValueError(f"a journal entry lacks {exc.args[0]!r}: {dict(raw)!r:.200}") from exc

    @property
    def request_key(self) -> tuple[Any, ...]:
        """What makes two requests "the same": who, what, where and with which body."""
        body = json.dumps(self.body, sort_keys=True) if self.body is not None else None
        return (self.account, self.method, self.path, self.query, body)


@dataclass(slots=True)
class _Context:
    spec: Spec
    options: CheckOptions
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        entry: _Entry,
        check: Check,
        message: str,
        *,
        severity: Severity = Severity.ERROR,
        rule: str | None = None,
        field: str | None = None,
        code: int | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                entry.seq, entry.method, entry.path, check, severity, message, rule, field, code
            )
        )


# -- the checks --------------------------------------------------------------------------------


def check_journal(
    entries: Iterable[Mapping[str, Any] | Any], options: CheckOptions | None = None
) -> list[Finding]:
    """Every finding over a journal (`GET /__admin/journal` data), in request order.

    `entries` are journal entries as dicts (or `JournalEntry` values); raises ValueError
    naming the entry when one lacks `seq`, `method` or `path`.
    """
    ctx = _Context(load_spec(), options or CheckOptions())
    parsed = sorted((_Entry.parse(e) for e in entries), key=lambda e: e.seq)
    for entry in parsed:
        rules = _check_schema(ctx, entry)
        _check_refused(ctx, entry, rules)
        _check_seconds(ctx, entry)
        _check_token(ctx, entry)
    _check_polling(ctx, parsed)
    _check_retries(ctx, parsed)
    _check_external_ids(ctx, parsed)
    order = {check: i for i, check in enumerate(Check)}
    return sorted(ctx.findings, key=lambda f: (f.seq, order[f.check]))


def _body_schema(spec: Spec, operation: str) -> str | None:
    try:
        op = spec.operation(operation)
    except KeyError:
        return None
    ref = (
        op.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref", "")
    )
    return str(ref).rsplit("/", 1)[-1] or None


def _unsummarise(value: Any) -> Any:
    """Undo the journal's summary of long strings, keeping their length for maxLength checks."""
    if isinstance(value, str):
        match = _SUMMARISED.match(value)
        return "x" * int(match.group(1)) if match else value
    if isinstance(value, dict):
        return {k: _unsummarise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsummarise(v) for v in value]
    return value


def _check_schema(ctx: _Context, entry: _Entry) -> set[str]:
    """Re-validate the body and parameters; returns the rules found broken."""
    broken: set[str] = set()
    if entry.operation is None:
        return broken
    schema = _body_schema(ctx.spec, entry.operation)
    if schema is not None and entry.body is not None:
        body = _unsummarise(entry.body)
        reported: set[str] = set()
        try:
            ctx.spec.validate_body(entry.operation, schema, body)
        except ApiError as exc:  # the mock's own wording of its first refusal
            message, rule = exc.message, exc.rule
            where = message.split(": ", 1)[0]
            reported.add(where)
            ctx.add(entry, Check.SPEC_VIOLATION, message, rule=rule, field=where)
            if rule:
                broken.add(rule)
        # The mock stops at the first violation; a report lists every one.
        for error in ctx.spec.validator(schema).iter_errors(body):
            explained = ctx.spec.explain(entry.operation, error)
            if explained.field in reported:
                continue
            reported.add(explained.field)
            rule = explained.rule
            ctx.add(
                entry, Check.SPEC_VIOLATION, explained.message, rule=rule, field=explained.field
            )
            if rule:
                broken.add(rule)
    broken |= _check_parameters(ctx, entry)
    return broken


def _check_parameters(ctx: _Context, entry: _Entry) -> set[str]:
    broken: set[str] = set()
    assert entry.operation is not None
    try:
        params = ctx.spec.operation(entry.operation).get("parameters", [])
    except KeyError:
        return broken
    query = dict(parse_qsl(entry.query, keep_blank_values=True))
    path_value = unquote(entry.path.rstrip("/").rsplit("/", 1)[-1])
    for param in params:
        name = param["name"]
        if param.get("in") == "query":
            raw = query.get(name)
            if raw is None or raw == "":
                continue
            value: Any = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        elif param.get("in") == "path":
            value = path_value
        else:
            continue
        try:
            ctx.spec.validate_param(entry.operation, name, value)
        except ApiError as exc:
            rule = exc.rule
            ctx.add(entry, Check.SPEC_VIOLATION, exc.message, rule=rule, field=name)
            if rule:
                broken.add(rule)
    return broken


def _check_refused(ctx: _Context, entry: _Entry, rules: set[str]) -> None:
    code = entry.code
    if code not in CLIENT_ERROR_CODES or code in ctx.options.ignore_codes:
        return
    explanation = ctx.spec.error_text.get(code, "undocumented code")
    status = ctx.spec.http_status.get(code)
    rule = ", ".join(sorted(rules)) or None
    because = f" (rule {rule})" if rule else ""
    ctx.add(
        entry,
        Check.REFUSED,
        f"answered {code} (HTTP {status}, {explanation}){because}",
        rule=rule,
        code=code,
    )


def _check_seconds(ctx: _Context, entry: _Entry) -> None:
    if entry.operation != "createLipSyncTask" or not isinstance(entry.body, dict):
        return
    faces = entry.body.get("face_choose")
    if not isinstance(faces, list):
        return
    for i, face in enumerate(faces):
        if not isinstance(face, dict):
            continue
        times = [face.get(name) for name in TIME_FIELDS]
        numbers = [t for t in times if isinstance(t, int | float) and not isinstance(t, bool)]
        if len(numbers) != len(TIME_FIELDS):
            continue
        start, end, insert = numbers
        if max(numbers) < SECONDS_HINT_LIMIT and end - start < MIN_CROP_MS:
            where = f"face_choose[{i}]"
            ctx.add(
                entry,
                Check.SECONDS_FOR_MS,
                f"{where}: sound_start_time={start:g}, sound_end_time={end:g}, "
                f"sound_insert_time={insert:g} look like seconds; these times are "
                "milliseconds (multiply by 1000)",
                field=where,
            )


def _check_token(ctx: _Context, entry: _Entry) -> None:
    lifetime = entry.token_lifetime_s
    limit = ctx.options.max_token_lifetime_s
    if entry.auth != "jwt" or lifetime is None or lifetime <= limit + NBF_SKEW_S:
        return
    ctx.add(
        entry,
        Check.TOKEN_LIFETIME,
        f"the JWT is valid for {lifetime} s (exp - nbf); the documented lifetime is {limit} s "
        f"(exp = now + {limit}, nbf = now - {NBF_SKEW_S})",
        severity=Severity.WARNING,
    )


def _time_ms(ctx: _Context, entry: _Entry) -> int:
    return entry.clock_ms if ctx.options.time_source is TimeSource.CLOCK else entry.wall_ms


def _check_polling(ctx: _Context, entries: Sequence[_Entry]) -> None:
    minimum_ms = ctx.options.min_poll_interval_s * 1000
    last: dict[tuple[str | None, str], _Entry] = {}
    for entry in entries:
        if entry.operation != "getLipSyncTask":
            continue
        key = (entry.account, entry.path)
        previous = last.get(key)
        last[key] = entry
        if previous is None:
            continue
        gap = _time_ms(ctx, entry) - _time_ms(ctx, previous)
        if gap < minimum_ms:
            ctx.add(
                entry,
                Check.POLL_TOO_FAST,
                f"polled {gap} ms after seq {previous.seq} ({ctx.options.time_source.value} "
                f"time); poll the same task at most once every "
                f"{ctx.options.min_poll_interval_s:g} s",
            )


def _check_retries(ctx: _Context, entries: Sequence[_Entry]) -> None:
    keys = [e.request_key for e in entries]
    positions: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        positions[key].append(i)
    next_of_account: list[int | None] = [None] * len(entries)
    seen: dict[str | None, int] = {}
    for i in reversed(range(len(entries))):
        next_of_account[i] = seen.get(entries[i].account)
        seen[entries[i].account] = i
    for i, failed in enumerate(entries):
        if failed.code == 0 or failed.code in RETRYABLE_CODES:
            continue
        resend: _Entry | None = None
        if failed.body is None and failed.method != "GET":
            # Refused before its body was read (auth, injected fault): the body is unknown,
            # so only an immediate resend to the same place counts.
            j = next_of_account[i]
            if j is not None and keys[j][1:4] == keys[i][1:4]:
                resend = entries[j]
        else:
            same = positions[keys[i]]
            k = bisect.bisect_right(same, i)
            if k < len(same):
                resend = entries[same[k]]
        if resend is None:
            continue
        if failed.code in AUTH_CODES and resend.code not in AUTH_CODES:
            continue  # the client fixed its credentials: a new request, not a retry
        explanation = ctx.spec.error_text.get(failed.code, "undocumented code")
        ctx.add(
            resend,
            Check.RETRIED_NON_RETRYABLE,
            f"resent the request of seq {failed.seq} after it was answered {failed.code} "
            f"({explanation}), which is not retryable; only "
            f"{', '.join(map(str, sorted(RETRYABLE_CODES)))} are worth retrying",
            code=failed.code,
        )


def _check_external_ids(ctx: _Context, entries: Sequence[_Entry]) -> None:
    created: dict[tuple[str | None, str], int] = {}
    for entry in entries:
        if entry.operation != "createLipSyncTask" or not isinstance(entry.body, dict):
            continue
        external = entry.body.get("external_task_id")
        if not isinstance(external, str) or not external:
            continue
        key = (entry.account, external)
        first = created.get(key)
        if first is not None:
            ctx.add(
                entry,
                Check.EXTERNAL_ID_REUSED,
                f"external_task_id {external!r} was already used by the task created at seq "
                f"{first}; it must be unique per account (rule external-task-id-unique)",
                rule="external-task-id-unique",
                field="external_task_id",
            )
        elif entry.code == 0:
            created[key] = entry.seq


# -- input and output --------------------------------------------------------------------------


def load_journal(path: str | Path) -> list[dict[str, Any]]:
    """A saved journal: the entries array, or the whole `GET /__admin/journal` answer."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: expected a JSON array of journal entries or the /__admin/journal answer"
        )
    return data


def fetch_journal(base_url: str, **filters: Any) -> list[dict[str, Any]]:
    """The live journal of a running mock (filters as `AdminClient.journal`)."""
    admin = AdminClient(base_url)
    try:
        return admin.journal(**filters)
    finally:
        admin.close()


def _counts(findings: Sequence[Finding]) -> tuple[int, int]:
    errors = sum(f.severity is Severity.ERROR for f in findings)
    return errors, len(findings) - errors


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render_text(findings: Sequence[Finding], requests: int) -> str:
    """A table for people: one row per finding, then a summary line."""
    errors, warnings = _counts(findings)
    summary = (
        f"check-client: {_plural(requests, 'request')}, {_plural(errors, 'error')}, "
        f"{_plural(warnings, 'warning')}"
    )
    if not findings:
        return summary + "\n"
    header = ("seq", "request", "severity", "check", "finding")
    rows = [(str(f.seq), f.request, f.severity.value, f.check.value, f.message) for f in findings]
    return "\n".join([table(header, rows), "", summary]) + "\n"


def render_json(findings: Sequence[Finding], requests: int) -> str:
    errors, warnings = _counts(findings)
    report = {
        "requests": requests,
        "errors": errors,
        "warnings": warnings,
        "findings": [f.to_dict() for f in findings],
    }
    return json_text(report) + "\n"


def render_junit(findings: Sequence[Finding], entries: Iterable[Mapping[str, Any] | Any]) -> str:
    """JUnit XML: one test case per request; its error findings are its failure."""
    parsed = sorted((_Entry.parse(e) for e in entries), key=lambda e: e.seq)
    by_seq: dict[int, list[Finding]] = defaultdict(list)
    for f in findings:
        by_seq[f.seq].append(f)
    cases = []
    for entry in parsed:
        found = by_seq[entry.seq]
        failing = [f for f in found if f.severity is Severity.ERROR]
        warnings = [f for f in found if f.severity is Severity.WARNING]
        cases.append(
            JUnitCase(
                f"check-client.{entry.operation or 'unrouted'}",
                f"#{entry.seq} {entry.method} {entry.path}",
                failure=(
                    (
                        failing[0].message,
                        "\n".join(f"[{f.check.value}] {f.message}" for f in failing),
                    )
                    if failing
                    else None
                ),
                failure_type=failing[0].check.value if failing else "",
                system_out=(
                    "\n".join(f"warning [{f.check.value}] {f.message}" for f in warnings)
                    if warnings
                    else None
                ),
            )
        )
    return junit_xml("check-client", cases, wrap=False) + "\n"


# -- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `check-client`, for a parser of the `contracts` command."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--base-url", help="read the live journal of the mock at this URL")
    source.add_argument("--journal", metavar="FILE", help="read a saved journal (JSON)")
    parser.add_argument(
        "--min-poll-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="poll one task at most once every S seconds (default 1)",
    )
    parser.add_argument(
        "--time-source",
        choices=[t.value for t in TimeSource],
        default=TimeSource.WALL.value,
        help="measure polling with real time (wall, default) or the mock's clock (clock: "
        "for runs that advance a manual clock instead of sleeping)",
    )
    parser.add_argument(
        "--max-token-lifetime",
        type=int,
        default=DOCUMENTED_TOKEN_LIFETIME_S,
        metavar="S",
        help="longest acceptable JWT lifetime (default 1800, the documented 30 min)",
    )
    parser.add_argument(
        "--ignore-code",
        type=int,
        action="append",
        default=[],
        metavar="CODE",
        help="do not report answers with this code as refusals (repeatable), e.g. codes a "
        "test injected on purpose",
    )
    parser.add_argument(
        "--report", choices=["text", "json"], default="text", help="stdout format (text)"
    )
    parser.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report")
    parser.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        default=Severity.ERROR.value,
        help="lowest severity that makes the exit status 1 (error)",
    )


def run(args: argparse.Namespace) -> int:
    """Run `check-client` with parsed arguments; returns the exit status."""
    try:
        entries = fetch_journal(args.base_url) if args.base_url else load_journal(args.journal)
        options = CheckOptions(
            min_poll_interval_s=args.min_poll_interval,
            time_source=TimeSource(args.time_source),
            max_token_lifetime_s=args.max_token_lifetime,
            ignore_codes=frozenset(args.ignore_code),
        )
        findings = check_journal(entries, options)
    except Exception as exc:  # unreadable file, unreachable mock, malformed entries
        print(f"check-client: cannot read the journal: {exc}", file=sys.stderr)
        return 2
    render = render_json if args.report == "json" else render_text
    sys.stdout.write(render(findings, len(entries)))
    if args.junit_xml:
        Path(args.junit_xml).write_text(render_junit(findings, entries), encoding="utf-8")
    failing = {Severity.ERROR} if args.fail_on == "error" else set(Severity)
    return 1 if any(f.severity in failing for f in findings) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts check-client",
        description="Report spec violations and bad client behaviour in the mock's journal.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
