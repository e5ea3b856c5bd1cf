"""check-client: each kind of bad client behaviour in a journal gives its exact finding."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.check_client import (
    Check,
    CheckOptions,
    Finding,
    Severity,
    TimeSource,
    check_journal,
    main,
    render_text,
)
from mock_server.domain.errors import ApiError
from mock_server.spec import load_spec
from mock_server.testing import MockServer

CREATE = "/v1/videos/advanced-lip-sync"
TASK = "/v1/videos/advanced-lip-sync/851027346193289226"
ACCOUNT = "mock-access-key"
SPEC = load_spec()


def entry(seq: int, **fields: Any) -> dict[str, Any]:
    """A journal entry as `GET /__admin/journal` returns it: a successful task query."""
    base: dict[str, Any] = {
        "seq": seq,
        "wall_ms": 1_000_000 + seq * 10_000,
        "clock_ms": 5_000_000 + seq * 10_000,
        "method": "GET",
        "path": TASK,
        "query": "",
        "operation": "getLipSyncTask",
        "account": ACCOUNT,
        "auth": "api_key",
        "token_lifetime_s": None,
        "body": None,
        "http_status": 200,
        "code": 0,
        "request_id": f"req-{seq}",
        "latency_ms": 1.0,
    }
    base.update(fields)
    return base


def face(**overrides: Any) -> dict[str, Any]:
    fc: dict[str, Any] = {
        "face_id": "0",
        "sound_file": "https://example.com/voice.mp3",
        "sound_start_time": 0,
        "sound_end_time": 3000,
        "sound_insert_time": 0,
    }
    fc.update(overrides)
    return fc


def create(seq: int, code: int = 0, body: Any = "default", **fields: Any) -> dict[str, Any]:
    """A create-task entry; `body` defaults to a valid one."""
    if body == "default":
        body = {"session_id": "850508686686064678", "face_choose": [face()]}
    return entry(
        seq,
        method="POST",
        path=CREATE,
        operation="createLipSyncTask",
        body=body,
        code=code,
        http_status={0: 200, 5001: 503, 1301: 400}.get(code, 400),
        **fields,
    )


def only(findings: list[Finding], check: Check) -> list[Finding]:
    return [f for f in findings if f.check is check]


class TestCleanJournal:
    def test_a_well_behaved_journal_has_no_findings(self) -> None:
        """Identify, create and polls 5 s apart, all answered 0, give nothing to report."""
        journal = [
            entry(
                1,
                method="POST",
                path="/v1/videos/identify-face",
                operation="identifyFace",
                body={"video_url": "https://example.com/a.mp4"},
            ),
            create(2),
            entry(3),
            entry(4),
            entry(5, method="GET", path=CREATE, operation="listLipSyncTasks", query="pageSize=5"),
        ]
        assert check_journal(journal) == []

    def test_server_side_codes_are_not_the_clients_fault(self) -> None:
        """Answers 5001, 1302 and 1101 (outage, rate limit, arrears) are not reported."""
        journal = [entry(1, code=5001), entry(2, code=1302), entry(3, code=1101)]
        assert check_journal(journal) == []


class TestSpecViolations:
    def test_out_of_range_volume_names_field_and_rule(self) -> None:
        """A volume above 2 is a spec violation of rule volume-range at its field."""
        body = {"session_id": "1", "face_choose": [face(sound_volume=2.5)]}
        findings = only(check_journal([create(1, 1201, body)]), Check.SPEC_VIOLATION)
        assert findings == [
            Finding(
                1,
                "POST",
                CREATE,
                Check.SPEC_VIOLATION,
                Severity.ERROR,
                "face_choose[0].sound_volume: 2.5 is greater than the maximum of 2 "
                "(rule volume-range)",
                rule="volume-range",
                field="face_choose[0].sound_volume",
            )
        ]

    def test_every_violation_of_a_body_is_reported(self) -> None:
        """Two broken fields and a missing one give three findings, not just the first."""
        broken = face(sound_volume=3, original_audio_volume=-1)
        del broken["sound_insert_time"]
        body = {"session_id": "1", "face_choose": [broken]}
        fields = {
            f.field for f in only(check_journal([create(1, 1201, body)]), Check.SPEC_VIOLATION)
        }
        assert fields == {
            "face_choose[0].sound_volume",
            "face_choose[0].original_audio_volume",
            "face_choose[0].sound_insert_time",
        }

    def test_every_violation_names_the_rule_the_mock_names(self) -> None:
        """A time sent as a string breaks no rule (times-non-negative is about `minimum`), even
        when it is not the first violation: check-client names the rule the mock would."""
        broken = face(sound_volume=3, sound_start_time="0")
        body = {"session_id": "1", "face_choose": [broken]}
        rules = {
            f.field: f.rule
            for f in only(check_journal([create(1, 1201, body)]), Check.SPEC_VIOLATION)
        }
        assert rules == {
            "face_choose[0].sound_volume": "volume-range",
            "face_choose[0].sound_start_time": None,
        }
        # The mock answers the same way for each violation alone.
        for name, rule in (("sound_volume", "volume-range"), ("sound_start_time", None)):
            alone = face(**{name: broken[name]})
            with pytest.raises(ApiError) as refused:
                SPEC.validate_body(
                    "createLipSyncTask", "CreateTaskRequest", {**body, "face_choose": [alone]}
                )
            assert refused.value.rule == rule

    def test_summarised_long_strings_keep_their_length(self) -> None:
        """A 1500-character TTS text, summarised in the journal, still breaks tts-text-length."""
        body = {"text": "<base64 1500 chars>", "voice_id": "uk_boy1", "voice_language": "en"}
        tts = entry(1, method="POST", path="/v1/audio/tts", operation="createTts", body=body)
        (finding,) = only(check_journal([tts]), Check.SPEC_VIOLATION)
        assert (finding.rule, finding.field) == ("tts-text-length", "text")

    def test_query_parameters_are_checked(self) -> None:
        """pageSize=501 breaks page-size-range."""
        listing = entry(
            1, path=CREATE, operation="listLipSyncTasks", query="pageNum=1&pageSize=501"
        )
        (finding,) = only(check_journal([listing]), Check.SPEC_VIOLATION)
        assert (finding.rule, finding.field) == ("page-size-range", "pageSize")


class TestRefusals:
    def test_rule_refusal_reports_code_status_and_rule(self) -> None:
        """A 1201 answer is reported with its HTTP status, explanation and the broken rule."""
        body = {"session_id": "1", "face_choose": [face(sound_volume=2.5)]}
        (finding,) = only(check_journal([create(1, 1201, body)]), Check.REFUSED)
        assert finding.code == 1201 and finding.rule == "volume-range"
        assert finding.message == (
            "answered 1201 (HTTP 400, Invalid parameters (incorrect key or illegal value)) "
            "(rule volume-range)"
        )

    def test_domain_refusal_without_schema_rule(self) -> None:
        """A 1203 on a task query is reported even though no schema rule explains it."""
        (finding,) = check_journal([entry(1, code=1203, http_status=404)])
        assert (finding.check, finding.code, finding.rule) == (Check.REFUSED, 1203, None)

    def test_auth_refusal_is_reported(self) -> None:
        """An expired token (1004) is the client's fault."""
        (finding,) = check_journal([entry(1, code=1004, http_status=401, account=None, auth=None)])
        assert (finding.check, finding.code) == (Check.REFUSED, 1004)

    def test_ignored_codes_are_not_reported(self) -> None:
        """Codes a test injected on purpose can be left out of the refusals."""
        options = CheckOptions(ignore_codes=frozenset({1203}))
        assert check_journal([entry(1, code=1203, http_status=404)], options) == []


