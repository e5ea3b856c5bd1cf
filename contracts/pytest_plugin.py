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

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.testing import MockServer

_stopping: list[threading.Thread] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lipsync_mock(**options): Config overrides for the lipsync_mock fixture"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Wait for the mocks still shutting down, so none outlives the session."""
    while _stopping:
        _stopping.pop().join(timeout=15)


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
    try:
        yield server
    finally:
        _stop_in_background(server)


@pytest.fixture(scope="session")
def lipsync_mock_config() -> Config:
    """The Config of `lipsync_mock_session`; override this fixture to change it."""
    return _config({})


@pytest.fixture(scope="session")
def lipsync_mock_session(lipsync_mock_config: Config) -> Iterator[MockServer]:
    """One running mock for the session, reset before each test that uses it.

    Safe with `@given`; reset it yourself between examples (`lipsync_mock_session.admin
    .reset()`), since Hypothesis runs every example inside one test.
    """
    server = _started(lipsync_mock_config)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _lipsync_mock_session_reset(request: pytest.FixtureRequest) -> None:
    """Reset the session mock before each test that asks for it (a no-op for other tests)."""
    if "lipsync_mock_session" in request.fixturenames:
        server: MockServer = request.getfixturevalue("lipsync_mock_session")
        server.admin.reset()
