"""What every check family shares: the run's context, the session it works on, drawing values."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from mock_server.admin_client import AdminClient
from mock_server.spec import Rule

from ... import strategies
from ...report import CheckFailure, CheckKind
from ..control import ClockMover
from ..media_server import MediaServer
from ..target import Answer, Target, summarise
from .units import UnitChecks

T = TypeVar("T")
Progress = Callable[[str], None]

IDENTIFY = "POST /v1/videos/identify-face"
CREATE = "POST /v1/videos/advanced-lip-sync"
QUERY = "GET /v1/videos/advanced-lip-sync/{id}"
LIST = "GET /v1/videos/advanced-lip-sync"
TTS = "POST /v1/audio/tts"


@dataclass(slots=True)
class Session:
    """What identify-face returned, plus what a first task told about the video."""

    session_id: str
    faces: list[dict[str, Any]]
    video_url: str
    video_ms: int | None = None
    task_id: str | None = None
    external_task_id: str | None = None


class Context:
    """One run's target, report, options and seeds, and the verdicts every family records."""

    def __init__(
        self,
        target: Target,
        seed: int,
        progress: Progress,
        admin: AdminClient | None = None,
        no_clock: str = "needs time to pass on the server (no control API)",
    ) -> None:
        self.t = target
        self.clock = ClockMover(admin) if admin is not None else None
        self.no_clock = no_clock
        self.media: MediaServer | None = None
        self.spec = target.spec
        self.report = target.report
        self.options = target.options
        self.seed = seed
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:12]
        self.sound_file = self.options.sound_file or strategies.audio_base64(
            self.options.sound_duration_ms
        )
        self.audio_ms = self.options.sound_duration_ms
        self.units = UnitChecks(self.spec, self.report)
        self._seq = 0

    def next_seed(self) -> int:
        """A new seed for each draw, all derived from the run's seed."""
        self._seq += 1
        return (self.seed + self._seq * 7919) % (2**32)

    def draw(self, strategy: st.SearchStrategy[T], count: int) -> list[T]:
        """``count`` values of a strategy, reproducible from the run's seed."""
        return draw(strategy, count, self.next_seed())

    def media_server(self) -> MediaServer:
        if self.media is None:
            self.media = MediaServer()
        return self.media

    def close(self) -> None:
        if self.media is not None:
            self.media.close()
            self.media = None

    # verdicts

    def accepted(self, operation_id: str, label: str, request: Any, answer: Answer) -> bool:
        """``valid_requests_accepted``: a valid request must get code 0 with HTTP 200."""
        failure = None
        if answer.http_status != 200 or answer.code != 0:
            reason = f"a valid {operation_id} request was refused"
            failure = answer.failure("valid_requests_accepted", label, reason, summarise(request))
        self.report.record("valid_requests_accepted", CheckKind.KLING, failure)
        return failure is None

    def refused(self, rule: Rule, label: str, request: Any, answer: Answer) -> None:
        """``rule:<id>``: a request breaking the rule gets its code, HTTP status and name."""
        expected_http = self.spec.http_status[rule.code]
        reason = None
        if answer.http_status < 400:
            reason = f"accepted (HTTP {answer.http_status}); rule {rule.id} must refuse it"
        elif answer.http_status != expected_http or answer.code != rule.code:
            reason = (
                f"refused with HTTP {answer.http_status} code {answer.code}; rule {rule.id} "
                f"is code {rule.code} with HTTP {expected_http}"
            )
        elif answer.named_rules and rule.id not in answer.named_rules:
            reason = f"refused for rule {', '.join(answer.named_rules)} instead of {rule.id}"
        self._rule_case(rule, label, request, answer, reason)

    def kept(self, rule: Rule, label: str, request: Any, answer: Answer, where: str) -> None:
        """A request on the allowed side of a rule's boundary must be accepted."""
        reason = None
        if answer.http_status != 200 or answer.code != 0:
            reason = f"refused {where}; rule {rule.id} allows it"
        self._rule_case(rule, label, request, answer, reason)

    def _rule_case(
        self, rule: Rule, label: str, request: Any, answer: Answer, reason: str | None
    ) -> None:
        name = f"rule:{rule.id}"
        failure = (
            None if reason is None else answer.failure(name, label, reason, summarise(request))
        )
        self.report.record(name, CheckKind.RULE, failure)

    def skip_rule(self, rule_id: str, reason: str) -> None:
        self.report.skip(f"rule:{rule_id}", CheckKind.RULE, reason)

    def case(
        self, check: str, label: str, request: str, answer: Answer | None, problem: str | None
    ) -> None:
        """One case of one of our checks, failed when ``problem`` says why."""
        failure = None
        if problem:
            failure = (
                answer.failure(check, label, problem, request)
                if answer is not None
                else CheckFailure(check, label, problem, request)
            )
        self.report.record(check, CheckKind.KLING, failure)


def draw(strategy: st.SearchStrategy[T], count: int, seed: int) -> list[T]:
    """``count`` values of a strategy, reproducible from the seed, without shrinking."""
    drawn: list[T] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]