class TestSecondsForMilliseconds:
    def test_times_in_seconds_are_flagged(self) -> None:
        """start 0, end 5, insert 1 look like seconds: one finding naming the face."""
        body = {
            "session_id": "1",
            "face_choose": [face(sound_start_time=0, sound_end_time=5, sound_insert_time=1)],
        }
        (finding,) = only(check_journal([create(1, 1201, body)]), Check.SECONDS_FOR_MS)
        assert finding.field == "face_choose[0]" and finding.severity is Severity.ERROR
        assert "multiply by 1000" in finding.message

    def test_millisecond_times_are_not_flagged(self) -> None:
        """Small but millisecond-sized values (a 2 s crop at 50 ms) are not flagged."""
        body = {
            "session_id": "1",
            "face_choose": [face(sound_start_time=50, sound_end_time=2050, sound_insert_time=0)],
        }
        assert only(check_journal([create(1, 0, body)]), Check.SECONDS_FOR_MS) == []


class TestPolling:
    def test_polling_one_task_too_fast_is_flagged(self) -> None:
        """A second query of the same task 500 ms later breaks the 1 s interval."""
        journal = [entry(1, wall_ms=10_000), entry(2, wall_ms=10_500)]
        (finding,) = check_journal(journal)
        assert (finding.seq, finding.check) == (2, Check.POLL_TOO_FAST)
        assert finding.message.startswith("polled 500 ms after seq 1 (wall time)")

    def test_interval_is_configurable(self) -> None:
        """With --min-poll-interval 5, polls 3 s apart are too fast; 1 s passes by default."""
        journal = [entry(1, wall_ms=10_000), entry(2, wall_ms=13_000)]
        assert check_journal(journal) == []
        slow = CheckOptions(min_poll_interval_s=5)
        assert [f.check for f in check_journal(journal, slow)] == [Check.POLL_TOO_FAST]

    def test_different_tasks_do_not_count(self) -> None:
        """Querying two different tasks back to back is not polling too fast."""
        journal = [entry(1, wall_ms=10_000), entry(2, wall_ms=10_001, path=TASK + "7")]
        assert check_journal(journal) == []

    def test_clock_time_source_reads_the_mocks_clock(self) -> None:
        """With the clock source, a run that advanced a manual clock 5 s between polls passes."""
        journal = [
            entry(1, wall_ms=10_000, clock_ms=0),
            entry(2, wall_ms=10_003, clock_ms=5_000),
        ]
        assert len(check_journal(journal)) == 1
        assert check_journal(journal, CheckOptions(time_source=TimeSource.CLOCK)) == []


