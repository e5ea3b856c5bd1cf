"""Time to a ready mock through the pytest fixture: `lipsync_mock` until /openapi.json answers.

Not collected by `make test` (not under tests/, not named test_*); bench/run.py runs it as
`pytest -q -s -n 0 -p no:cacheprovider bench/fixture_ready.py` and reads the printed lines.
"""

from __future__ import annotations

import time

import httpx
import pytest

ROUNDS = 5


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_fixture_ready(request: pytest.FixtureRequest, round_no: int) -> None:
    t0 = time.perf_counter()
    server = request.getfixturevalue("lipsync_mock")
    r = httpx.get(server.base_url + "/openapi.json", timeout=10)
    ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200
    print(f"\nFIXTURE_READY_MS {ms:.2f}")
    assert ms < 10_000
