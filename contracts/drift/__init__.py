"""drift: how a recording of the real service (`lipsync-mock --proxy-to URL --record FILE`)
differs from the spec and from what this mock answers to the same requests.

It reports fields added, missing or of another type (against the spec's schemas and against
the mock's answers), codes the spec lacks or the mock answers differently, messages, phase
durations (their distribution and the mock options that reproduce it) and callback payloads.
The mock is run in-process on a manual clock, with the media and outcomes of the recording
(the fixtures `--fixtures-out` writes), and each recorded request is sent to it at the
recorded time.

Python API::

    from contracts.drift import drift_report

    report = drift_report("session.jsonl")
    assert not [d for d in report.differences if d.kind == "unknown-code"], report.to_text()

Command line (exit 0 when nothing differs, 1 when something does, 2 when the file cannot be
read)::

    python -m contracts drift session.jsonl
    python -m contracts drift session.jsonl --format json --fixtures-out fixtures.yaml
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mock_server.config import Config
from mock_server.proxy.recording import RecordingError, read
from mock_server.spec import Spec, load_spec

from .against_mock import ask_mock
from .model import Difference, DriftReport, PhaseStats
from .shapes import SchemaShape, Shape, compare_shapes, compare_to_schema, schema_shape, shape
from .timeline import durations, fixtures_document, lifecycles, phase_stats, status_msg

SPREAD = 0.1  # durations further apart than 10 % of their median: suggest the recorded ones
SLOW_API_MS = 50  # an upstream that answers slower than this: suggest its recorded latency

__all__ = ["Difference", "DriftReport", "PhaseStats", "drift_report", "fixtures_document"]


def _codes(pairs: list[tuple[dict[str, Any], int, Any]], spec: Spec) -> list[Difference]:
    out: dict[tuple[str, str, str], Difference] = {}
    for r, _, _ in pairs:
        body, status = r["response"]["body"], r["response"]["status"]
        op = r.get("operation") or "unknown"
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, int) and code != 0 and code not in spec.http_status:
            out[("unknown-code", op, str(code))] = Difference(
                "unknown-code",
                "spec",
                op,
                f"code {code}",
                f"HTTP {status} {body.get('message', '')!r}: not in x-kling-errors",
            )
        elif isinstance(code, int) and code and spec.http_status[code] != status:
            out[("http-status", op, str(code))] = Difference(
                "http-status",
                "spec",
                op,
                f"code {code}",
                f"HTTP {status}, the spec says {spec.http_status[code]}",
            )
    for r, mock_status, reply in pairs:
        body, status = r["response"]["body"], r["response"]["status"]
        op = r.get("operation") or "unknown"
        code = body.get("code") if isinstance(body, dict) else None
        mine = reply.get("code") if isinstance(reply, dict) else None
        if (code, status) != (mine, mock_status):
            out[("code", op, f"{code}/{mine}")] = Difference(
                "code",
                "mock",
                op,
                f"code {code}",
                f"HTTP {status} {body.get('message', '') if isinstance(body, dict) else ''!r}; "
                f"the mock answers {mine} (HTTP {mock_status})",
            )
        elif code and isinstance(reply, dict) and body.get("message") != reply.get("message"):
            out[("message", op, str(code))] = Difference(
                "message",
                "mock",
                op,
                f"code {code}",
                f"{body.get('message')!r}; the mock says {reply.get('message')!r}",
            )
    return list(out.values())


def _success_schema(spec: Spec, op: str) -> Mapping[str, Any] | None:
    entry = spec.operation(op).get("responses", {}).get("200", {})
    schema: Mapping[str, Any] | None = (
        entry.get("content", {}).get("application/json", {}).get("schema")
    )
    return schema


def drift_report(path: str | Path, spec: Spec | None = None) -> DriftReport:
    """Read a recording, ask the mock the same, and say everything that differs."""
    spec = spec or load_spec()
    records = read(path)
    fixtures = fixtures_document(records)
    answers = ask_mock(records, fixtures)
    lives = lifecycles(records)
    callbacks = [r for r in records if r["kind"] == "callback"]
    report = DriftReport(
        records=len(records),
        exchanges=sum(r["kind"] == "exchange" for r in records),
        callbacks=len(callbacks),
        tasks=len(lives),
        replayed=len(answers.pairs),
        fixtures=fixtures,
    )
    recorded_shapes: dict[str, Shape] = defaultdict(dict)
    mock_shapes: dict[str, Shape] = defaultdict(dict)
    for r, status, reply in answers.pairs:
        body = r["response"]["body"]
        if (
            r.get("operation")
            and isinstance(body, dict)
            and body.get("code") == 0
            and r["response"]["status"] == 200
        ):
            shape(body, recorded_shapes[r["operation"]])
            if status == 200 and isinstance(reply, dict) and reply.get("code") == 0:
                shape(reply, mock_shapes[r["operation"]])
    diffs = _codes(answers.pairs, spec)
    for op, seen in sorted(recorded_shapes.items()):
        schema = _success_schema(spec, op)
        if schema is not None:
            declared = SchemaShape()
            schema_shape(spec, schema, declared)
            diffs += compare_to_schema(op, seen, declared)
        diffs += compare_shapes(op, seen, mock_shapes[op])
    if callbacks:
        seen = {}
        for c in callbacks:
            shape(c["body"], seen)
        declared = SchemaShape()
        schema_shape(spec, {"$ref": "#/components/schemas/CallbackPayload"}, declared)
        diffs += compare_to_schema("callback", seen, declared)
        mine: Shape = {}
        for body in answers.callbacks:
            shape(body, mine)
        if answers.callbacks:
            diffs += compare_shapes("callback", seen, mine)
        recorded_statuses = sorted({str(c["body"].get("task_status")) for c in callbacks})
        mock_statuses = sorted({str(b.get("task_status")) for b in answers.callbacks})
        if answers.callbacks and recorded_statuses != mock_statuses:
            diffs.append(
                Difference(
                    "callback-statuses",
                    "mock",
                    "callback",
                    "task_status",
                    f"{recorded_statuses}; the mock sends {mock_statuses}",
                )
            )
    defaults = Config()
    submitted = [d[0] for d in map(durations, lives.values()) if d[0] is not None]
    processing = [d[1] for d in map(durations, lives.values()) if d[1] is not None]
    for name, values, default_s, flag in (
        ("submitted", submitted, defaults.submit_delay_s, "--submit-delay"),
        ("processing", processing, defaults.processing_delay_s, "--processing-delay"),
    ):
        stats = phase_stats(name, values, round(default_s * 1000))
        if stats is None:
            continue
        report.phases.append(stats)
        if stats.max_ms - stats.min_ms > SPREAD * max(stats.p50_ms, 1):  # one delay is not enough
            report.suggested_options += [f"{flag}-dist", f"recorded:{path}"]
        else:
            report.suggested_options += [flag, f"{stats.p50_ms / 1000:g}"]
        if abs(stats.p50_ms - stats.mock_default_ms) > 0.2 * max(stats.mock_default_ms, 1):
            diffs.append(
                Difference(
                    "phase",
                    "mock",
                    "createLipSyncTask",
                    name,
                    f"p50 {stats.p50_ms} ms; the mock's default is {stats.mock_default_ms} ms",
                )
            )
    api = phase_stats(
        "api",
        [round(r["latency_ms"]) for r in records if isinstance(r.get("latency_ms"), int | float)],
        0,
    )
    if api is not None:
        report.phases.append(api)
        if api.p50_ms >= SLOW_API_MS:
            report.suggested_options += ["--api-latency", f"recorded:{path}"]
    for life in lives.values():
        if life.final:
            key = life.final["task_status"]
            report.outcomes[key] = report.outcomes.get(key, 0) + 1
    failed = [life for life in lives.values() if life.final.get("task_status") == "failed"]
    if failed:
        messages = sorted({status_msg(life.final) for life in failed})
        diffs.append(
            Difference(
                "outcome",
                "mock",
                "createLipSyncTask",
                "task_status",
                f"{len(failed)} of {len(lives)} tasks failed ({messages}); the mock "
                "succeeds every task unless a fixtures file says otherwise",
            )
        )
    if fixtures["outcomes"] or fixtures["videos"]:
        report.suggested_options += ["--fixtures", "FIXTURES.yaml (--fixtures-out)"]
    report.differences = diffs
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="FILE", help="a recording written by --record")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--fixtures-out",
        metavar="FILE",
        help="write a fixtures file reproducing the recorded media and outcomes",
    )


def run(args: argparse.Namespace) -> int:
    try:
        report = drift_report(args.recording)
    except RecordingError as exc:
        print(f"drift: {exc}", file=sys.stderr)
        return 2
    if args.fixtures_out:
        Path(args.fixtures_out).write_text(
            yaml.safe_dump(report.fixtures, sort_keys=False), encoding="utf-8"
        )
    print(report.to_json() if args.format == "json" else report.to_text())
    return 1 if report.differences else 0