class TestRetries:
    def test_resending_after_1201_is_flagged(self) -> None:
        """The same create resent after a 1201 is a retry of a non-retryable code."""
        body = {"session_id": "1", "face_choose": [face(face_id="9")]}
        journal = [create(1, 1201, body), create(2, 1201, body)]
        (finding,) = only(check_journal(journal), Check.RETRIED_NON_RETRYABLE)
        assert (finding.seq, finding.code) == (2, 1201)
        assert "seq 1" in finding.message and "1302, 1303, 5000, 5001, 5002" in finding.message

    def test_resending_after_retryable_codes_is_fine(self) -> None:
        """Resends after 1302, 1303, 5000, 5001 and 5002 are what a client should do."""
        journal = [create(i + 1, code) for i, code in enumerate([1302, 1303, 5000, 5001, 5002])]
        journal.append(create(6))
        assert only(check_journal(journal), Check.RETRIED_NON_RETRYABLE) == []

    def test_resend_of_a_body_refused_before_reading(self) -> None:
        """An injected 1301 (body not journaled) followed at once by the same create is flagged."""
        journal = [create(1, 1301, body=None), create(2)]
        (finding,) = only(check_journal(journal), Check.RETRIED_NON_RETRYABLE)
        assert (finding.seq, finding.code) == (2, 1301)

    def test_later_unrelated_create_after_unknown_body_is_not_a_retry(self) -> None:
        """After a refused create, identify-face then create is a new job, not a retry."""
        identify = entry(
            2,
            method="POST",
            path="/v1/videos/identify-face",
            operation="identifyFace",
            body={"video_url": "https://example.com/b.mp4"},
        )
        journal = [create(1, 1301, body=None), identify, create(3)]
        assert only(check_journal(journal), Check.RETRIED_NON_RETRYABLE) == []

    def test_query_retried_after_1203_is_flagged(self) -> None:
        """Asking again for a task that does not exist is a non-retryable retry."""
        journal = [entry(1, code=1203, http_status=404), entry(2, code=1203, http_status=404)]
        (finding,) = only(check_journal(journal), Check.RETRIED_NON_RETRYABLE)
        assert finding.seq == 2

    def test_refreshed_credentials_are_not_a_retry(self) -> None:
        """After 1004, a resend that authenticates is a client fixing its token."""
        journal = [entry(1, code=1004, http_status=401, account=None, auth=None), entry(2)]
        assert only(check_journal(journal), Check.RETRIED_NON_RETRYABLE) == []

    def test_same_bad_credentials_again_are_flagged(self) -> None:
        """After 1004, resending with a token that fails again is a pointless retry."""
        bad = {"code": 1004, "http_status": 401, "account": None, "auth": None}
        journal = [entry(1, **bad), entry(2, **bad)]
        (finding,) = only(check_journal(journal), Check.RETRIED_NON_RETRYABLE)
        assert (finding.seq, finding.code) == (2, 1004)


