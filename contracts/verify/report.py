"""verify's report: the kit's :class:`~contracts.report.Report` plus the stateful links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..report import Report


@dataclass(slots=True)
class VerifyReport(Report):
    """What :func:`contracts.verify.verify` found: one summary per check, in a stable order.

    >>> from contracts.report import CheckKind
    >>> report = VerifyReport("http://127.0.0.1:8000", seed=1)
    >>> report.check("rule:volume-range", CheckKind.RULE).cases += 3
    >>> report.ok, report.to_dict()["checks"][0]["cases"]
    (True, 3)
    >>> print(report.summary_table().splitlines()[0])
    check                          kind          cases  failures
    """

    command: ClassVar[str] = "verify"
    links: dict[str, list[int]] = field(default_factory=dict)
    """Stateful steps per OpenAPI link followed: [steps, steps answered 2xx]."""

    def _extra_dict(self) -> dict[str, Any]:
        return {
            "links": {
                link: {"steps": steps, "accepted": accepted}
                for link, (steps, accepted) in sorted(self.links.items())
            }
        }

    def _extra_lines(self) -> list[str]:
        lines = [""] if self.links else []
        for link, (steps, accepted) in sorted(self.links.items()):
            lines.append(f"stateful link {link}: {steps} steps, {accepted} answered 2xx")
        return lines
