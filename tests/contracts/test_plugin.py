"""The pytest plugin: the per-test and per-session mocks, their reset, cost and Hypothesis use."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from contracts.pytest_plugin import _config, _started, _stop_in_background
from mock_server.testing import MockServer

pytest_plugins = ["pytester"]


LIST = "/v1/videos/advanced-lip-sync"


class TestLipsyncMock:
    def test_running_mock_with_credentials(self, lipsync_mock: MockServer) -> None:
        """The fixture serves on a free loopback port and accepts its API key and its JWT."""
        assert lipsync_mock.base_url.startswith("http://127.0.0.1:")
        for auth in (lipsync_mock.headers, {"Authorization": f"Bearer {lipsync_mock.token()}"}):
            answer = httpx.get(lipsync_mock.base_url + LIST, headers=auth, trust_env=False)
            assert (answer.status_code, answer.json()["code"]) == (200, 0)

    def test_control_client_is_ready(self, lipsync_mock: MockServer) -> None:
        """`.admin` drives the clock and reads the journal; the clock is manual by default."""
        before = lipsync_mock.admin.clock()
        assert before["mode"] == "manual"
        assert lipsync_mock.admin.advance(1234)["now_ms"] == before["now_ms"] + 1234
        httpx.get(lipsync_mock.base_url + LIST, headers=lipsync_mock.headers, trust_env=False)
        assert [e["operation"] for e in lipsync_mock.admin.journal()] == ["listLipSyncTasks"]

    @pytest.mark.lipsync_mock(seed=11, submit_delay_s=0.5, processing_delay_s=10)
    def test_marker_overrides_the_config(self, lipsync_mock: MockServer) -> None:
        """`@pytest.mark.lipsync_mock(...)` sets Config fields of this test's mock."""
        assert lipsync_mock.config.seed == 11
        assert lipsync_mock.config.processing_delay_s == 10
        assert lipsync_mock.admin.clock()["mode"] == "manual"

    @pytest.mark.lipsync_mock(admin_token="plugin-token")
    def test_admin_token_marker(self, lipsync_mock: MockServer) -> None:
        """With `admin_token`, the fixture's `.admin` sends it and others are refused (401)."""
        assert lipsync_mock.admin.clock()["mode"] == "manual"
        bare = httpx.post(lipsync_mock.base_url + "/__admin/reset", trust_env=False)
        assert (bare.status_code, bare.json()["code"]) == (401, 1001)

    def test_start_up_is_fast(self) -> None:
        """Starting a mock the way the fixture does takes well under a second (target 200 ms)."""
        _stop_in_background(
            _started(_config({}))
        )  # the first start also imports and loads the spec
        costs = []
        for _ in range(5):
            started = time.perf_counter()
            server = _started(_config({}))
            server.admin.clock()  # ready to answer
            costs.append(time.perf_counter() - started)
            _stop_in_background(server)
        assert statistics.median(costs) < 0.5, costs


ISOLATION = """
import httpx

seen = []

def test_first(lipsync_mock_session):
    mock = lipsync_mock_session
    mock.admin.add_fault("latency", latency_ms=0)
    mock.admin.advance(60_000)
    httpx.get(mock.base_url + "/v1/videos/advanced-lip-sync", headers=mock.headers)
    seen.append(mock.base_url)

def test_second(lipsync_mock_session):
    mock = lipsync_mock_session
    assert seen == [mock.base_url]
    assert mock.admin.journal() == [] and mock.admin.faults() == []

def test_without_the_mock():
    assert True
"""

HYPOTHESIS = """
from hypothesis import given, settings, strategies as st

@settings(max_examples=3, deadline=None)
@given(n=st.integers())
def test_function_scoped(lipsync_mock, n):
    pass

@settings(max_examples=3, deadline=None)
@given(n=st.integers(0, 3))
def test_session_scoped(lipsync_mock_session, n):
    lipsync_mock_session.admin.reset()
    assert lipsync_mock_session.admin.journal() == []
"""

CONFIGURED = """
import pytest
from mock_server.config import Config
from mock_server.domain.clock import ClockMode

@pytest.fixture(scope="session")
def lipsync_mock_config():
    return Config(clock_mode=ClockMode.MANUAL, seed=5, processing_delay_s=42)

def test_uses_the_override(lipsync_mock_session):
    assert lipsync_mock_session.config.processing_delay_s == 42
"""


class TestLipsyncMockSession:
    def test_one_mock_reset_before_each_test(self, pytester: pytest.Pytester) -> None:
        """Tests share one session mock, and each starts with an empty journal and no faults."""
        pytester.makepyfile(test_isolation=ISOLATION)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")
        result.assert_outcomes(passed=3)

    def test_hypothesis_needs_the_session_mock(self, pytester: pytest.Pytester) -> None:
        """@given refuses the per-test mock (health check) and runs with the session mock."""
        pytester.makepyfile(test_hypo=HYPOTHESIS)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*function-scoped fixture 'lipsync_mock'*"])

    def test_config_fixture_can_be_overridden(self, pytester: pytest.Pytester) -> None:
        """Overriding `lipsync_mock_config` in a conftest or module configures the session mock."""
        pytester.makepyfile(test_configured=CONFIGURED)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
