"""Shared fixtures: an in-process mock on a manual clock, and hypothesis profiles."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from mock_server import media
from mock_server.config import Config
from mock_server.domain.clock import ClockMode
from mock_server.web.app import Mock, create_app

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

API_KEY = "mock-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SEED_AUDIO_URL = "https://p1-kling.klingai.com/kcdn/cdn-kcdn112452/kling-qa-test/go-to-world.mp3"


def manual_config(**overrides: Any) -> Config:
    base: dict[str, Any] = {
        "clock_mode": ClockMode.MANUAL,
        "clock_start_ms": 1_722_769_557_708,
        "seed": 7,
        "submit_delay_s": 1.0,
        "processing_delay_s": 3.0,
    }
    base.update(overrides)
    return Config(**base)


# LIPSYNC_TEST_STORE=sqlite runs every in-process test against the SQLite store (`make test`
# does this for the API suites), so both stores answer the same suite.
TEST_STORE = os.environ.get("LIPSYNC_TEST_STORE", "memory")


@pytest.fixture
def make_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TestClient]]:
    """Build in-process mocks with config overrides; each is closed after the test."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        if TEST_STORE == "sqlite" and "store" not in overrides:
            overrides["store"] = f"sqlite:{tmp_path_factory.mktemp('store')}/mock.db"
        client = TestClient(create_app(manual_config(**overrides)), headers=AUTH)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An in-process mock on a manual clock with a fixed seed, authenticated by API key."""
    return make_client()


def mock_of(client: TestClient) -> Mock:
    app: Any = client.app
    mock: Mock = app.state.mock
    return mock


def b64_audio(ms: int, fmt: media.MediaFormat = media.MediaFormat.MP3) -> str:
    return base64.b64encode(media.make_audio(fmt, ms)).decode()


def identify(client: TestClient, url: str = "https://example.com/speaker.mp4") -> dict[str, Any]:
    r = client.post("/v1/videos/identify-face", json={"video_url": url})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def face_choose(**overrides: Any) -> dict[str, Any]:
    fc: dict[str, Any] = {
        "face_id": "0",
        "sound_file": SEED_AUDIO_URL,
        "sound_start_time": 0,
        "sound_end_time": 3000,
        "sound_insert_time": 0,
    }
    fc.update(overrides)
    return {k: v for k, v in fc.items() if v is not None}


def create_body(session_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"session_id": session_id, "face_choose": [face_choose()]}
    body.update(overrides)
    return body
