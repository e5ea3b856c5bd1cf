"""Reports of the kit's commands: checks with their cases and failures, in text, JSON, JUnit, HTML.

`verify` fills a :class:`Report` (one :class:`CheckSummary` per check); `check-client` renders
its findings with the same JUnit and JSON writers. A new command (coverage, callback fuzzing,
drift) subclasses :class:`Report` or builds :class:`JUnitCase` values and gets the formats;
:func:`html_page` renders a self-contained page (inline CSS, no script, no external asset).

>>> report = Report("http://127.0.0.1:8000", seed=1)
>>> report.record("task_lifecycle", CheckKind.KLING, None)
>>> report.record("task_lifecycle", CheckKind.KLING, CheckFailure("task_lifecycle", "GET /t", "x"))
>>> report.ok, report.cases, report.failed_checks()
(False, 2, ['task_lifecycle'])
"""

from __future__ import annotations

import enum
import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "CheckFailure",
    "CheckKind",
    "CheckSummary",
    "HtmlSection",
    "JUnitCase",
    "Report",
    "html_page",
    "json_text",
    "junit_xml",
    "table",
]

MAX_EXAMPLES_KEPT = 5


class CheckKind(enum.StrEnum):
    """Who defines a check: schemathesis, our contract checks, or one rule of the rule table."""

    SCHEMATHESIS = "schemathesis"
    KLING = "kling"
    RULE = "rule"