class TestTokensAndExternalIds:
    def test_long_lived_token_is_a_warning(self) -> None:
        """A JWT valid for an hour gets a token-lifetime warning, not an error."""
        (finding,) = check_journal([entry(1, auth="jwt", token_lifetime_s=3600)])
        assert (finding.check, finding.severity) == (Check.TOKEN_LIFETIME, Severity.WARNING)
        assert finding.message.startswith("the JWT is valid for 3600 s")

    def test_documented_token_is_fine(self) -> None:
        """exp = now + 1800, nbf = now - 5 (1805 s) is the documented sample."""
        assert check_journal([entry(1, auth="jwt", token_lifetime_s=1805)]) == []

    def test_reused_external_task_id_is_flagged(self) -> None:
        """A second create with the external_task_id of a created task is flagged."""
        body = {"session_id": "1", "face_choose": [face()], "external_task_id": "order-42"}
        journal = [create(1, 0, body), create(2, 1201, body)]
        (finding,) = only(check_journal(journal), Check.EXTERNAL_ID_REUSED)
        assert (finding.seq, finding.rule, finding.field) == (
            2,
            "external-task-id-unique",
            "external_task_id",
        )

    def test_resend_after_failed_create_is_not_reuse(self) -> None:
        """A create refused with 5001 created nothing; resending its id is fine."""
        body = {"session_id": "1", "face_choose": [face()], "external_task_id": "order-43"}
        journal = [create(1, 5001, body), create(2, 0, body)]
        assert check_journal(journal) == []


@pytest.fixture
def journal_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "journal.json"
    yield path


