"""The last step of `make bench`: a long contract verify against a live mock, added to RESULTS.md.

Starts `python -m mock_server` on a free loopback port, runs `python -m contracts verify`'s checks
through its Python API with a fixed seed (schemathesis' examples, coverage, fuzzing and stateful
phases, then our rule and lifecycle checks) and writes a Markdown section (cases, requests,
failures, duration, one row per check, the stateful links followed) into the results file, in
place of an earlier one. Exits 1 when verify reports a failure or an error, so that `make bench`
fails too; 2 when the mock does not start.

    .venv/bin/python bench/long_verify.py                    # full size, into bench/RESULTS.md
    BENCH_QUICK=1 .venv/bin/python bench/long_verify.py      # tiny, into bench/out/RESULTS.quick.md
    .venv/bin/python bench/long_verify.py --max-examples 60 --results-file /tmp/r.md

BENCH_VERIFY_EXAMPLES and BENCH_VERIFY_SEED change the defaults of --max-examples and --seed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from contracts.verify import Credentials, VerifyOptions, VerifyReport, verify
from mock_server.admin_client import AdminClient

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
HEADING = "## Long contract verify"
# Short task phases, so that the tasks verify creates end while it polls them.
MOCK_OPTIONS = ("--seed", "1", "--submit-delay", "0.2", "--processing-delay", "0.3")
FULL_EXAMPLES, QUICK_EXAMPLES = 1500, 5
FULL_RULE_EXAMPLES, QUICK_RULE_EXAMPLES = 10, 3


def log(msg: str) -> None:
    print(f"[long-verify {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def quick_mode() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    quick = quick_mode()
    env = os.environ.get
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--max-examples",
        type=int,
        default=int(env("BENCH_VERIFY_EXAMPLES", QUICK_EXAMPLES if quick else FULL_EXAMPLES)),
        help="examples per operation and phase (1500; 5 with BENCH_QUICK=1)",
    )
    p.add_argument(
        "--rule-examples",
        type=int,
        default=QUICK_RULE_EXAMPLES if quick else FULL_RULE_EXAMPLES,
        help="requests per rule (10; 3 with BENCH_QUICK=1)",
    )
    p.add_argument("--seed", type=int, default=int(env("BENCH_VERIFY_SEED", "1")))
    p.add_argument("--poll-timeout", type=float, default=20.0, help="seconds for a task to end")
    p.add_argument(
        "--results-file",
        type=Path,
        default=OUT / "RESULTS.quick.md" if quick else BENCH / "RESULTS.md",
        help="Markdown file the section goes into (bench/RESULTS.md; the quick one with "
        "BENCH_QUICK=1)",
    )
    return p.parse_args(argv)


# -- the mock --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mock_argv(port: int) -> list[str]:
    argv = [sys.executable, "-m", "mock_server", "--port", str(port), *MOCK_OPTIONS]
    return [*argv, "--log-level", "warning"]


@contextlib.contextmanager
def running_mock(log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A fresh mock process on a free port; yields its base URL and the process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(mock_argv(port), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the mock exited with {proc.returncode}; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/openapi.json", timeout=1, trust_env=False).is_success:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mock did not start within 30 s; see {log_path}")
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the run ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One long verify: the options, verify's report and what the mock's journal counted."""

    args: argparse.Namespace
    report: VerifyReport
    requests: int  # API requests the mock answered (its journal's last sequence number)
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP status -> journal entries
    journaled: int = 0  # entries the journal still held (it keeps the last 10,000)
    mock_cpu_s: float = 0.0
    when: str = ""

    @property
    def ok(self) -> bool:
        return self.report.ok