@dataclass(slots=True)
class CheckFailure:
    """One failed case of a check: what was sent, what came back and why it is wrong.

    >>> CheckFailure("rule:sound-duration", "POST /v1/videos/advanced-lip-sync",
    ...              "accepted (HTTP 200)").to_dict()["check"]
    'rule:sound-duration'
    """

    check: str
    operation: str
    reason: str
    request: str = ""
    http_status: int | None = None
    code: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The failure as JSON-ready data."""
        return {
            "check": self.check,
            "operation": self.operation,
            "reason": self.reason,
            "request": self.request,
            "http_status": self.http_status,
            "code": self.code,
            "message": self.message,
        }


@dataclass(slots=True)
class CheckSummary:
    """The cases one check looked at and the failures among them (up to 5 kept as examples).

    >>> summary = CheckSummary("task_lifecycle", CheckKind.KLING, cases=4)
    >>> summary.ok, summary.to_dict()["failures"]
    (True, 0)
    """

    name: str
    kind: CheckKind
    cases: int = 0
    failed: int = 0
    examples: list[CheckFailure] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """No failure (a skipped check is ok: it is reported, not failed)."""
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "cases": self.cases,
            "failures": self.failed,
            "skipped": self.skipped,
            "examples": [f.to_dict() for f in self.examples],
        }


@dataclass(slots=True)
class Report:
    """What a command found: one :class:`CheckSummary` per check, in a stable order."""

    command: ClassVar[str] = "report"
    """The command's name, in the verdict line and the JUnit suite's name."""
    base_url: str
    seed: int
    elapsed_s: float = 0.0
    checks: dict[str, CheckSummary] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the command did to the server beyond sending requests (e.g. moving its clock)."""

    @property
    def ok(self) -> bool:
        """Every check held and nothing stopped the run."""
        return not self.errors and all(c.ok for c in self.checks.values())

    @property
    def cases(self) -> int:
        """Cases checked, summed over the checks."""
        return sum(c.cases for c in self.checks.values())

    @property
    def failures(self) -> int:
        """Failed cases, summed over the checks."""
        return sum(c.failed for c in self.checks.values())

    def check(self, name: str, kind: CheckKind) -> CheckSummary:
        """The summary of a check, created on first use."""
        summary = self.checks.get(name)
        if summary is None:
            summary = self.checks[name] = CheckSummary(name, kind)
        return summary

    def record(self, name: str, kind: CheckKind, failure: CheckFailure | None) -> None:
        """One case of a check, failed when ``failure`` is given."""
        summary = self.check(name, kind)
        summary.cases += 1
        if failure is not None:
            summary.failed += 1
            if len(summary.examples) < MAX_EXAMPLES_KEPT:
                summary.examples.append(failure)

    def skip(self, name: str, kind: CheckKind, reason: str) -> None:
        """Say why a check could not be exercised (the first reason given is kept)."""
        summary = self.check(name, kind)
        summary.skipped = summary.skipped or reason

    def ordered(self) -> list[CheckSummary]:
        """Schemathesis' checks, then ours, then the rules in the order of the rule table."""
        kinds = list(CheckKind)
        return sorted(self.checks.values(), key=lambda c: kinds.index(c.kind))

    def failed_checks(self) -> list[str]:
        """Names of the checks with at least one failure."""
        return [c.name for c in self.ordered() if not c.ok]

    def _extra_dict(self) -> dict[str, Any]:
        """What a command adds to the JSON report, before the checks."""
        return {}

    def _extra_lines(self) -> list[str]:
        """What a command adds to the text report, after the table."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the ``--report json`` output)."""
        return {
            "base_url": self.base_url,
            "seed": self.seed,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "cases": self.cases,
            "failures": self.failures,
            "failed_checks": self.failed_checks(),
            "errors": list(self.errors),
            "notes": list(self.notes),
            **self._extra_dict(),
            "checks": [c.to_dict() for c in self.ordered()],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json_text(self.to_dict())

    def summary_table(self) -> str:
        """The human summary: one line per check, then the failures and the verdict."""
        lines = [f"{'check':<30} {'kind':<12} {'cases':>6}  failures"]
        for c in self.ordered():
            note = f"  (not exercised: {c.skipped})" if c.skipped and not c.cases else ""
            lines.append(f"{c.name:<30} {c.kind.value:<12} {c.cases:>6}  {c.failed:>8}{note}")
        lines += self._extra_lines()
        for c in self.ordered():
            for failure in c.examples:
                lines.append("")
                lines.append(f"FAILED {c.name}: {failure.operation}: {failure.reason}")
                if failure.request:
                    lines.append(f"  request:  {failure.request}")
                if failure.http_status is not None:
                    lines.append(
                        f"  response: HTTP {failure.http_status} code {failure.code} "
                        f"{failure.message[:300]}"
                    )
        lines += [f"ERROR {error}" for error in self.errors]
        lines += [f"NOTE {note}" for note in self.notes]
        verdict = "OK" if self.ok else "FAILED"
        lines.append("")
        lines.append(
            f"{self.command}: {verdict}: {self.cases} cases, {self.failures} failures, "
            f"{len(self.failed_checks())} failed checks in {self.elapsed_s:.1f} s "
            f"against {self.base_url} (seed {self.seed})"
        )
        return "\n".join(lines)

    def junit_xml(self) -> str:
        """A JUnit XML document: one test case per check, skipped when it was not exercised."""
        cases: list[JUnitCase] = []
        for c in self.ordered():
            failure = None
            if not c.ok:
                failure = (
                    c.examples[0].reason if c.examples else "failed",
                    "\n".join(
                        f"{f.operation}: {f.reason}\n  request: {f.request}\n"
                        f"  response: HTTP {f.http_status} code {f.code} {f.message}"
                        for f in c.examples
                    ),
                )
            cases.append(
                JUnitCase(
                    c.kind.value,
                    c.name,
                    failure=failure,
                    failure_type=c.kind.value,
                    skipped=c.skipped if c.ok and c.skipped and not c.cases else None,
                    system_out=f"{c.cases} cases, {c.failed} failures",
                )
            )
        cases += [JUnitCase(self.command, "run", error=error) for error in self.errors]
        return junit_xml(f"contracts.{self.command}", cases, time_s=self.elapsed_s)

    def _extra_sections(self) -> list[HtmlSection]:
        """What a command adds to the HTML page, after the checks."""
        return []

    def to_html(self) -> str:
        """A self-contained HTML page: the verdict, one row per check, then every failure."""
        verdict = "OK" if self.ok else "FAILED"
        rows = [
            (c.name, c.kind.value, str(c.cases), str(c.failed), c.skipped or "")
            for c in self.ordered()
        ]
        failures = [
            (c.name, f.operation, f.reason, f.request) for c in self.ordered() for f in c.examples
        ]
        sections = [
            HtmlSection(
                "Checks",
                ("check", "kind", "cases", "failures", "not exercised"),
                rows,
                bad_rows=frozenset(i for i, c in enumerate(self.ordered()) if not c.ok),
            ),
            *self._extra_sections(),
        ]
        if failures:
            sections.append(
                HtmlSection("Failures", ("check", "operation", "reason", "to reproduce"), failures)
            )
        if self.errors or self.notes:
            sections.append(
                HtmlSection(
                    "Errors and notes",
                    ("kind", "text"),
                    [("error", e) for e in self.errors] + [("note", n) for n in self.notes],
                )
            )
        summary = (
            f"{verdict}: {self.cases} cases, {self.failures} failures, "
            f"{len(self.failed_checks())} failed checks in {self.elapsed_s:.1f} s against "
            f"{self.base_url} (seed {self.seed})"
        )
        return html_page(f"contracts {self.command}", summary, sections, ok=self.ok)


@dataclass(frozen=True, slots=True)
class HtmlSection:
    """One titled table of an HTML page; ``bad_rows`` (indexes) are shown in red."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    bad_rows: frozenset[int] = frozenset()
    text: str = ""
    """A paragraph shown above the table."""


_CSS = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}tr.bad td{background:#fde8e8}"
    "td pre{margin:0;white-space:pre-wrap;font:12px monospace}"
    ".ok{color:#176f2c}.failed{color:#b00020}"
)


def html_page(title: str, summary: str, sections: Sequence[HtmlSection], *, ok: bool) -> str:
    """A self-contained HTML document (inline CSS, no script): a verdict line, then tables.

    Every text is escaped; multi-line cells are kept as preformatted text.

    >>> page = html_page("t", "OK <1>", [HtmlSection("S", ("a",), [("x&y",)])], ok=True)
    >>> "OK &lt;1&gt;" in page and "x&amp;y" in page and "<script" not in page
    True
    """

    def cell(text: str) -> str:
        escaped = html.escape(text)
        return f"<td><pre>{escaped}</pre></td>" if "\n" in text else f"<td>{escaped}</td>"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="{"ok" if ok else "failed"}"><strong>{html.escape(summary)}</strong></p>',
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in section.header))
        for i, row in enumerate(section.rows):
            cls = ' class="bad"' if i in section.bad_rows else ""
            parts.append(f"<tr{cls}>" + "".join(cell(str(v)) for v in row) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True, slots=True)
class JUnitCase:
    """One ``<testcase>``: failed (message, text), errored, skipped or passed."""

    classname: str
    name: str
    failure: tuple[str, str] | None = None
    failure_type: str = ""
    error: str | None = None
    skipped: str | None = None
    system_out: str | None = None


def junit_xml(
    suite_name: str, cases: Sequence[JUnitCase], *, time_s: float | None = None, wrap: bool = True
) -> str:
    """A JUnit XML document of one suite (inside ``<testsuites>`` unless ``wrap`` is false).

    >>> print(junit_xml("s", [JUnitCase("c", "n", failure=("bad", "why"))], wrap=False))
    ... # doctest: +ELLIPSIS
    <?xml ...?>
    <testsuite name="s" tests="1" failures="1" errors="0" skipped="0"><testcase ...
    """
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(sum(1 for c in cases if c.error is None)),
        failures=str(sum(1 for c in cases if c.failure is not None)),
        errors=str(sum(1 for c in cases if c.error is not None)),
        skipped=str(sum(1 for c in cases if c.skipped is not None)),
    )
    if time_s is not None:
        suite.set("time", f"{time_s:.3f}")
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=c.classname, name=c.name)
        if c.failure is not None:
            message, text = c.failure
            ET.SubElement(case, "failure", message=message, type=c.failure_type).text = text
        elif c.error is not None:
            ET.SubElement(case, "error", message=c.error)
        elif c.skipped is not None:
            ET.SubElement(case, "skipped", message=c.skipped)
        if c.system_out is not None:
            ET.SubElement(case, "system-out").text = c.system_out
    if not wrap:
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def json_text(data: Any) -> str:
    """Indented JSON, non-ASCII kept."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Aligned columns with a rule under the header; the last column is not padded.

    >>> print(table(("a", "note"), [("xyz", "long text")]))
    a    note
    ---  ----
    xyz  long text
    """
    body = [list(r) for r in rows]
    n = len(header) - 1
    widths = [max(len(r[i]) for r in [list(header), *body]) for i in range(n)]
    lines = []
    for row in [list(header), *body]:
        cells = [row[i].ljust(widths[i]) for i in range(n)]
        lines.append("  ".join([*cells, row[n]]).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(header[n]))
    return "\n".join(lines)
