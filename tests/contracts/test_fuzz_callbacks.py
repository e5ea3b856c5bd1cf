"""fuzz-callbacks: the example receiver passes; each weak-receiver flaw fails its own check."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.fuzz_callbacks import FuzzOptions, fuzz_asgi, fuzz_url, fuzz_wsgi, main
from examples.kling_client import CallbackReceiver
from examples.weak_receiver import weak_receiver

SECRET = "whsec_dGVzdHNlY3JldGtleWZvcmZ1enppbmc="
OPTIONS = FuzzOptions(secret=SECRET, examples=25)
ALL_CHECKS = {
    "valid-accepted",
    "answers-in-time",
    "bad-signature-refused",
    "malformed-refused",
    "oversized-handled",
    "unknown-task-not-5xx",
    "newest-status-held",
}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """The example client's receiver, verifying the fuzzer's secret, on a free port."""
    with CallbackReceiver(SECRET) as rx:
        yield rx


class TestTheExampleReceiver:
    def test_passes_every_check_over_http(self, receiver: CallbackReceiver) -> None:
        """The example receiver, fuzzed over HTTP with its state URL, holds all seven checks."""
        started = time.perf_counter()
        report = fuzz_url(receiver.url, OPTIONS, receiver.state_url)
        elapsed = time.perf_counter() - started
        print(
            f"example receiver: {report.sequences} sequences, {report.deliveries} deliveries, "
            f"{report.cases} cases in {elapsed:.1f} s"
        )
        assert report.ok, report.summary_table()
        assert set(report.checks) == ALL_CHECKS
        assert all(c.cases > 0 for c in report.checks.values())
        assert elapsed < 60

    def test_cli_exits_0_and_writes_html(self, receiver: CallbackReceiver, tmp_path: Path) -> None:
        """The command line on the example receiver exits 0; its HTML page is self-contained."""
        page = tmp_path / "fuzz.html"
        argv = ["--url", receiver.url, "--secret", SECRET, "--state-url", receiver.state_url]
        assert main([*argv, "--examples", "5", "--report", "html", "-o", str(page)]) == 0
        text = page.read_text()
        assert "OK:" in text and "newest-status-held" in text
        assert "<script" not in text and "http" not in text.split("<body>")[0]


def failed_checks(**flaws: bool) -> tuple[list[str], Any]:
    """The checks the weak receiver fails with these flaws, and the report."""
    app = weak_receiver(SECRET, **flaws)
    report = fuzz_asgi(app, "/callback", OPTIONS, state=lambda: dict(app.state.held))
    return report.failed_checks(), report


class TestTheWeakReceiver:
    def test_without_flaws_it_passes(self) -> None:
        """With every flaw off, the weak receiver passes: the failures below are the flaws'."""
        checks, report = failed_checks()
        assert checks == [], report.summary_table()

    @pytest.mark.parametrize(
        ("flaw", "check"),
        [
            ("trust_signatures", "bad-signature-refused"),
            ("last_write_wins", "newest-status-held"),
            ("crash_on_bad_json", "malformed-refused"),
        ],
    )
    def test_each_flaw_fails_its_own_check(self, flaw: str, check: str) -> None:
        """One flaw fails exactly one check, and the shrunk sequence is printed as curl."""
        checks, report = failed_checks(**{flaw: True})
        assert checks == [check], report.summary_table()
        shortest = report.checks[check].examples[0]
        assert shortest.operation.startswith("shortest sequence")
        assert shortest.request.startswith("curl ") or " | curl " in shortest.request
        print(f"{flaw}: {shortest.operation}: {shortest.reason}")

    def test_late_processing_shrinks_to_two_deliveries(self) -> None:
        """Last-write-wins shrinks to two deliveries of one task, the newer status first."""
        _, report = failed_checks(last_write_wins=True)
        shortest = report.checks["newest-status-held"].examples[0]
        assert "(2 deliveries" in shortest.operation
        assert shortest.request.count("curl ") == 2

    def test_all_three_flaws_are_named(self) -> None:
        """The fully weak receiver fails the three checks, and only those."""
        checks, _ = failed_checks(
            trust_signatures=True, last_write_wins=True, crash_on_bad_json=True
        )
        assert set(checks) == {"bad-signature-refused", "newest-status-held", "malformed-refused"}


def wsgi_always_ok(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI receiver that answers 200 to anything."""
    environ["wsgi.input"].read()
    start_response("200 OK", [("content-length", "0")])
    return [b""]


class TestTargets:
    def test_wsgi_app_in_process(self) -> None:
        """A WSGI app that accepts everything fails malformed-refused; signatures not exercised."""
        report = fuzz_wsgi(wsgi_always_ok, "/cb", FuzzOptions(examples=5, shrink=False))
        assert report.failed_checks() == ["malformed-refused"]
        assert report.checks["bad-signature-refused"].skipped == "no --secret given"
        assert json.loads(report.to_json())["deliveries"] == report.deliveries

    def test_only_loopback_urls(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A receiver off this machine is refused in one line, exit 2, nothing sent."""
        assert main(["--url", "http://192.0.2.1/cb", "--examples", "0"]) == 2
        assert "only to this machine" in capsys.readouterr().err

    def test_a_hanging_receiver_fails_answers_in_time(self) -> None:
        """An ASGI app that never answers within the timeout fails answers-in-time."""
        import asyncio

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(1)

        options = FuzzOptions(examples=0, timeout_s=0.05, shrink=False)
        started = time.perf_counter()
        report = fuzz_asgi(slow, "/", options)
        assert "answers-in-time" in report.failed_checks()
        assert time.perf_counter() - started < 0.05 * report.deliveries + 5


class TestReports:
    def test_junit_has_a_case_per_check(self) -> None:
        """The JUnit report has one test case per check; the failed one carries its reason."""
        app = weak_receiver(crash_on_bad_json=True)
        report = fuzz_asgi(app, "/callback", FuzzOptions(examples=0, shrink=False))
        xml = report.junit_xml()
        assert xml.count("<testcase ") == 7
        assert 'name="malformed-refused"><failure message="body' in xml
        assert "<skipped" in xml  # no secret, no state: two checks not exercised

    def test_a_receiver_that_is_down_is_one_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Nothing listening: one error line naming the connection failure, exit 1, no fuzzing."""
        gone = CallbackReceiver().start()
        gone.stop()
        assert main(["--url", gone.url]) == 1
        out = capsys.readouterr().out
        assert "ERROR the receiver never answered: ConnectError" in out
