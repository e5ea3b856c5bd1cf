"""The per-request path alone: the mock and the bare app, a few alternating rounds, JWT.

`python bench/hotpath.py` prints req/s per workload (median of BENCH_ROUNDS, min-max) for the
mock with a JWT and the bare app; `--profile` also records each workload of the mock under
py-spy (bench/out/profile-<workload>.txt, collapsed stacks, and a self-time summary). This is
the before/after measure of bench/PROFILING.md: quicker than `make bench` and the same each time.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run


def profile(s: run.Settings, cell: run.Cell, seconds: int) -> Path:
    assert cell.server.proc is not None
    raw = run.OUT / f"profile-{cell.workload.key}.txt"
    spy = [str(Path(run.PY).parent / "py-spy"), "record", "--format", "raw", "-r", "500"]
    spy += ["-o", str(raw), "--pid", str(cell.server.proc.pid), "-d", str(seconds + 1)]
    proc = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run.run_wrk(s, cell, seconds)
    proc.wait(timeout=60)
    return raw


def summary(raw: Path, top: int = 25) -> str:
    """Self and inclusive shares per function, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{total} samples", "self:"]
    lines += [f"  {n / total:6.1%} {f}" for f, n in own.most_common(top)]
    lines += ["inclusive:"]
    lines += [f"  {n / total:6.1%} {f}" for f, n in incl.most_common(top * 2)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--workloads", default=",".join(run.POINT_KEYS))
    args = p.parse_args()
    s = dataclasses.replace(run.settings_from([]), rounds=3, duration_s=2)
    run.OUT.mkdir(exist_ok=True)
    keys = args.workloads.split(",")
    bare, mock = run.bare_server(), run.mock_server("mock")
    try:
        bare.start()
        mock.start()
        ws = run.workloads(mock)
        cells = [run.Cell(x, ws[k], "jwt", s.connections) for k in keys for x in (bare, mock)]
        figures: dict[object, run.Figure] = {}
        run.rounds(dataclasses.replace(s, rounds=1, duration_s=1), cells, "warm-up", {})
        run.rounds(s, cells, "hotpath", figures)
        for k in keys:
            b, m = figures[("bare", k, "jwt", 32)], figures[("mock", k, "jwt", 32)]
            lo, hi = m.spread("rps")
            cpu = statistics.median(x.server_cores * 1e6 / x.rps for x in m.samples)
            bare_cpu = statistics.median(x.server_cores * 1e6 / x.rps for x in b.samples)
            print(
                f"{k:<14} server CPU per request: mock {cpu:6.1f} us, bare {bare_cpu:5.1f} us"
            )
            print(
                f"{k:<14} mock {m.med('rps'):7,.0f} ({lo:,.0f}-{hi:,.0f})  bare "
                f"{b.med('rps'):7,.0f}  mock/bare {m.med('rps') / b.med('rps'):.2f}  "
                f"mock p50 {m.med('p50_ms'):.2f} ms"
            )
        one = run.Cell(mock, ws["query_one"], "jwt", 1)
        lat = [run.run_wrk(s, one, 2) for _ in range(3)]
        print(f"one connection query_one p50 {statistics.median(x.p50_ms for x in lat):.3f} ms")
        if args.profile:
            for k in keys:
                raw = profile(s, run.Cell(mock, ws[k], "jwt", s.connections), 4)
                text = summary(raw)
                raw.with_suffix(".summary.txt").write_text(text)
                print(f"== {k}: {raw}\n" + "\n".join(text.splitlines()[:30]))
    finally:
        mock.stop()
        bare.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
