"""The front answers exactly what Starlette answers: byte for byte, request ids included.

Two mocks with the same seed on a manual clock get the same requests, one through the front
(what `create_app` serves), one through the Starlette app behind it alone; every answer and
every journal entry must be the same. The requests include what the front must hand back to
Starlette (HEAD, other methods, trailing slashes, a decoded slash in an id, unknown paths).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.testclient import TestClient

from mock_server import media
from mock_server.web.app import create_app
from mock_server.web.front import ApiFront

from .conftest import AUTH, manual_config

TASKS = "/v1/videos/advanced-lip-sync"
VIDEO = "https://example.com/videos/speaker.mp4"


def exchange(c: TestClient, session_id: str | None, task_id: str | None) -> list[Any]:
    """The same script on either app; ids come from the first (both hand out the same)."""
    b64 = base64.b64encode(media.make_audio(media.MediaFormat.MP3, 3000)).decode()
    face = {
        "face_id": "0",
        "sound_file": b64,
        "sound_start_time": 0,
        "sound_end_time": 3000,
        "sound_insert_time": 0,
    }
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/videos/identify-face", {"json": {"video_url": VIDEO}}),
        ("POST", "/v1/videos/identify-face", {"json": {"video_url": 7}}),
        ("POST", "/v1/videos/identify-face", {"content": b"{not json"}),
        ("POST", TASKS, {"json": {"session_id": session_id, "face_choose": [face]}}),
        ("POST", TASKS, {"json": {"session_id": "nope", "face_choose": [face]}}),
        ("GET", f"{TASKS}/{task_id}", {}),
        ("GET", f"{TASKS}/{task_id}?x=1", {}),
        ("HEAD", f"{TASKS}/{task_id}", {}),
        ("GET", f"{TASKS}/{task_id}/", {}),
        ("GET", f"{TASKS}/{task_id}/extra", {}),
        ("GET", f"{TASKS}/a%2Fb", {}),
        ("GET", f"{TASKS}/caf%C3%A9", {}),
        ("GET", f"{TASKS}/", {}),
        ("GET", TASKS, {"params": {"pageNum": "1", "pageSize": "30"}}),
        ("GET", TASKS, {"params": {"pageSize": "0"}}),
        ("PUT", TASKS, {"json": {}}),
        ("DELETE", f"{TASKS}/{task_id}", {}),
        ("POST", "/v1/audio/tts", {"json": {"text": "hi", "voice_id": "x"}}),
        ("GET", "/v1/videos/identify-face", {}),
        ("GET", "/v1/nothing", {}),
        ("GET", "/openapi.json", {}),
        ("GET", f"{TASKS}/{task_id}", {"headers": {"Authorization": "Bearer wrong"}}),
        ("GET", f"{TASKS}/{task_id}", {"headers": {"Authorization": ""}}),
    ]
    answers = []
    for method, path, kwargs in calls:
        r = c.request(method, path, **kwargs)
        headers = {k: v for k, v in r.headers.items() if k != "date"}
        answers.append((method, path, r.status_code, headers, r.content))
    return answers


def ids(c: TestClient) -> tuple[str, str]:
    session = c.post("/v1/videos/identify-face", json={"video_url": VIDEO}).json()["data"]
    b64 = base64.b64encode(media.make_audio(media.MediaFormat.MP3, 3000)).decode()
    face = {"face_id": "0", "sound_file": b64, "sound_start_time": 0, "sound_end_time": 3000}
    body = {"session_id": session["session_id"], "face_choose": [{**face, "sound_insert_time": 0}]}
    task = c.post(TASKS, json=body).json()["data"]
    return session["session_id"], task["task_id"]


def journal(c: TestClient) -> list[dict[str, Any]]:
    entries = c.get("/__admin/journal", params={"limit": 1000}).json()["data"]
    for e in entries:
        e.pop("wall_ms")
        e.pop("latency_ms")
    return list(entries)


def test_the_front_answers_what_starlette_answers() -> None:
    front = create_app(manual_config())
    assert isinstance(front, ApiFront)
    twin = create_app(manual_config())
    assert isinstance(twin, ApiFront)
    behind = twin.app  # a twin mock, served by Starlette alone
    with TestClient(front, headers=AUTH) as a, TestClient(behind, headers=AUTH) as b:
        first = ids(a)
        assert ids(b) == first
        got, want = exchange(a, *first), exchange(b, *first)
        for mine, theirs in zip(got, want, strict=True):
            assert mine == theirs
        assert journal(a) == journal(b)
    statuses = {s for _, _, s, _, _ in got}
    taken = sum(front.match(m, p.partition("?")[0]) is not None for m, p, *_ in got)
    print(f"\n{len(got)} requests ({taken} by the front), the same answers; {sorted(statuses)}")
    # the script reaches both: the front's answers and refusals, Starlette's 404s and HEAD
    assert {200, 400, 401, 404} <= statuses
    assert 10 <= taken <= len(got) - 8


def test_the_front_takes_only_get_and_post_of_pipeline_routes() -> None:
    front = create_app(manual_config())
    assert isinstance(front, ApiFront)
    assert front.match("GET", f"{TASKS}/123") is not None
    assert front.match("POST", TASKS) is not None
    assert front.match("GET", TASKS) is not None
    for method, path in [
        ("HEAD", f"{TASKS}/123"),
        ("PUT", TASKS),
        ("GET", f"{TASKS}/"),
        ("GET", f"{TASKS}/1/2"),
        ("GET", "/files/videos/x.mp4"),
        ("GET", "/__admin/clock"),
        ("GET", "/openapi.json"),
    ]:
        assert front.match(method, path) is None, (method, path)


@pytest.mark.parametrize("template", ["/a/{x}/b", "/a/{x:path}", "/a{x}"])
def test_templates_other_than_a_last_segment_are_refused(template: str) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from mock_server.web.pipeline import Endpoint

    async def handler(call: Any) -> Any:
        raise AssertionError

    route = Route(template, Endpoint(None, "op", handler), methods=["GET"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the front takes"):
        ApiFront(Starlette(), [route])
