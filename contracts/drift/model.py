"""What a drift report holds: differences, phase statistics, the report itself."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("succeed", "failed")


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the recording differs; `against` is `spec` or `mock`."""

    kind: str  # field-added, field-missing, field-type, unknown-code, http-status, code, ...
    against: str
    operation: str  # an operationId, or `callback`
    where: str
    detail: str


@dataclass(frozen=True, slots=True)
class PhaseStats:
    """The recorded durations of one phase (ms) and the mock's default for it."""

    phase: str
    count: int
    min_ms: int
    p50_ms: int
    p90_ms: int
    max_ms: int
    mean_ms: float
    mock_default_ms: int


@dataclass(slots=True)
class DriftReport:
    records: int
    exchanges: int
    callbacks: int
    tasks: int
    replayed: int
    differences: list[Difference] = field(default_factory=list)
    phases: list[PhaseStats] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    suggested_options: list[str] = field(default_factory=list)
    fixtures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def to_text(self) -> str:
        lines = [
            f"drift: {self.records} records, {self.exchanges} exchanges, {self.callbacks} "
            f"callbacks, {self.tasks} tasks; {self.replayed} requests replayed against the mock",
            f"{len(self.differences)} differences",
        ]
        for d in self.differences:
            lines.append(f"  [{d.against}] {d.kind:<14} {d.operation} {d.where}: {d.detail}")
        for p in self.phases:
            lines.append(
                f"phase {p.phase}: n={p.count} min={p.min_ms} p50={p.p50_ms} p90={p.p90_ms} "
                f"max={p.max_ms} mean={p.mean_ms:.0f} ms (mock default {p.mock_default_ms} ms)"
            )
        if self.outcomes:
            lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.items()))
        if self.suggested_options:
            lines.append("to reproduce: lipsync-mock " + " ".join(self.suggested_options))
        return "\n".join(lines)
