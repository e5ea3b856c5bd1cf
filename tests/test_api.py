"""The HTTP API in process: bodies and routes, the documented example, lifecycle, lists, TTS."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from mock_server import media
from mock_server.auth import make_token
from mock_server.config import default_accounts
from mock_server.domain.lifecycle import ORDER
from mock_server.domain.models import Account, AccountId, TaskStatus
from mock_server.spec import load_spec
from mock_server.web import serialize
from mock_server.web.app import create_app
from tests.conftest import (
    AUTH,
    create_body,
    face_choose,
    identify,
    manual_config,
    mock_of,
)

SPEC = load_spec()
FIXTURES = Path(__file__).parent / "fixtures"
IDENTIFY = "/v1/videos/identify-face"
TASKS = "/v1/videos/advanced-lip-sync"
TTS = "/v1/audio/tts"
START_MS = 1_722_769_557_708  # the harness's manual clock starts here
DAY_MS = 86_400_000
SECONDS = re.compile(r"^[0-9]+(\.[0-9]+)?$")

SEED_VIDEO = "https://example.com/videos/speaker.mp4"
SEED_SESSION = "850508686686064678"
THIRTY_S = "https://fixtures.test/thirty-seconds.mp4"
TWENTY_S_AUDIO = "https://fixtures.test/twenty-seconds.mp3"
REFUSED = "https://fixtures.test/refused-by-review.mp4"  # every task over it fails

# The second account authenticates with a JWT signed by its SecretKey, as AK/SK clients do.
OTHER_ACCOUNT = Account(
    AccountId("other-ak"), "other-ak", "other-secret-key-of-thirty-two-bytes", ("other-api-key",)
)
OTHER = {
    "Authorization": f"Bearer {make_token(OTHER_ACCOUNT.access_key, OTHER_ACCOUNT.secret_key)}"
}


def documented_request() -> dict[str, Any]:
    """The create body of the documented example, read from the spec."""
    op = SPEC.operation("createLipSyncTask")
    body: dict[str, Any] = op["requestBody"]["content"]["application/json"]["examples"][
        "documented"
    ]["value"]
    return body


def documented_faces() -> dict[str, Any]:
    """The identify-face response data of the documented `twoFaces` example."""
    op = SPEC.operation("identifyFace")
    data: dict[str, Any] = op["responses"]["200"]["content"]["application/json"]["examples"][
        "twoFaces"
    ]["value"]["data"]
    return data


def advance(client: TestClient, ms: int) -> None:
    mock_of(client).backend.advance_clock(ms)


def get_task(client: TestClient, ident: str, headers: dict[str, str] | None = None) -> Any:
    r = client.get(f"{TASKS}/{ident}", headers=headers)
    assert r.status_code == 200, r.text
    SPEC.validator("TaskResponse").validate(r.json())
    return r.json()["data"]


def create(client: TestClient, headers: dict[str, str] | None = None, **overrides: Any) -> Any:
    """A task over the lifecycle fixture's 30 s video with three seconds of 20 s audio."""
    r = client.post(IDENTIFY, json={"video_url": THIRTY_S}, headers=headers)
    assert r.status_code == 200, r.text
    body = create_body(
        r.json()["data"]["session_id"], face_choose=[face_choose(sound_file=TWENTY_S_AUDIO)]
    )
    body.update(overrides)
    r = client.post(TASKS, json=body, headers=headers)
    assert r.status_code == 200, r.text
    SPEC.validator("CreateTaskResponse").validate(r.json())
    return r.json()["data"]


def list_ids(client: TestClient, headers: dict[str, str] | None = None, **params: int) -> list[str]:
    r = client.get(TASKS, params=params, headers=headers)
    assert r.status_code == 200, r.text
    SPEC.validator("TaskListResponse").validate(r.json())
    return [t["task_id"] for t in r.json()["data"]]


@pytest.fixture
def app(make_client: Callable[..., TestClient]) -> TestClient:
    """A mock with the lifecycle fixtures and a second account."""
    return make_client(
        fixtures_file=str(FIXTURES / "lifecycle.yaml"),
        accounts=(*default_accounts(), OTHER_ACCOUNT),
    )


@contextlib.contextmanager
def fresh_client(**overrides: Any) -> Iterator[TestClient]:
    """A new in-process mock for one hypothesis example (fixtures are per test, not example)."""
    with TestClient(create_app(manual_config(**overrides)), headers=AUTH) as c:
        yield c


def assert_envelope(r: httpx2.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert set(body) == {"code", "message", "request_id", "data"}
    assert body["code"] == code
    assert body["data"] is None
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["request_id"], str) and body["request_id"]
    SPEC.validator("ErrorEnvelope").validate(body)
    return body


# -- bodies and routes ----------------------------------------------------------------------

POST_ROUTES = [IDENTIFY, TASKS, TTS]
LIMIT = 10 * 1024 * 1024