def run(args: argparse.Namespace) -> Run:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with running_mock(OUT / "long-verify-mock.log") as (url, proc):
        log(
            f"mock at {url}; verify --max-examples {args.max_examples} "
            f"--rule-examples {args.rule_examples} --seed {args.seed}"
        )
        options = VerifyOptions(
            url,
            Credentials.mock_defaults(),
            max_examples=args.max_examples,
            rule_examples=args.rule_examples,
            seed=args.seed,
            poll_timeout_s=args.poll_timeout,
        )
        report = verify(options, log)
        admin = AdminClient(url)
        try:
            entries = admin.journal()
        finally:
            admin.close()
        mock_cpu_s = cpu_seconds(proc.pid)
    return Run(
        args,
        report,
        requests=max((int(e["seq"]) for e in entries), default=0),
        statuses=Counter(int(e["http_status"]) for e in entries),
        journaled=len(entries),
        mock_cpu_s=mock_cpu_s,
        when=when,
    )


# -- the section -----------------------------------------------------------------------------


def section(r: Run) -> str:
    rep, a = r.report, r.args
    command = (
        f"verify --max-examples {a.max_examples} --rule-examples {a.rule_examples} --seed {a.seed}"
    )
    verdict = (
        "**OK**: no failure"
        if r.ok
        else f"**FAILED**: {rep.failures} failures in {', '.join(rep.failed_checks()) or '-'}"
        + (f"; {len(rep.errors)} errors" if rep.errors else "")
    )
    seen = "all" if r.journaled >= r.requests else f"the last {r.journaled:,}"
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(r.statuses.items()))
    lines = [
        HEADING,
        "",
        f"Written by `bench/long_verify.py` on {r.when}: `python -m contracts {command}` "
        "(through its Python API) against a fresh mock, `python -m mock_server --port P "
        f"{' '.join(MOCK_OPTIONS)} --log-level warning`. schemathesis' examples, coverage, "
        "fuzzing and stateful phases (identify-face -> create -> query one -> list, through "
        "the spec's links), then our checks: error mapping, valid requests accepted, one "
        "request set per rule of `x-kling-rules`, a task's lifecycle.",
        "",
        "| cases checked | requests | failures | errors | duration | mock CPU |",
        "|---|---|---|---|---|---|",
        f"| {rep.cases:,} | {r.requests:,} | {rep.failures:,} | {len(rep.errors)} | "
        f"{rep.elapsed_s:.1f} s | {r.mock_cpu_s:.1f} s |",
        "",
        f"{verdict}. A case is one check applied to one response; requests are those the mock "
        f"answered, from its journal (HTTP statuses of {seen}: {statuses or 'none'}). "
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| check | kind | cases | failures |",
        "|---|---|---|---|",
    ]
    for c in rep.ordered():
        note = f" (not exercised: {c.skipped})" if c.skipped and not c.cases else ""
        failed = f"**{c.failed:,}**" if c.failed else "0"
        lines.append(f"| {c.name}{note} | {c.kind.value} | {c.cases:,} | {failed} |")
    lines += ["", "| stateful link | steps | answered 2xx |", "|---|---|---|"]
    for link, (steps, accepted) in sorted(rep.links.items()):
        lines.append(f"| {link} | {steps:,} | {accepted:,} |")
    if not rep.links:
        lines.append("| (none followed) | 0 | 0 |")
    failures = [(c.name, f) for c in rep.ordered() for f in c.examples]
    if failures or rep.errors:
        lines += ["", "Failures (up to 5 examples per check) and errors:", ""]
        for name, f in failures:
            lines.append(f"- `{name}` {f.operation}: {f.reason}")
            if f.request:
                lines.append(f"  request `{f.request}`")
            if f.http_status is not None:
                lines.append(f"  answered HTTP {f.http_status} code {f.code}: {f.message[:300]}")
        lines += [f"- error: {e}" for e in rep.errors]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Put the section into the results file, in place of an earlier one (else at the end)."""
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _m: text + "\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = (old.rstrip("\n") + "\n\n" if old else "") + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    try:
        result = run(args)
    except RuntimeError as exc:
        log(str(exc))
        return 2
    text = section(result)
    write_section(args.results_file, text)
    print(text)
    print(result.report.summary_table().splitlines()[-1])
    with contextlib.suppress(ValueError):
        log(f"wrote {args.results_file.resolve().relative_to(ROOT)}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
