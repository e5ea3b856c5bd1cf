"""Tests for contracts.verify: it passes against the real mock and names what broken mocks break."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from contracts.__main__ import main as contracts_main
from contracts.strategies import UNEXPRESSIBLE_RULES, resolve_spec
from contracts.verify import (
    KLING_CHECKS,
    SCHEMATHESIS_CHECKS,
    Credentials,
    VerifyOptions,
    add_arguments,
    verify,
)
from contracts.verify.checks.rules import MEDIA_RULES, TIME_RULES
from contracts.verify.control import control_api
from contracts.verify.media_server import MediaServer

ROOT = Path(__file__).resolve().parents[2]
SPEC = resolve_spec()
# Short phases so that tasks end within the run.
MOCK_OPTIONS = ["--submit-delay", "0.2", "--processing-delay", "0.3", "--log-level", "warning"]
# The account's Standard Webhooks secret, given to the mock and to verify.
WEBHOOK_SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="


def free_port() -> int:
    # Not `--port 0`: the socket the mock then binds itself skips TCP_NODELAY (see the report).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running(module: list[str], tmp_path: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """`python -m <module...>` serving a mock on 127.0.0.1; yields its base URL."""
    log = tmp_path / "mock.log"
    url = f"http://127.0.0.1:{free_port()}"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                *module,
                "--port",
                url.rsplit(":", 1)[1],
                *MOCK_OPTIONS,
                *extra,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(process, log, url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], log: Path, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the mock exited: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/openapi.json", timeout=1, trust_env=False).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"the mock did not start: {log.read_text()}")


@pytest.mark.slow
class TestVerifyAgainstTheMock:
    def test_command_line_run_passes_with_every_check_exercised(self, tmp_path: Path) -> None:
        """`python -m contracts verify` exits 0 against the mock and reports every check."""
        report_file, junit_file = tmp_path / "report.json", tmp_path / "junit.xml"
        with running(["mock_server"], tmp_path, ["--webhook-secret", WEBHOOK_SECRET]) as url:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "contracts",
                    "verify",
                    "--base-url",
                    url,
                    "--seed",
                    "1",
                    "--max-examples",
                    "5",
                    "--report",
                    "json",
                    "--report-file",
                    str(report_file),
                    "--junit-xml",
                    str(junit_file),
                    "--webhook-secret",
                    WEBHOOK_SECRET,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert result.returncode == 0, result.stderr[-4000:]
        report = json.loads(report_file.read_text())
        assert report["ok"] and report["failures"] == 0 and not report["errors"]
        checks = {c["name"]: c for c in report["checks"]}
        for name in (*SCHEMATHESIS_CHECKS, *KLING_CHECKS):
            assert checks[name]["cases"] > 0 and not checks[name]["skipped"], name
        # Two tasks' callbacks, three statuses each, every one signed.
        assert checks["callback_signature"]["cases"] >= 6, checks["callback_signature"]
        # Every rule, the time and media ones included (the mock is on loopback).
        for rule in SPEC.rules:
            summary = checks[f"rule:{rule}"]
            assert summary["cases"] > 0 and not summary["skipped"], rule
        for rule in TIME_RULES:  # 1 ms before the boundary, then at it
            assert checks[f"rule:{rule}"]["cases"] >= 2, rule
        assert any("moved the mock's clock" in note for note in report["notes"]), report
        accepted = {link.split(" ")[0]: n["accepted"] for link, n in report["links"].items()}
        assert accepted.get("CreateTaskFromSession", 0) > 0, report["links"]
        assert accepted.get("GetTaskById", 0) > 0, report["links"]
        suite = ET.parse(junit_file).getroot().find("testsuite")
        assert suite is not None and suite.get("failures") == "0"
        assert len(suite.findall("testcase")) == len(checks)
        assert "verify: OK" in result.stderr and "[verify] schemathesis: stateful" in result.stderr


@pytest.mark.slow
class TestVerifyCatchesBrokenMocks:
    @pytest.mark.parametrize(
        ("variant", "expected", "with_schemathesis"),
        [
            ("sound-duration-1900", {"rule:sound-duration"}, False),
            ("overlap-1000", {"rule:insert-face-overlap"}, False),
            ("sessions-never-expire", {"rule:session-valid"}, False),
            (
                "succeeded",
                {"response_schema_conformance", "task_lifecycle", "kling_task_fields"},
                False,
            ),
            (
                "not-found-400",
                {"kling_error_mapping", "positive_data_acceptance", "rule:task-exists"},
                True,
            ),
            # The time rule reads a result's end from `updated_at`: in seconds it is long past.
            ("timestamps-in-seconds", {"kling_timestamps", "rule:video-id-recent"}, False),
            ("updated-before-created", {"kling_timestamps"}, False),
            ("result-duration-in-ms", {"kling_durations"}, False),
            ("faces-in-seconds", {"kling_face_intervals"}, False),
            ("units-before-success", {"kling_task_fields"}, False),
            ("request-id-reused", {"kling_ids"}, False),
            ("parent-url-rewritten", {"kling_task_fields"}, False),
            ("callback-without-updated-at", {"callback_schema"}, False),
            ("callback-stale-processing", {"callback_order"}, False),
            ("callback-wrong-signature", {"callback_signature"}, False),
            ("callback-processing-not-sent", {"callback_announced"}, False),
        ],
    )
    def test_exactly_the_broken_rule_or_check_is_reported(
        self, tmp_path: Path, variant: str, expected: set[str], with_schemathesis: bool
    ) -> None:
        """Each deliberately broken mock fails the check that covers the break, and no other."""
        module = ["tests.contracts.broken_mock", variant]
        with running(module, tmp_path, ["--webhook-secret", WEBHOOK_SECRET]) as url:
            options = VerifyOptions(
                url,
                Credentials.mock_defaults(),
                max_examples=4,
                seed=2,
                poll_timeout_s=10,
                schemathesis=with_schemathesis,
                webhook_secret=WEBHOOK_SECRET,
            )
            report = verify(options)
        assert not report.errors, report.errors
        assert set(report.failed_checks()) == expected, report.summary_table()

    def test_seconds_pass_without_the_unit_checks(self, tmp_path: Path) -> None:
        """Without the control API (as against the real service) only kling_timestamps sees a
        server that writes timestamps in seconds: every other check passes it."""
        with running(["tests.contracts.broken_mock", "timestamps-in-seconds"], tmp_path) as url:
            options = VerifyOptions(
                url,
                Credentials.mock_defaults(),
                max_examples=4,
                seed=2,
                poll_timeout_s=10,
                schemathesis=True,
                control_api=False,
            )
            report = verify(options)
        assert not report.errors, report.errors
        assert report.failed_checks() == ["kling_timestamps"], report.summary_table()


class TestRulesNeedingTimeOrMedia:
    def test_they_are_the_unexpressible_rules_but_the_raw_request_ones(self) -> None:
        """The time and media rules are exactly the rules no request body can break alone."""
        assert set(TIME_RULES) | set(MEDIA_RULES) == set(UNEXPRESSIBLE_RULES) - {
            "body-json",
            "body-size",
            "callback-url-not-self",  # verify sends the target's own address itself
        }

    def test_no_control_api_for_a_remote_target_by_default(self) -> None:
        """A non-loopback target's clock is never moved unless asked, and the reason says so."""
        options = VerifyOptions("https://api-singapore.klingai.com", Credentials(api_key="k"))
        admin, reason = control_api(options)
        assert admin is None and "not on loopback" in reason

    def test_no_control_api_when_turned_off(self) -> None:
        """`control_api=False` keeps verify off the control API even on loopback."""
        options = VerifyOptions("http://127.0.0.1:9", Credentials(api_key="k"), control_api=False)
        admin, reason = control_api(options)
        assert admin is None and "--no-control-api" in reason

    def test_no_control_api_when_the_target_has_none(self) -> None:
        """A loopback target that does not answer GET /__admin/clock gets the time rules skipped."""
        options = VerifyOptions("http://127.0.0.1:9", Credentials(api_key="k"), request_timeout_s=2)
        admin, reason = control_api(options)
        assert admin is None and "no control API" in reason

    def test_media_server_streams_an_oversize_response(self) -> None:
        """The oversize URL announces and streams limit + 1 zero bytes."""
        server = MediaServer()
        try:
            size = int(SPEC.rules["video-size"].boundary) + 1
            with httpx.stream("GET", server.oversize(size), trust_env=False) as response:
                assert response.headers["content-length"] == str(size)
                first = next(response.iter_bytes())
                assert first and not any(first)
            assert httpx.get(server.base_url + "/nothing.mp4", trust_env=False).status_code == 404
        finally:
            server.close()


class TestCommandLine:
    def test_control_api_flags(self) -> None:
        """`--use-control-api` and `--no-control-api` set the option; without them it is auto."""
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        base = ["--base-url", "http://x"]
        assert parser.parse_args(base).control_api is None
        assert parser.parse_args([*base, "--use-control-api"]).control_api is True
        assert parser.parse_args([*base, "--no-control-api"]).control_api is False

    def test_unreachable_server_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A server nobody answers for is a run that could not start, not a contract failure."""
        status = contracts_main(
            ["verify", "--base-url", "http://127.0.0.1:9", "--api-key", "k", "--quiet"]
        )
        assert status == 2
        assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().out

    def test_half_a_key_pair_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An access key without its secret key is refused before anything is sent."""
        status = contracts_main(["verify", "--base-url", "http://x", "--access-key", "ak"])
        assert status == 2
        assert "secret key" in capsys.readouterr().err