def _chunks(total: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    """A JSON object of `total` bytes, streamed so that no Content-Length is known upfront."""
    head, tail = b'{"pad": "', b'"}'
    yield head
    left = total - len(head) - len(tail)
    while left > 0:
        n = min(chunk, left)
        yield b" " * n
        left -= n
    yield tail


def _with_raw_volume(session: str, literal: str) -> bytes:
    """A create body whose sound_volume is the given JSON text, valid JSON or not."""
    body = create_body(session, face_choose=[face_choose(sound_volume="<volume>")])
    return json.dumps(body).replace('"<volume>"', literal).encode()


class TestBodies:
    @pytest.mark.parametrize("path", POST_ROUTES)
    @pytest.mark.parametrize(
        "content",
        [b'{"video_url": ', b"{'single': 'quotes'}", b"", b"\xff\xfe\xfa", b'{"a": 1}{"b": 2}'],
        ids=["truncated", "single-quotes", "empty", "not-utf8", "two-documents"],
    )
    def test_malformed_json(self, client: TestClient, path: str, content: bytes) -> None:
        """A body that is not JSON answers 1200 (rule body-json) with HTTP 400."""
        r = client.post(path, content=content, headers={"content-type": "application/json"})
        assert "(rule body-json)" in assert_envelope(r, 400, 1200)["message"]

    @pytest.mark.parametrize("path", POST_ROUTES)
    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
    )
    def test_wrong_content_type(self, client: TestClient, path: str, content_type: str) -> None:
        """A JSON body sent under another content type answers 1200 (rule body-json)."""
        r = client.post(path, content=b"{}", headers={"content-type": content_type})
        message = assert_envelope(r, 400, 1200)["message"]
        assert "(rule body-json)" in message
        assert content_type in message

    @pytest.mark.parametrize("path", POST_ROUTES)
    @pytest.mark.parametrize("content", [b"[]", b'"text"', b"42", b"null", b"true"])
    def test_non_object_json(self, client: TestClient, path: str, content: bytes) -> None:
        """Valid JSON that is not an object answers 1200 (rule body-json)."""
        r = client.post(path, content=content, headers={"content-type": "application/json"})
        assert "(rule body-json)" in assert_envelope(r, 400, 1200)["message"]

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_numbers(self, client: TestClient, constant: str) -> None:
        """NaN and Infinity, which are not JSON, answer 1200 (rule body-json)."""
        session = identify(client)["session_id"]
        raw = _with_raw_volume(session, constant)
        r = client.post(TASKS, content=raw, headers={"content-type": "application/json"})
        assert "(rule body-json)" in assert_envelope(r, 400, 1200)["message"]

    def test_overflowing_number_is_a_parameter_error(self, client: TestClient) -> None:
        """1e400 is valid JSON but no volume: it answers 1201 (rule volume-range), not 500."""
        session = identify(client)["session_id"]
        raw = _with_raw_volume(session, "1e400")
        r = client.post(TASKS, content=raw, headers={"content-type": "application/json"})
        assert "(rule volume-range)" in assert_envelope(r, 400, 1201)["message"]

    def test_deeply_nested_json(self, client: TestClient) -> None:
        """JSON nested deeper than the parser's recursion limit answers 1200, not 500."""
        raw = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        r = client.post(IDENTIFY, content=raw, headers={"content-type": "application/json"})
        assert_envelope(r, 400, 1200)

    def test_missing_content_type_is_read_as_json(self, client: TestClient) -> None:
        """A JSON body without a Content-Type header is accepted (clients often omit it)."""
        r = client.post(IDENTIFY, content=b'{"video_url": "https://example.com/a.mp4"}')
        assert r.status_code == 200, r.text

    @pytest.mark.parametrize("path", POST_ROUTES)
    def test_oversized_with_content_length(self, client: TestClient, path: str) -> None:
        """A body over 10 MB with an honest Content-Length answers 1200 (rule body-size)."""
        r = client.post(
            path, content=b" " * (LIMIT + 1), headers={"content-type": "application/json"}
        )
        assert "(rule body-size)" in assert_envelope(r, 400, 1200)["message"]

    @pytest.mark.parametrize("path", POST_ROUTES)
    def test_oversized_chunked_without_content_length(self, client: TestClient, path: str) -> None:
        """A streamed body over 10 MB with no Content-Length is cut off (rule body-size)."""
        r = client.post(
            path, content=_chunks(LIMIT + 1), headers={"content-type": "application/json"}
        )
        assert "content-length" not in r.request.headers
        assert "(rule body-size)" in assert_envelope(r, 400, 1200)["message"]

    def test_oversized_with_lying_content_length(self, client: TestClient) -> None:
        """A body over 10 MB that declares 100 bytes is still cut off (rule body-size)."""
        r = client.post(
            IDENTIFY,
            content=_chunks(LIMIT + 1),
            headers={"content-type": "application/json", "content-length": "100"},
        )
        assert "(rule body-size)" in assert_envelope(r, 400, 1200)["message"]

    def test_declared_length_over_the_limit(self, client: TestClient) -> None:
        """A Content-Length over 10 MB is refused before the body is read (rule body-size)."""
        r = client.post(
            IDENTIFY,
            content=b"{}",
            headers={"content-type": "application/json", "content-length": str(LIMIT + 1)},
        )
        assert "(rule body-size)" in assert_envelope(r, 400, 1200)["message"]

    def test_non_numeric_content_length(self, client: TestClient) -> None:
        """A Content-Length that is not a number answers 1200, not 500."""
        r = client.post(
            IDENTIFY,
            content=b"{}",
            headers={"content-type": "application/json", "content-length": "ten"},
        )
        assert_envelope(r, 400, 1200)

    def test_oversized_body_under_a_lower_configured_limit(
        self, make_client: Callable[..., TestClient]
    ) -> None:
        """The limit follows the configuration: 1 KB bodies are refused under a 1000-byte cap."""
        small = make_client(max_body_bytes=1000)
        r = small.post(IDENTIFY, json={"video_url": "https://example.com/a.mp4", "pad": "x" * 1024})
        assert_envelope(r, 400, 1200)

    def test_unknown_keys_are_ignored(self, client: TestClient) -> None:
        """Keys the contract does not know are ignored, as the spec decides (*inferred*)."""
        r = client.post(IDENTIFY, json={"video_url": "https://example.com/a.mp4", "extra": [1]})
        assert r.status_code == 200, r.text


