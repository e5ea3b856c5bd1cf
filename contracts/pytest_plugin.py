"""The pytest plugin (entry point `pytest11`): a running lip-sync mock per test or per session.

Fixtures:

* `lipsync_mock`: a fresh mock for one test, on 127.0.0.1 and a free port, with a manual
  clock. Override any `mock_server.config.Config` field with the marker
  `@pytest.mark.lipsync_mock(processing_delay_s=0.5, seed=7)`.
* `lipsync_mock_session`: one mock for the whole session (per xdist worker), reset through
  `POST /__admin/reset` before every test that uses it. Configure it by overriding the
  session-scoped `lipsync_mock_config` fixture in your conftest.py. This is the fixture for
  `@given` tests: Hypothesis refuses function-scoped fixtures (health check
  `function_scoped_fixture`), because they are not re-created between examples; reset the
  mock at the top of the test body instead.

A mock started with `admin_token` (a Config field, so `@pytest.mark.lipsync_mock(admin_token=
"s3cret")` or your `lipsync_mock_config`) refuses /__admin/ requests without the
`X-Admin-Token` header; its `.admin` client sends it, so the fixtures work unchanged.

Both yield a `mock_server.testing.MockServer`: `.base_url`, `.api_key`, `.headers`
(`Authorization: Bearer <api key>`), `.token()` (an HS256 JWT built like the documented
sample), `.account` (access and secret key) and `.admin`, the control client (`advance()` the
clock, `add_fault()`, `journal()`, `callbacks()`, `set_chaos()`, `reset()`).

Contract coverage (`pytest --lipsync-coverage`, like pytest-cov): every `lipsync_mock` and
`lipsync_mock_session` of the session (of every xdist worker) is read before each reset and
before it stops, and the merged `contracts.coverage` table is printed at the end of the
session. `--lipsync-coverage-fail-under=PERCENT` and `--lipsync-coverage-require=failed-task,
1303,...` fail the session when not met; `--lipsync-coverage-html=PATH` and
`--lipsync-coverage-json=PATH` also write the report.

Cost, measured on a 2-core machine (`tests/contracts/test_plugin.py` pins a loose upper
bound): a test using `lipsync_mock` pays about 5 ms (median of 10) to start one and get its
first control-API answer; every httpx client shares one TLS context (`mock_server.tls`), which
used to be most of it. Stopping takes another 150-200 ms inside uvicorn (a 0.1 s main-loop
tick and a fixed 0.1 s sleep in its shutdown), so the plugin stops mocks on a background
thread and joins them at the end of the session. `lipsync_mock_session`
costs one reset per test, under 2 ms.

Example::

    def test_my_client(lipsync_mock):
        client = MyKlingClient(lipsync_mock.base_url, api_key=lipsync_mock.api_key)
        task_id = client.create(...)
        lipsync_mock.admin.advance(4000)  # submitted -> processing -> succeed
        assert client.get(task_id).status == "succeed"
        assert {e["code"] for e in lipsync_mock.admin.journal()} == {0}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.testing import MockServer

_stopping: list[threading.Thread] = []
_COVERAGE = pytest.StashKey["_Collector"]()
_WORKER_KEY = "lipsync_coverage"


class _Collector:
    """The coverage of every mock of the session, merged as they are reset or stopped.

    `contracts.coverage` is imported only when --lipsync-coverage is given (it loads the spec).
    """

    def __init__(self) -> None:
        from .coverage import Coverage

        self.coverage = Coverage()
        self.lock = threading.Lock()

    def collect(self, server: MockServer) -> None:
        from .coverage import Segment, measure

        segment = Segment.from_admin(
            server.admin,
            signed=bool(server.config.webhook_secret),
            submit_ms=round(server.config.submit_delay_s * 1000),
        )
        measured = measure([segment])
        with self.lock:
            self.coverage.merge(measured)

    def watch(self, server: MockServer) -> None:
        """Read the mock before every reset, including the ones a test body makes."""
        admin = server.admin
        reset = admin.reset

        def reset_after_reading() -> None:
            self.collect(server)
            reset()

        # an instance attribute shadows the method: the test's own admin.reset() calls go
        # through it too (Hypothesis tests reset once per example)
        setattr(admin, "reset", reset_after_reading)  # noqa: B010


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lipsync", "lip-sync mock contract coverage")
    group.addoption(
        "--lipsync-coverage",
        action="store_true",
        help="report what the session's tests exercised against the lipsync_mock fixtures",
    )
    group.addoption(
        "--lipsync-coverage-fail-under",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="fail the session when the contract coverage is below PERCENT",
    )
    group.addoption(
        "--lipsync-coverage-require",
        default="",
        metavar="ITEMS",
        help="comma-separated coverage items that must have happened (failed-task,1303,...)",
    )
    group.addoption("--lipsync-coverage-html", metavar="PATH", help="also write the HTML page")
    group.addoption("--lipsync-coverage-json", metavar="PATH", help="also write the JSON report")


def _required(config: pytest.Config) -> list[str]:
    raw: str = config.getoption("--lipsync-coverage-require") or ""
    return [p.strip() for p in raw.split(",") if p.strip()]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lipsync_mock(**options): Config overrides for the lipsync_mock fixture"
    )
    if config.getoption("--lipsync-coverage", default=False):
        from .coverage import resolve_item

        for name in _required(config):
            try:
                resolve_item(name)
            except ValueError as exc:
                raise pytest.UsageError(f"--lipsync-coverage-require: {exc}") from exc
        config.stash[_COVERAGE] = _Collector()


def _collector(config: pytest.Config) -> _Collector | None:
    return config.stash.get(_COVERAGE, None)


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge a finished worker's coverage."""
    collector = _collector(node.config)
    state = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if collector is not None and state:
        from .coverage import Coverage

        collector.coverage.merge(Coverage.from_state(json.loads(state)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Wait for the mocks still shutting down, so none outlives the session."""
    while _stopping:
        _stopping.pop().join(timeout=15)
    collector = _collector(session.config)
    if collector is None:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput[_WORKER_KEY] = json.dumps(collector.coverage.state())
        return
    cov = collector.coverage
    fail_under: float = session.config.getoption("--lipsync-coverage-fail-under")
    required = _required(session.config)
    html_path = session.config.getoption("--lipsync-coverage-html")
    json_path = session.config.getoption("--lipsync-coverage-json")
    if html_path:
        Path(html_path).write_text(cov.html(fail_under=fail_under, required=required), "utf-8")
    if json_path:
        Path(json_path).write_text(
            json.dumps(cov.to_dict(fail_under=fail_under, required=required), indent=2), "utf-8"
        )
    if not cov.ok(fail_under, required) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the coverage table at the end of the session, the way pytest-cov does."""
    collector = _collector(config)
    if collector is None or getattr(config, "workeroutput", None) is not None:
        return
    terminalreporter.write_sep("-", "lipsync contract coverage")
    fail_under: float = config.getoption("--lipsync-coverage-fail-under")
    text = collector.coverage.text(fail_under=fail_under, required=_required(config))
    terminalreporter.write_line(text.split("\n", 1)[1])


def _stop_in_background(server: MockServer) -> None:
    thread = threading.Thread(target=server.stop, name="lipsync-mock-stop", daemon=True)
    thread.start()
    _stopping.append(thread)


def _started(config: Config) -> MockServer:
    server = MockServer(config)
    return server.start()


def _config(options: dict[str, Any]) -> Config:
    options.setdefault("clock_mode", ClockMode.MANUAL)
    return Config(**options)


@pytest.fixture
def lipsync_mock(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """A running mock for this test: free port, manual clock, credentials, control client.

    Override any `mock_server.config.Config` field with the marker
    `@pytest.mark.lipsync_mock(clock_mode=ClockMode.REAL, processing_delay_s=0.5)`.
    """
    marker = request.node.get_closest_marker("lipsync_mock")
    server = _started(_config(dict(marker.kwargs) if marker else {}))
    collector = _collector(request.config)
    if collector is not None:
        collector.watch(server)
    try:
        yield server
    finally:
        try:
            if collector is not None:
                collector.collect(server)
        finally:
            _stop_in_background(server)


@pytest.fixture(scope="session")
def lipsync_mock_config() -> Config:
    """The Config of `lipsync_mock_session`; override this fixture to change it."""
    return _config({})


@pytest.fixture(scope="session")
def lipsync_mock_session(
    lipsync_mock_config: Config, request: pytest.FixtureRequest
) -> Iterator[MockServer]:
    """One running mock for the session, reset before each test that uses it.

    Safe with `@given`; reset it yourself between examples (`lipsync_mock_session.admin
    .reset()`), since Hypothesis runs every example inside one test.
    """
    server = _started(lipsync_mock_config)
    collector = _collector(request.config)
    if collector is not None:
        collector.watch(server)
    try:
        yield server
    finally:
        try:
            if collector is not None:
                collector.collect(server)
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _lipsync_mock_session_reset(request: pytest.FixtureRequest) -> None:
    """Reset the session mock before each test that asks for it (a no-op for other tests)."""
    if "lipsync_mock_session" in request.fixturenames:
        server: MockServer = request.getfixturevalue("lipsync_mock_session")
        server.admin.reset()
