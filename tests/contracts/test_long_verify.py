"""A long verify run (stateful phase included, fixed seed) against a live mock finds nothing."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from contracts.strategies import resolve_spec
from contracts.verify import (
    KLING_CHECKS,
    SCHEMATHESIS_CHECKS,
    Credentials,
    VerifyOptions,
    verify,
)
from mock_server.admin_client import AdminClient

from .test_verify import WEBHOOK_SECRET, running

# Sized to stay well under a minute on 2 cores: ~21 s, ~2,200 requests, ~17,000 cases, also
# under `pytest -n 2` with the whole suite. `bench/long_verify.py` runs it at full size.
MAX_EXAMPLES = 150
RULE_EXAMPLES = 5
SEED = 1
LINKS = ("CreateTaskFromSession", "GetTaskById", "ListTasks")
TIME_AND_MEDIA_RULES = (
    "session-valid",
    "audio-id-recent",
    "video-id-recent",
    "video-size",
    "video-duration",
    "video-resolution",
)


@pytest.mark.slow
class TestLongVerify:
    def test_long_seeded_run_against_a_live_mock_has_no_failure(self, tmp_path: Path) -> None:
        """Thousands of seeded checks, the stateful chain through every link, find no failure."""
        progress: list[str] = []
        started = time.monotonic()
        secret = ["--webhook-secret", WEBHOOK_SECRET]
        with running(["mock_server", "--seed", "1"], tmp_path, secret) as url:
            options = VerifyOptions(
                url,
                Credentials.mock_defaults(),
                max_examples=MAX_EXAMPLES,
                rule_examples=RULE_EXAMPLES,
                seed=SEED,
                poll_timeout_s=20,
                webhook_secret=WEBHOOK_SECRET,
            )
            report = verify(options, progress.append)
            admin = AdminClient(url)
            try:
                journal = admin.journal()
            finally:
                admin.close()
        seconds = time.monotonic() - started
        requests = max((int(e["seq"]) for e in journal), default=0)
        statuses = Counter(int(e["http_status"]) for e in journal)
        print(
            f"\nlong verify (--max-examples {MAX_EXAMPLES} --rule-examples {RULE_EXAMPLES} "
            f"--seed {SEED}): {report.cases} cases, {requests} requests, "
            f"{report.failures} failures, verify {report.elapsed_s:.1f} s, {seconds:.1f} s "
            f"with the mock's start; HTTP statuses {dict(sorted(statuses.items()))}"
        )
        for link, (steps, accepted) in sorted(report.links.items()):
            print(f"stateful link {link}: {steps} steps, {accepted} answered 2xx")

        assert report.ok and report.failures == 0, report.summary_table()
        assert not report.errors, report.errors
        checks = report.checks
        for name in (*SCHEMATHESIS_CHECKS, *KLING_CHECKS):
            assert checks[name].cases > 0, name
        for rule in TIME_AND_MEDIA_RULES:  # clock moved through the control API, media served
            assert checks[f"rule:{rule}"].cases > 0 and not checks[f"rule:{rule}"].skipped, rule
        assert report.cases >= 10_000, report.summary_table()
        assert requests >= 1_500 and not any(s >= 500 for s in statuses), statuses
        assert any(line.startswith("schemathesis: stateful ") for line in progress), progress
        followed = {link.split(" ")[0]: counts for link, counts in report.links.items()}
        for link in LINKS:
            steps, accepted = followed.get(link, [0, 0])
            assert steps > 0 and accepted > 0, (link, report.links)


class TestEmptyQueryValues:
    def test_the_spec_says_optional_query_parameters_may_be_empty(self) -> None:
        """`pageSize=` counts as not set, so schemathesis never sends it as negative data."""
        spec = resolve_spec()
        parameters = spec.document["paths"]["/v1/videos/advanced-lip-sync"]["get"]["parameters"]
        assert {p["name"]: p.get("allowEmptyValue") for p in parameters} == {
            "pageNum": True,
            "pageSize": True,
            "external_task_id": True,
        }