class TestRoutes:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/"),  # GET / is the landing page
            ("GET", "/v1/videos"),
            ("POST", "/v1/videos/Identify-face"),
            ("POST", "/v1/videos/lip-sync"),
            ("GET", "/v1/videos/advanced-lip-sync/1/extra"),
            ("DELETE", "/nowhere"),
        ],
    )
    def test_unknown_route(self, client: TestClient, method: str, path: str) -> None:
        """An unknown route answers 1202 ("requested method is invalid") with HTTP 404."""
        message = assert_envelope(client.request(method, path), 404, 1202)["message"]
        assert path in message

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/v1/videos/Identify-face"),  # the older official spec's spelling
            ("POST", "/V1/videos/identify-face"),
            ("POST", f"{IDENTIFY}/"),
            ("POST", f"{TASKS}/"),
            ("GET", f"{TASKS}/"),
            ("GET", f"{TASKS}/123/"),
            ("POST", f"{TTS}/"),
        ],
    )
    def test_only_the_documented_spelling_is_a_route(
        self, client: TestClient, method: str, path: str
    ) -> None:
        """The old Identify-face spelling and trailing slashes get 1202 (HTTP 404), no redirect,
        even with a valid body: the spec's info says why."""
        body = {"video_url": "https://example.com/speaker.mp4"} if method == "POST" else None
        r = client.request(method, path, json=body)
        assert "location" not in r.headers
        assert path in assert_envelope(r, 404, 1202)["message"]
        assert "`Identify-face`" in SPEC.document["info"]["description"]

    @pytest.mark.parametrize(
        "path", ["/files/videos/000.mp4", "/files/audio/000.mp3", "/files/unknown/x.bin"]
    )
    def test_missing_file(self, client: TestClient, path: str) -> None:
        """A file the mock does not hold answers 1203 with HTTP 404 in the envelope."""
        assert_envelope(client.get(path), 404, 1203)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", IDENTIFY),
            ("DELETE", IDENTIFY),
            ("PUT", TASKS),
            ("DELETE", TASKS),
            ("POST", f"{TASKS}/123"),
            ("PATCH", f"{TASKS}/123"),
            ("GET", TTS),
        ],
    )
    def test_wrong_method(self, client: TestClient, method: str, path: str) -> None:
        """A known path with a method it does not have answers 1202 (HTTP 404) in the envelope."""
        r = client.request(method, path)
        message = assert_envelope(r, SPEC.http_status[1202], 1202)["message"]
        assert method in message

    def test_internal_error_is_enveloped(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bug inside the mock answers 5000 with HTTP 500 in the envelope, not a bare 500."""

        def broken(*args: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(mock_of(client).backend, "create_tts", broken)
        r = client.post(TTS, json={"text": "hi", "voice_id": "uk_boy1", "voice_language": "en"})
        message = assert_envelope(r, 500, 5000)["message"]
        assert "boom" not in message

    @pytest.mark.parametrize("path", ["/openapi.yaml", "/openapi.json"])
    def test_spec_is_served(self, client: TestClient, path: str) -> None:
        """The contract is served as YAML and JSON without credentials."""
        r = client.get(path, headers={"Authorization": ""})
        assert r.status_code == 200
        assert "x-kling-rules" in r.text


# -- the documented example -----------------------------------------------------------------


@pytest.fixture
def seeded(make_client: Callable[..., TestClient]) -> TestClient:
    """A mock with tests/fixtures/seed.yaml: the video behind the documented session id."""
    return make_client(fixtures_file=str(FIXTURES / "seed.yaml"))


class TestDocumentedExample:
    def test_identify_returns_the_documented_faces(self, seeded: TestClient) -> None:
        """Identifying the seed video answers exactly the documented `twoFaces` data."""
        r = seeded.post(IDENTIFY, json={"video_id": "", "video_url": SEED_VIDEO})
        assert r.status_code == 200, r.text
        assert r.headers["x-mock-media-source"] == "fixture"
        SPEC.validator("IdentifyFaceResponse").validate(r.json())
        assert r.json()["data"] == documented_faces()

    def test_documented_request_succeeds(self, seeded: TestClient) -> None:
        """The documented create request, audio URL included, succeeds offline and finishes."""
        identify(seeded, SEED_VIDEO)
        body = documented_request()
        assert body["session_id"] == SEED_SESSION
        r = seeded.post(TASKS, json=body)
        assert r.status_code == 200, r.text
        SPEC.validator("CreateTaskResponse").validate(r.json())
        data = r.json()["data"]
        assert data["task_status"] == "submitted"
        assert data["task_info"] == {"external_task_id": ""}
        assert data["created_at"] == data["updated_at"] == START_MS
        advance(seeded, 4000)
        task = get_task(seeded, data["task_id"])
        assert task["task_status"] == "succeed"
        assert task["task_info"]["parent_video"] == {"id": "", "url": SEED_VIDEO, "duration": "9.8"}

    def test_unregistered_url_is_derived(self, seeded: TestClient) -> None:
        """A URL no fixture names is answered from derived metadata, and says so."""
        r = seeded.post(IDENTIFY, json={"video_url": "https://example.com/other.mp4"})
        assert r.headers["x-mock-media-source"] == "derived"

    def test_derived_metadata_is_stable(self, seeded: TestClient) -> None:
        """The same unregistered URL gives the same faces every time."""
        first = identify(seeded, "https://example.com/other.mp4")["face_data"]
        second = identify(seeded, "https://example.com/other.mp4")["face_data"]
        assert [(f["face_id"], f["start_time"], f["end_time"]) for f in first] == [
            (f["face_id"], f["start_time"], f["end_time"]) for f in second
        ]

    def test_documented_example_without_identify_is_refused(self, seeded: TestClient) -> None:
        """The documented session id is only valid once identify-face has issued it."""
        r = seeded.post(TASKS, json=documented_request())
        assert "(rule session-known)" in assert_envelope(r, 400, 1201)["message"]


# -- the task lifecycle ---------------------------------------------------------------------


class TestLifecycle:
    def test_status_follows_the_clock(self, app: TestClient) -> None:
        """submitted for 1 s, then processing for 3 s, then succeed; updated_at moves each time."""
        task_id = create(app)["task_id"]
        seen: list[tuple[str, int]] = []
        for step_ms in (0, 999, 1, 2999, 1):
            advance(app, step_ms)
            task = get_task(app, task_id)
            seen.append((task["task_status"], task["updated_at"]))
            assert task["created_at"] == START_MS
        assert seen == [
            ("submitted", START_MS),
            ("submitted", START_MS),
            ("processing", START_MS + 1000),
            ("processing", START_MS + 1000),
            ("succeed", START_MS + 4000),
        ]

    def test_late_reader_sees_transition_times(self, app: TestClient) -> None:
        """A task read long after it finished reports the time it finished, not the read time."""
        task_id = create(app)["task_id"]
        advance(app, 3_600_000)
        task = get_task(app, task_id)
        assert (task["task_status"], task["updated_at"]) == ("succeed", START_MS + 4000)

    def test_result_only_when_succeeded(self, app: TestClient) -> None:
        """task_result.videos is empty and final_unit_deduction "0" until the task succeeds."""
        task_id = create(app)["task_id"]
        advance(app, 1000)
        task = get_task(app, task_id)
        assert task["task_result"] == {"videos": []}
        assert task["final_unit_deduction"] == "0"
        advance(app, 3000)
        task = get_task(app, task_id)
        (video,) = task["task_result"]["videos"]
        assert video["duration"] == "30"
        assert urlsplit(video["url"]).path == f"/files/videos/{video['id']}.mp4"

    def test_failure_from_fixture(self, app: TestClient) -> None:
        """An outcome fixture fails the task after processing, with its task_status_msg."""
        task_id = create(app, external_task_id="risky-content")["task_id"]
        advance(app, 1000)
        assert get_task(app, task_id)["task_status_msg"] == ""
        advance(app, 3000)
        task = get_task(app, task_id)
        assert task["task_status"] == "failed"
        assert task["task_status_msg"] == (
            "Content security policy triggered: the face is partly covered"
        )
        assert task["task_result"] == {"videos": []}
        assert task["final_unit_deduction"] == "0"
        assert task["updated_at"] == START_MS + 4000

    def test_phase_lengths_from_fixture(self, app: TestClient) -> None:
        """An outcome fixture can set how long a task stays submitted and processing."""
        task_id = create(app, external_task_id="slow-task")["task_id"]
        advance(app, 4999)
        assert get_task(app, task_id)["task_status"] == "submitted"
        advance(app, 1)
        assert get_task(app, task_id)["task_status"] == "processing"
        advance(app, 19_999)
        assert get_task(app, task_id)["task_status"] == "processing"
        advance(app, 1)
        assert get_task(app, task_id)["task_status"] == "succeed"

    @pytest.mark.parametrize("enabled", [True, False])
    def test_watermark_url_only_when_enabled(self, app: TestClient, enabled: bool) -> None:
        """watermark_url is present exactly when watermark_info.enabled was true."""
        task_id = create(app, watermark_info={"enabled": enabled})["task_id"]
        advance(app, 4000)
        task = get_task(app, task_id)
        assert task["watermark_info"] == {"enabled": enabled}
        (video,) = task["task_result"]["videos"]
        assert ("watermark_url" in video) is enabled
        if enabled:
            assert video["watermark_url"] != video["url"]

    def test_watermark_defaults_to_off(self, app: TestClient) -> None:
        """Without watermark_info the task reports it disabled and gives no watermark_url."""
        task_id = create(app)["task_id"]
        advance(app, 4000)
        task = get_task(app, task_id)
        assert task["watermark_info"] == {"enabled": False}
        assert "watermark_url" not in task["task_result"]["videos"][0]

    def test_durations_are_seconds_strings(self, seeded: TestClient) -> None:
        """Video durations are decimal seconds as strings ("9.8"), face times integer ms."""
        faces = identify(seeded, SEED_VIDEO)["face_data"]
        assert all(isinstance(f["end_time"], int) for f in faces)
        r = seeded.post(TASKS, json=documented_request())
        advance(seeded, 4000)
        task = get_task(seeded, r.json()["data"]["task_id"])
        durations = [task["task_info"]["parent_video"]["duration"]] + [
            v["duration"] for v in task["task_result"]["videos"]
        ]
        assert durations == ["9.8", "9.8"]
        assert all(SECONDS.match(d) for d in durations)

    @pytest.mark.parametrize(
        ("length_ms", "units"),
        [(2000, "1"), (5000, "1"), (5001, "2"), (12_000, "3"), (20_000, "4")],
    )
    def test_final_unit_deduction(self, app: TestClient, length_ms: int, units: str) -> None:
        """A succeeded task deducts one unit per started 5 s of inserted sound."""
        fc = face_choose(sound_file=TWENTY_S_AUDIO, sound_end_time=length_ms)
        task_id = create(app, face_choose=[fc])["task_id"]
        advance(app, 4000)
        assert get_task(app, task_id)["final_unit_deduction"] == units

    def test_query_by_external_task_id(self, app: TestClient) -> None:
        """A task is found by its external_task_id as well as by its task_id."""
        created = create(app, external_task_id="order-42")
        assert created["task_info"] == {"external_task_id": "order-42"}
        advance(app, 1500)
        by_external = get_task(app, "order-42")
        assert by_external == get_task(app, created["task_id"])
        assert by_external["task_info"]["external_task_id"] == "order-42"

    def test_result_video_is_a_playable_mp4(self, app: TestClient) -> None:
        """The result URL serves an MP4 as long as the parent video, with sound."""
        task_id = create(app)["task_id"]
        advance(app, 4000)
        video = get_task(app, task_id)["task_result"]["videos"][0]
        r = app.get(urlsplit(video["url"]).path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "video/mp4"
        info = media.probe_bytes(r.content)
        assert abs(info.duration_ms - 30_000) <= 100
        assert info.has_audio and info.has_video

    def test_result_video_expires_after_30_days(self, app: TestClient) -> None:
        """Result files are deleted 30 days after the task finished, as documented."""
        task_id = create(app)["task_id"]
        advance(app, 4000)
        path = urlsplit(get_task(app, task_id)["task_result"]["videos"][0]["url"]).path
        advance(app, 30 * DAY_MS)
        assert_envelope(app.get(path), 404, 1203)


class TestStatusInvariants:
    @given(
        steps=st.lists(
            st.tuples(st.integers(0, 6000), st.booleans(), st.booleans()), min_size=1, max_size=12
        )
    )
    def test_statuses_never_go_backwards(self, steps: list[tuple[int, bool, bool]]) -> None:
        """Across random clock advances, no task status moves back and terminal ones stay."""
        with fresh_client(fixtures_file=str(FIXTURES / "lifecycle.yaml")) as c:
            sessions = {
                False: identify(c, THIRTY_S)["session_id"],
                True: identify(c, REFUSED)["session_id"],
            }
            seen: dict[str, tuple[int, str, int]] = {}
            for advance_ms, new_task, fails in steps:
                if new_task:
                    body = create_body(sessions[fails])
                    assert c.post(TASKS, json=body).status_code == 200
                advance(c, advance_ms)
                for task in c.get(TASKS, params={"pageSize": 500}).json()["data"]:
                    status = TaskStatus(task["task_status"])
                    rank, before, updated = seen.get(task["task_id"], (0, "", 0))
                    assert ORDER[status] >= rank
                    if before in ("succeed", "failed"):
                        assert status == before
                    assert task["updated_at"] >= updated
                    seen[task["task_id"]] = (ORDER[status], status.value, task["updated_at"])


# -- lists and accounts ---------------------------------------------------------------------


class TestList:
    def test_pages_cover_every_task_once_newest_first(self, app: TestClient) -> None:
        """Pages of 3 over 7 tasks give each task exactly once, newest first, then nothing."""
        created = []
        for _ in range(7):
            created.append(create(app)["task_id"])
            advance(app, 10)
        pages = [list_ids(app, pageNum=n, pageSize=3) for n in (1, 2, 3, 4)]
        assert [len(p) for p in pages] == [3, 3, 1, 0]
        assert [t for p in pages for t in p] == created[::-1]

    def test_defaults_are_page_1_of_30(self, app: TestClient) -> None:
        """Without parameters the list is the first page of 30 tasks."""
        created = [create(app)["task_id"] for _ in range(31)]
        assert len(list_ids(app)) == 30
        assert list_ids(app) == list_ids(app, pageNum=1, pageSize=30)
        assert list_ids(app, pageNum=2) == [created[0]]

    @given(
        count=st.integers(0, 9),
        page_size=st.integers(1, 4),
        gaps=st.lists(st.integers(0, 2000), min_size=9, max_size=9),
    )
    def test_pagination_property(self, count: int, page_size: int, gaps: list[int]) -> None:
        """For any task count, page size and clock moves between pages, each task shows once."""
        with fresh_client() as c:
            session = identify(c)["session_id"]
            created = []
            for gap in gaps[:count]:
                r = c.post(TASKS, json=create_body(session))
                created.append(r.json()["data"]["task_id"])
                advance(c, gap)
            listed: list[str] = []
            pages = math.ceil(count / page_size) + 1
            for n in range(1, pages + 1):
                listed += list_ids(c, pageNum=n, pageSize=page_size)
                advance(c, 1500)  # statuses change between page reads; membership must not
            assert listed == created[::-1]

    def test_same_millisecond_tasks_listed_newest_created_first(self, app: TestClient) -> None:
        """Tasks created in the same millisecond are listed in reverse creation order."""
        created = [create(app)["task_id"] for _ in range(6)]
        assert list_ids(app) == created[::-1]

    def test_list_shows_current_statuses(self, app: TestClient) -> None:
        """The list answers the same task objects as the single query, statuses included."""
        task_id = create(app)["task_id"]
        advance(app, 1000)
        (listed,) = app.get(TASKS).json()["data"]
        assert listed == get_task(app, task_id)
        assert listed["task_status"] == "processing"


class TestListByExternalId:
    def test_filters_to_the_task_of_that_external_id(self, app: TestClient) -> None:
        """?external_task_id=X lists only the account's task created with X."""
        create(app)
        wanted = create(app, external_task_id="order-9")["task_id"]
        create(app, external_task_id="order-10")
        r = app.get(TASKS, params={"external_task_id": "order-9"})
        assert r.status_code == 200, r.text
        SPEC.validator("TaskListResponse").validate(r.json())
        assert [t["task_id"] for t in r.json()["data"]] == [wanted]

    def test_unknown_or_other_accounts_external_id_lists_nothing(self, app: TestClient) -> None:
        """An external id no task of this account carries gives an empty list, not everything."""
        create(app, headers=OTHER, external_task_id="theirs")
        create(app)
        for value in ("theirs", "never-used"):
            r = app.get(TASKS, params={"external_task_id": value})
            assert r.status_code == 200 and r.json()["data"] == [], r.text

    def test_empty_value_is_not_set(self, app: TestClient) -> None:
        """external_task_id= (empty) lists every task, as without it."""
        created = [create(app)["task_id"] for _ in range(3)]
        r = app.get(TASKS, params={"external_task_id": ""})
        assert sorted(t["task_id"] for t in r.json()["data"]) == sorted(created)

    def test_pages_apply_to_the_filtered_list(self, app: TestClient) -> None:
        """Page 2 of a filtered list of one task is empty."""
        create(app, external_task_id="order-11")
        r = app.get(TASKS, params={"external_task_id": "order-11", "pageNum": 2})
        assert r.json()["data"] == []


class TestAccounts:
    def test_other_accounts_tasks_are_invisible(self, app: TestClient) -> None:
        """Each account lists and finds only its own tasks."""
        mine = create(app, external_task_id="shared-name")["task_id"]
        theirs = create(app, headers=OTHER, external_task_id="shared-name")["task_id"]
        assert list_ids(app) == [mine]
        assert list_ids(app, headers=OTHER) == [theirs]
        assert get_task(app, "shared-name")["task_id"] == mine
        assert get_task(app, "shared-name", headers=OTHER)["task_id"] == theirs
        assert_envelope(app.get(f"{TASKS}/{theirs}"), 404, 1203)
        assert_envelope(app.get(f"{TASKS}/{mine}", headers=OTHER), 404, 1203)

    def test_other_accounts_session_is_refused(self, app: TestClient) -> None:
        """A session identified by another account cannot be used (rule session-known)."""
        session = identify(app)["session_id"]
        r = app.post(TASKS, json=create_body(session), headers=OTHER)
        assert "(rule session-known)" in assert_envelope(r, 400, 1201)["message"]

    def test_other_accounts_result_video_is_not_theirs(self, app: TestClient) -> None:
        """identify-face on another account's result video_id refuses it (video-id-known)."""
        task_id = create(app)["task_id"]
        advance(app, 10_000)
        video = get_task(app, task_id)["task_result"]["videos"][0]
        mine = app.post("/v1/videos/identify-face", json={"video_id": video["id"]})
        theirs = app.post("/v1/videos/identify-face", json={"video_id": video["id"]}, headers=OTHER)
        assert mine.headers["x-mock-media-source"] == "generated"
        assert "(rule video-id-known)" in assert_envelope(theirs, 400, 1201)["message"]

    def test_pinned_session_id_serves_both_accounts(
        self, make_client: Callable[..., TestClient]
    ) -> None:
        """Two accounts identifying the seed video can both create tasks from its session."""
        c = make_client(
            fixtures_file=str(FIXTURES / "seed.yaml"),
            accounts=(*default_accounts(), OTHER_ACCOUNT),
        )
        identify(c, SEED_VIDEO)
        c.post(IDENTIFY, json={"video_url": SEED_VIDEO}, headers=OTHER)
        assert c.post(TASKS, json=documented_request()).status_code == 200


# -- text to speech -------------------------------------------------------------------------


def tts(
    client: TestClient,
    text: str,
    speed: float | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    body: dict[str, Any] = {"text": text, "voice_id": "oversea_male1", "voice_language": "en"}
    if speed is not None:
        body["voice_speed"] = speed
    r = client.post(TTS, json=body, headers=headers)
    assert r.status_code == 200, r.text
    SPEC.validator("TtsResponse").validate(r.json())
    return r.json()["data"]


class TestTts:
    @pytest.mark.parametrize(
        ("text", "speed", "duration"),
        [
            ("a" * 40, None, "2.6"),
            ("a" * 40, 1.3, "2"),
            ("a" * 100, 2.0, "3.25"),
            ("a" * 100, 9.0, "3.25"),  # clamped to 2.0
            ("a" * 100, 0.1, "8.125"),  # clamped to 0.8
            ("a" * 100, 1.04, "6.5"),  # rounded to 1.0
            ("  hi  ", None, "1"),  # at least one second
        ],
    )
    def test_duration_follows_text_and_speed(
        self, client: TestClient, text: str, speed: float | None, duration: str
    ) -> None:
        """The audio lasts 65 ms per character over the clamped, rounded speed, at least 1 s."""
        data = tts(client, text, speed)
        assert data["task_status"] == "succeed"
        (audio,) = data["task_result"]["audios"]
        assert audio["duration"] == duration

    def test_audio_file_matches_its_duration(self, client: TestClient) -> None:
        """The audio URL serves an MP3 whose probed length is the reported duration."""
        (audio,) = tts(client, "Hello there, welcome to the show.")["task_result"]["audios"]
        r = client.get(urlsplit(audio["url"]).path)
        assert r.status_code == 200
        info = media.probe_bytes(r.content)
        assert info.format is media.MediaFormat.MP3
        assert abs(info.duration_ms - float(audio["duration"]) * 1000) <= 50

    def test_task_id_and_audio_id_are_distinct(self, client: TestClient) -> None:
        """The TTS task id and the generated audio's id differ, as documented."""
        data = tts(client, "Hello there, welcome to the show.")
        (audio,) = data["task_result"]["audios"]
        assert data["task_id"] != audio["id"]
        assert data["task_id"] not in audio["url"]

    def test_audio_id_feeds_a_task(self, app: TestClient) -> None:
        """A TTS audio_id is accepted in face_choose and the task succeeds."""
        audio_id = tts(app, "a" * 60)["task_result"]["audios"][0]["id"]
        fc = face_choose(sound_file=None, audio_id=audio_id, sound_end_time=3900)
        task_id = create(app, face_choose=[fc])["task_id"]
        advance(app, 4000)
        assert get_task(app, task_id)["task_status"] == "succeed"

    def test_audio_id_crop_cannot_pass_its_end(self, app: TestClient) -> None:
        """A crop ending after the TTS audio ends is refused (rule crop-end-within-audio)."""
        audio_id = tts(app, "a" * 60)["task_result"]["audios"][0]["id"]
        session = identify(app, THIRTY_S)["session_id"]
        fc = face_choose(sound_file=None, audio_id=audio_id, sound_end_time=3901)
        r = app.post(TASKS, json=create_body(session, face_choose=[fc]))
        assert "(rule crop-end-within-audio)" in assert_envelope(r, 400, 1201)["message"]

    def test_other_accounts_audio_id_is_refused(self, app: TestClient) -> None:
        """An audio_id generated by another account is refused (rule audio-id-known)."""
        audio_id = tts(app, "a" * 60, headers=OTHER)["task_result"]["audios"][0]["id"]
        session = identify(app, THIRTY_S)["session_id"]
        fc = face_choose(sound_file=None, audio_id=audio_id)
        r = app.post(TASKS, json=create_body(session, face_choose=[fc]))
        message = assert_envelope(r, 400, 1201)["message"]
        assert "(rule audio-id-known)" in message
        assert "face_choose[0].audio_id" in message

    def test_audio_id_after_30_days_is_refused(self, app: TestClient) -> None:
        """An audio_id older than 30 days is refused (rule audio-id-recent)."""
        audio_id = tts(app, "a" * 60)["task_result"]["audios"][0]["id"]
        advance(app, 30 * DAY_MS)
        session = identify(app, THIRTY_S)["session_id"]
        fc = face_choose(sound_file=None, audio_id=audio_id)
        r = app.post(TASKS, json=create_body(session, face_choose=[fc]))
        assert "(rule audio-id-recent)" in assert_envelope(r, 400, 1201)["message"]


# -- billing --------------------------------------------------------------------------------


def _balance_of(data: dict[str, Any]) -> tuple[str, str]:
    balance = data["final_balance_deduction"]
    assert set(balance) == {"quota", "list_price"}
    assert all(isinstance(v, str) and SECONDS.match(v) for v in balance.values())
    return balance["quota"], balance["list_price"]


class TestBalanceDeduction:
    def test_identify_face_has_it(self, client: TestClient) -> None:
        """identify-face answers final_balance_deduction as strings, from its one unit."""
        data = identify(client)
        assert _balance_of(data) == (data["final_unit_deduction"],) * 2

    def test_tasks_have_it_zero_until_they_succeed(self, app: TestClient) -> None:
        """Query one and list carry it; it is "0" until the task succeeds, then its units."""
        task_id = create(app)["task_id"]
        assert _balance_of(get_task(app, task_id)) == ("0", "0")
        advance(app, 4000)
        task = get_task(app, task_id)
        assert task["final_unit_deduction"] != "0"
        assert _balance_of(task) == (task["final_unit_deduction"],) * 2
        (listed,) = app.get(TASKS).json()["data"]
        assert listed["final_balance_deduction"] == task["final_balance_deduction"]

    def test_callback_payload_has_it(self, app: TestClient) -> None:
        """The callback body (the legacy payload) carries it, valid against its schema."""
        task_id = create(app)["task_id"]
        advance(app, 4000)
        backend = mock_of(app).backend
        task = backend.get_lip_sync_task(default_accounts()[0].account, task_id)
        payload = serialize.callback_payload(task, mock_of(app).base_url)
        SPEC.validator("CallbackPayload").validate(payload)
        assert _balance_of(payload) == (task.units, task.units)

    def test_tts_has_it(self, client: TestClient) -> None:
        """The TTS answer carries final_balance_deduction."""
        data = tts(client, "Hello there.")
        assert _balance_of(data) == (data["final_unit_deduction"],) * 2


# -- optional fields and lengths ------------------------------------------------------------

_SIGNED = "https://bucket.s3.amazonaws.com/speaker.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Sig="
PRESIGNED = _SIGNED + "a" * (2151 - len(_SIGNED))  # the length the real service accepted


class TestNullAndLength:
    def test_null_optional_fields_are_not_set(self, app: TestClient) -> None:
        """JSON null on every optional create field is accepted and read as not set."""
        session = identify(app, THIRTY_S)["session_id"]
        fc = face_choose(sound_file=TWENTY_S_AUDIO)
        fc.update(audio_id=None, sound_volume=None, original_audio_volume=None)
        body = create_body(
            session, face_choose=[fc], watermark_info=None, external_task_id=None, callback_url=None
        )
        r = app.post(TASKS, json=body)
        assert r.status_code == 200, r.text
        task = get_task(app, r.json()["data"]["task_id"])
        assert task["watermark_info"] == {"enabled": False}
        assert task["task_info"]["external_task_id"] == ""

    def test_null_watermark_enabled_is_off(self, app: TestClient) -> None:
        """watermark_info.enabled null means no watermark."""
        task_id = create(app, watermark_info={"enabled": None})["task_id"]
        assert get_task(app, task_id)["watermark_info"] == {"enabled": False}

    def test_null_sound_file_with_audio_id(self, app: TestClient) -> None:
        """audio_id with sound_file null is exactly one audio source."""
        audio_id = tts(app, "a" * 60)["task_result"]["audios"][0]["id"]
        fc = face_choose(audio_id=audio_id, sound_end_time=3900)
        fc["sound_file"] = None
        assert create(app, face_choose=[fc])["task_id"]

    def test_null_video_id_with_url(self, client: TestClient) -> None:
        """identify-face with video_id null and a URL is exactly one video source."""
        r = client.post(IDENTIFY, json={"video_id": None, "video_url": SEED_VIDEO})
        assert r.status_code == 200, r.text

    def test_null_voice_speed_is_the_default(self, client: TestClient) -> None:
        """TTS voice_speed null speaks at the default speed 1.0."""
        body = {"text": "a" * 40, "voice_id": "oversea_male1", "voice_language": "en"}
        r = client.post(TTS, json={**body, "voice_speed": None})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["task_result"]["audios"][0]["duration"] == "2.6"

    def test_null_required_field_is_refused(self, client: TestClient) -> None:
        """A required field given null is refused like a missing one (1201)."""
        r = client.post(TTS, json={"text": None, "voice_id": "uk_boy1", "voice_language": "en"})
        assert_envelope(r, 400, 1201)

    def test_long_presigned_urls_are_accepted(self, app: TestClient) -> None:
        """A 2,151-character presigned video_url and a long callback_url are not refused."""
        print(f"presigned URL: {len(PRESIGNED)} characters")
        assert len(PRESIGNED) == 2151
        r = app.post(IDENTIFY, json={"video_url": PRESIGNED})
        assert r.status_code == 200, r.text
        callback = "https://hooks.example.com/kling?token=" + "t" * 3000
        assert create(app, callback_url=callback)["task_id"]

    def test_long_external_task_id_is_accepted(self, app: TestClient) -> None:
        """No length is documented for external_task_id: a 300-character one is kept."""
        external = "order-" + "x" * 294
        create(app, external_task_id=external)
        assert get_task(app, external)["task_info"]["external_task_id"] == external


class TestJournalKeepsTheAnswer:
    def test_a_query_of_one_task_records_the_status_it_answered(self, app: TestClient) -> None:
        """Each GET of one task leaves the status it answered in the journal (what contract
        coverage counts as seen by polling); other entries leave none."""
        task_id = create(app)["task_id"]
        get_task(app, task_id)
        advance(app, 1000)
        get_task(app, task_id)
        advance(app, 3000)
        get_task(app, task_id)
        entries = app.get("/__admin/journal").json()["data"]
        polled = [e["task_status"] for e in entries if e["operation"] == "getLipSyncTask"]
        assert polled == ["submitted", "processing", "succeed"]
        assert {e["task_status"] for e in entries if e["operation"] != "getLipSyncTask"} == {None}