class TestCommandLine:
    def test_clean_journal_exits_0(
        self, journal_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A journal without findings exits 0 and says so."""
        journal_file.write_text(json.dumps([entry(1)]))
        assert main(["--journal", str(journal_file)]) == 0
        assert capsys.readouterr().out == "check-client: 1 request, 0 errors, 0 warnings\n"

    def test_errors_exit_1_with_a_table(
        self, journal_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An error finding exits 1; the table names seq, request, severity and check."""
        journal_file.write_text(json.dumps([entry(1, wall_ms=0), entry(2, wall_ms=10)]))
        assert main(["--journal", str(journal_file)]) == 1
        out = capsys.readouterr().out
        assert out.splitlines()[0].split() == ["seq", "request", "severity", "check", "finding"]
        assert f"2    GET {TASK}  error     poll-too-fast" in out
        assert out.endswith("check-client: 2 requests, 1 error, 0 warnings\n")

    def test_warnings_exit_0_unless_asked(self, journal_file: Path) -> None:
        """A warning alone exits 0, and 1 with --fail-on warning."""
        journal_file.write_text(json.dumps([entry(1, auth="jwt", token_lifetime_s=7200)]))
        assert main(["--journal", str(journal_file)]) == 0
        assert main(["--journal", str(journal_file), "--fail-on", "warning"]) == 1

    def test_json_report(self, journal_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--report json prints counts and every finding as an object."""
        envelope = {"code": 0, "message": "SUCCEED", "data": [entry(1, code=1203, http_status=404)]}
        journal_file.write_text(json.dumps(envelope))  # the saved /__admin/journal answer
        assert main(["--journal", str(journal_file), "--report", "json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert (report["requests"], report["errors"], report["warnings"]) == (1, 1, 0)
        assert report["findings"][0]["check"] == "refused"
        assert report["findings"][0]["code"] == 1203

    def test_junit_xml(self, journal_file: Path, tmp_path: Path) -> None:
        """--junit-xml writes one test case per request, failing those with errors."""
        journal_file.write_text(json.dumps([entry(1), entry(2, code=1203, http_status=404)]))
        xml = tmp_path / "out.xml"
        main(["--journal", str(journal_file), "--junit-xml", str(xml)])
        suite = ET.parse(xml).getroot()
        assert (suite.tag, suite.get("tests"), suite.get("failures")) == ("testsuite", "2", "1")
        cases = suite.findall("testcase")
        assert [c.find("failure") is None for c in cases] == [True, False]
        failure = cases[1].find("failure")
        assert failure is not None and failure.get("type") == "refused"

    def test_unreadable_journal_exits_2(
        self, journal_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file that is not a journal exits 2 with a message on stderr."""
        journal_file.write_text('{"not": "a journal"}')
        assert main(["--journal", str(journal_file)]) == 2
        assert "cannot read the journal" in capsys.readouterr().err

    def test_contracts_command_dispatches(self, journal_file: Path) -> None:
        """`python -m contracts check-client` runs the same command."""
        from contracts.__main__ import main as contracts_main

        journal_file.write_text(json.dumps([entry(1, code=1203, http_status=404)]))
        assert contracts_main(["check-client", "--journal", str(journal_file)]) == 1

    def test_render_text_lists_findings(self) -> None:
        """The text table has a header, a rule line and one row per finding."""
        findings = check_journal([entry(1, code=1203, http_status=404)])
        lines = render_text(findings, 1).splitlines()
        assert lines[0].startswith("seq") and set(lines[1]) <= {"-", " "}
        assert lines[2].startswith("1    GET") and lines[-1].endswith("1 error, 0 warnings")


class TestLiveJournal:
    def test_live_journal_of_a_sloppy_client(
        self, lipsync_mock: MockServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--base-url reads a running mock: times in seconds and a retried 1201 are reported."""
        with httpx.Client(base_url=lipsync_mock.base_url, headers=lipsync_mock.headers) as http:
            r = http.post(
                "/v1/videos/identify-face", json={"video_url": "https://example.com/a.mp4"}
            )
            body = {
                "session_id": r.json()["data"]["session_id"],
                "face_choose": [face(sound_start_time=0, sound_end_time=3, sound_insert_time=0)],
            }
            for _ in range(2):
                assert http.post(CREATE, json=body).json()["code"] == 1201
        assert main(["--base-url", lipsync_mock.base_url, "--report", "json"]) == 1
        report = json.loads(capsys.readouterr().out)
        found = {(f["seq"], f["check"]) for f in report["findings"]}
        assert found == {
            (2, "refused"),
            (2, "seconds-for-ms"),
            (3, "refused"),
            (3, "seconds-for-ms"),
            (3, "retried-non-retryable"),
        }
