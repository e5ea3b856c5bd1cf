"""The pytest plugin (entry point `pytest11`): a `lipsync_mock` fixture per test.

Example::

    def test_my_client(lipsync_mock):
        client = MyKlingClient(base_url=lipsync_mock.base_url, api_key=lipsync_mock.api_key)
        ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.testing import MockServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lipsync_mock(**options): Config overrides for the lipsync_mock fixture"
    )


@pytest.fixture
def lipsync_mock(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """A running mock on a free port with a manual clock, its credentials and control client.

    Override any `mock_server.config.Config` field with the marker
    `@pytest.mark.lipsync_mock(clock_mode=ClockMode.REAL, processing_delay_s=0.5)`.
    """
    marker = request.node.get_closest_marker("lipsync_mock")
    options = dict(marker.kwargs) if marker else {}
    options.setdefault("clock_mode", ClockMode.MANUAL)
    with MockServer(Config(**options)) as server:
        yield server
