"""Every rule of `x-kling-rules`, broken and kept at its boundary, driven through HTTP."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from mock_server import media
from mock_server.config import default_accounts
from mock_server.domain.backend import result_video_id
from mock_server.domain.models import Account, AccountId, TaskId
from mock_server.spec import Rule, load_spec
from tests.conftest import mock_of

SPEC = load_spec()
FIXTURES = Path(__file__).parent / "fixtures"

IDENTIFY = "/v1/videos/identify-face"
TASKS = "/v1/videos/advanced-lip-sync"
TTS = "/v1/audio/tts"

# Media registered in tests/fixtures/rules.yaml.
TEN_S = "https://fixtures.test/ten-seconds.mp4"  # face "0" [0, 10000), face "1" [4000, 8000)
FIVE_S_AUDIO = "https://fixtures.test/five-seconds.mp3"

OTHER_ACCOUNT = Account(AccountId("other-ak"), "other-ak", "other-sk", ("other-api-key",))
OTHER = {"Authorization": "Bearer other-api-key"}


def boundary(rule_id: str) -> Any:
    """The `boundary` the spec gives a rule: the tests follow the table, not copies of it."""
    return SPEC.rules[rule_id].boundary


MIN_CROP_MS = boundary("crop-min-length")
MIN_OVERLAP_MS = boundary("insert-face-overlap")
MAX_SOUND_BYTES = boundary("sound-size")
MIN_SOUND_MS, MAX_SOUND_MS = boundary("sound-duration")
MIN_VIDEO_MS, MAX_VIDEO_MS = boundary("video-duration")
MIN_SIDE, MAX_SIDE = boundary("video-resolution")
MAX_VIDEO_BYTES = boundary("video-size")
MAX_BODY_BYTES = boundary("body-size")
SESSION_TTL_MS = boundary("session-valid")
VIDEO_TTL_MS = boundary("video-id-recent")
AUDIO_TTL_MS = boundary("audio-id-recent")
MIN_VOLUME, MAX_VOLUME = boundary("volume-range")
MIN_PAGE_NUM, MAX_PAGE_NUM = boundary("page-num-range")
MIN_PAGE_SIZE, MAX_PAGE_SIZE = boundary("page-size-range")
MAX_TEXT = boundary("tts-text-length")


# -- media on disk and over loopback http ---------------------------------------------------


def _video(ms: int, width: int = 1280, height: int = 720) -> bytes:
    return media.make_video(ms, width, height, fps=2, with_audio=False)


def _padded(data: bytes, size: int) -> bytes:
    """Media followed by zeros up to `size` bytes; the probes ignore the trailing padding."""
    assert len(data) <= size
    return data + bytes(size - len(data))


def _write_sparse(path: Path, head: bytes, size: int) -> None:
    """A file of `size` bytes starting with `head`, without writing the zeros to disk."""
    path.write_bytes(head)
    os.truncate(path, size)


def _build_media(folder: Path) -> None:
    mp3 = media.MediaFormat.MP3
    files: dict[str, bytes] = {
        f"video-{MIN_VIDEO_MS}ms.mp4": _video(MIN_VIDEO_MS),
        f"video-{MIN_VIDEO_MS - 1}ms.mp4": _video(MIN_VIDEO_MS - 1),
        f"video-{MAX_VIDEO_MS}ms.mp4": _video(MAX_VIDEO_MS),
        f"video-{MAX_VIDEO_MS + 1}ms.mp4": _video(MAX_VIDEO_MS + 1),
        f"video-{MIN_SIDE}x720.mp4": _video(MIN_VIDEO_MS, MIN_SIDE, 720),
        f"video-{MIN_SIDE - 2}x720.mp4": _video(MIN_VIDEO_MS, MIN_SIDE - 2, 720),
        f"video-{MAX_SIDE}x1080.mp4": _video(MIN_VIDEO_MS, MAX_SIDE, 1080),
        f"video-{MAX_SIDE + 2}x1080.mp4": _video(MIN_VIDEO_MS, MAX_SIDE + 2, 1080),
        "video-1280x640.mp4": _video(MIN_VIDEO_MS, 1280, 640),
        "video-with-sound.mp4": media.make_video(3000, 1280, 720, fps=2),
        "audio-only.mp4": media.make_audio(media.MediaFormat.M4A, 3000),
        f"sound-{MIN_SOUND_MS}ms.mp3": media.make_audio(mp3, MIN_SOUND_MS),
        f"sound-{MIN_SOUND_MS - 1}ms.mp3": media.make_audio(mp3, MIN_SOUND_MS - 1),
        f"sound-{MAX_SOUND_MS}ms.mp3": media.make_audio(mp3, MAX_SOUND_MS),
        f"sound-{MAX_SOUND_MS + 1}ms.mp3": media.make_audio(mp3, MAX_SOUND_MS + 1),
        "wav-content.mp3": media.make_audio(media.MediaFormat.WAV, 3000),
    }
    for fmt in ("mp3", "wav", "m4a", "aac"):
        files[f"sound-3000ms.{fmt}"] = media.make_audio(media.MediaFormat(fmt), 3000)
    # A WAV of 50 s is 4.8 MB; padding gives files of exactly the limit and one byte more.
    wav = media.make_audio(media.MediaFormat.WAV, 50_000)
    files["sound-exactly-5mb.wav"] = _padded(wav, MAX_SOUND_BYTES)
    files["sound-5mb-and-one-byte.wav"] = _padded(wav, MAX_SOUND_BYTES + 1)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    head = _video(MIN_VIDEO_MS)
    _write_sparse(folder / "video-exactly-100mb.mp4", head, MAX_VIDEO_BYTES)
    _write_sparse(folder / "video-100mb-and-one-byte.mp4", head, MAX_VIDEO_BYTES + 1)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real media files the mock may read through file:// URLs."""
    folder = tmp_path_factory.mktemp("media")
    _build_media(folder)
    return folder


@pytest.fixture(scope="module")
def outside_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the mock is not allowed to read."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "video.mp4").write_bytes(_video(MIN_VIDEO_MS))
    (folder / "sound.mp3").write_bytes(media.make_audio(media.MediaFormat.MP3, 3000))
    return folder


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the media folder; acknowledges any POST (callbacks) with 200."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_base(media_dir: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `media_dir`, shut down after the module."""
    handler = functools.partial(_QuietHandler, directory=str(media_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the world a case runs in ---------------------------------------------------------------


@dataclass(slots=True)
class World:
    """An in-process mock with rules.yaml, two accounts and readable media; helpers for cases."""

    client: TestClient
    media: Path
    outside: Path
    http_base: str

    def file_url(self, name: str) -> str:
        return (self.media / name).as_uri()

    def http_url(self, name: str) -> str:
        return f"{self.http_base}/{name}"

    def b64(self, name: str) -> str:
        return base64.b64encode((self.media / name).read_bytes()).decode()

    def advance(self, ms: int) -> None:
        mock_of(self.client).backend.advance_clock(ms)

    def identify(self, headers: dict[str, str] | None = None, **body: Any) -> httpx2.Response:
        return self.client.post(IDENTIFY, json=body, headers=headers)

    def session(self, url: str = TEN_S, headers: dict[str, str] | None = None) -> str:
        r = self.identify(headers, video_url=url)
        assert r.status_code == 200, r.text
        sid: str = r.json()["data"]["session_id"]
        return sid

    @staticmethod
    def face(**overrides: Any) -> dict[str, Any]:
        """Face "0" of TEN_S with three seconds of FIVE_S_AUDIO from the start of the video."""
        fc: dict[str, Any] = {
            "face_id": "0",
            "sound_file": FIVE_S_AUDIO,
            "sound_start_time": 0,
            "sound_end_time": 3000,
            "sound_insert_time": 0,
        }
        fc.update(overrides)
        return {k: v for k, v in fc.items() if v is not None}

    def create(
        self,
        face: dict[str, Any] | None = None,
        session_id: str | None = None,
        headers: dict[str, str] | None = None,
        **top: Any,
    ) -> httpx2.Response:
        sid = session_id if session_id is not None else self.session(headers=headers)
        body = {"session_id": sid, "face_choose": [face or self.face()], **top}
        return self.client.post(TASKS, json=body, headers=headers)

    def tts(self, text: str, speed: float = 1.0, headers: dict[str, str] | None = None) -> str:
        body = {"text": text, "voice_id": "oversea_male1", "voice_language": "en"}
        r = self.client.post(TTS, json={**body, "voice_speed": speed}, headers=headers)
        assert r.status_code == 200, r.text
        audio_id: str = r.json()["data"]["task_result"]["audios"][0]["id"]
        return audio_id

    def finished_video_id(self) -> str:
        """The result video id of a task that has just succeeded (the clock is at its end)."""
        task_id = self.create().json()["data"]["task_id"]
        self.advance(4000)
        r = self.client.get(f"{TASKS}/{task_id}")
        assert r.json()["data"]["task_status"] == "succeed", r.text
        video_id: str = r.json()["data"]["task_result"]["videos"][0]["id"]
        return video_id

    def raw(self, content: bytes, content_type: str | None = "application/json") -> httpx2.Response:
        headers = {"content-type": content_type} if content_type else {}
        return self.client.post(IDENTIFY, content=content, headers=headers)


@pytest.fixture
def world(
    make_client: Callable[..., TestClient], media_dir: Path, outside_dir: Path, http_base: str
) -> World:
    """A fresh mock for one case."""
    client = make_client(
        fixtures_file=str(FIXTURES / "rules.yaml"),
        allow_dirs=(str(media_dir),),
        accounts=(*default_accounts(), OTHER_ACCOUNT),
    )
    return World(client, media_dir, outside_dir, http_base)


def _crop(ms: int) -> dict[str, int]:
    return {"sound_start_time": 0, "sound_end_time": ms}


# -- the case registry ----------------------------------------------------------------------

Send = Callable[[World], httpx2.Response]


@dataclass(frozen=True, slots=True)
class Case:
    rule: str
    name: str
    send: Send
    field: str = ""  # the field the refusal's message must name


BROKEN: list[Case] = []
KEPT: list[Case] = []


def breaks(rule: str, field: str) -> Callable[[Send], Send]:
    """Register a request that breaks `rule`; its refusal must name `field`."""

    def register(send: Send) -> Send:
        BROKEN.append(Case(rule, send.__name__, send, field))
        return send

    return register


def keeps(rule: str) -> Callable[[Send], Send]:
    """Register a request that sits right at the edge of `rule` and must be accepted."""

    def register(send: Send) -> Send:
        KEPT.append(Case(rule, send.__name__, send))
        return send

    return register


def identify_body(**body: Any) -> bytes:
    return json.dumps(body).encode()


# body-json ---------------------------------------------------------------------------------


@breaks("body-json", "body")
def body_is_truncated_json(w: World) -> httpx2.Response:
    return w.raw(b'{"video_url": ')


@breaks("body-json", "body")
def body_is_a_json_array(w: World) -> httpx2.Response:
    return w.raw(b'["https://example.com/speaker.mp4"]')


@keeps("body-json")
def body_json_with_charset(w: World) -> httpx2.Response:
    body = identify_body(video_url="https://example.com/speaker.mp4")
    return w.raw(body, "application/json; charset=utf-8")


# body-size ---------------------------------------------------------------------------------


def _body_of_size(size: int) -> bytes:
    """An identify-face body padded with an ignored key to exactly `size` bytes."""
    empty = identify_body(video_url="https://example.com/speaker.mp4", pad="")
    body = identify_body(video_url="https://example.com/speaker.mp4", pad=" " * (size - len(empty)))
    assert len(body) == size
    return body


@breaks("body-size", "body")
def body_one_byte_over_10mb(w: World) -> httpx2.Response:
    return w.raw(_body_of_size(MAX_BODY_BYTES + 1))


@keeps("body-size")
def body_of_exactly_10mb(w: World) -> httpx2.Response:
    return w.raw(_body_of_size(MAX_BODY_BYTES))


# video-source-xor --------------------------------------------------------------------------


@breaks("video-source-xor", "video_id")
def video_id_and_url_both_empty(w: World) -> httpx2.Response:
    return w.identify(video_id="", video_url="")


@breaks("video-source-xor", "video_url")
def video_id_and_url_both_set(w: World) -> httpx2.Response:
    return w.identify(video_id="generated-60000ms", video_url=TEN_S)


@keeps("video-source-xor")
def video_url_with_empty_video_id(w: World) -> httpx2.Response:
    return w.identify(video_id="", video_url=TEN_S)


# video-id-known ----------------------------------------------------------------------------


@breaks("video-id-known", "video_id")
def video_id_never_generated(w: World) -> httpx2.Response:
    return w.identify(video_id="860000000000000001")


@breaks("video-id-known", "video_id")
def video_id_is_a_task_id(w: World) -> httpx2.Response:
    task_id = w.create().json()["data"]["task_id"]
    w.advance(4000)
    return w.identify(video_id=task_id)


@breaks("video-id-known", "video_id")
def video_id_of_another_account(w: World) -> httpx2.Response:
    return w.identify(headers=OTHER, video_id=w.finished_video_id())


@breaks("video-id-known", "video_id")
def video_id_of_an_unfinished_task(w: World) -> httpx2.Response:
    task_id = w.create().json()["data"]["task_id"]
    return w.identify(video_id=result_video_id(TaskId(task_id)))


@keeps("video-id-known")
def video_id_of_this_accounts_result(w: World) -> httpx2.Response:
    r = w.identify(video_id=w.finished_video_id())
    assert r.headers["x-mock-media-source"] == "generated"
    return r


@keeps("video-id-known")
def video_id_registered_as_fixture(w: World) -> httpx2.Response:
    r = w.identify(video_id="generated-60000ms")
    assert r.headers["x-mock-media-source"] == "fixture"
    return r


# video-url-reachable -----------------------------------------------------------------------


@breaks("video-url-reachable", "video_url")
def video_url_answers_404(w: World) -> httpx2.Response:
    return w.identify(video_url=w.http_url("missing.mp4"))


@breaks("video-url-reachable", "video_url")
def video_url_port_closed(w: World) -> httpx2.Response:
    return w.identify(video_url=f"http://127.0.0.1:{closed_port()}/speaker.mp4")


@breaks("video-url-reachable", "video_url")
def video_file_outside_allowed_dirs(w: World) -> httpx2.Response:
    return w.identify(video_url=(w.outside / "video.mp4").as_uri())


@breaks("video-url-reachable", "video_url")
def video_url_is_not_a_url(w: World) -> httpx2.Response:
    return w.identify(video_url="speaker.mp4")


@keeps("video-url-reachable")
def video_url_served_over_loopback(w: World) -> httpx2.Response:
    r = w.identify(video_url=w.http_url(f"video-{MIN_VIDEO_MS}ms.mp4"))
    assert r.headers["x-mock-media-source"] == "probed; faces=derived"
    return r


# video-format ------------------------------------------------------------------------------


@breaks("video-format", "video_url")
def video_url_ends_in_avi(w: World) -> httpx2.Response:
    return w.identify(video_url="https://example.com/speaker.avi")


@breaks("video-format", "video_url")
def video_file_has_no_video_stream(w: World) -> httpx2.Response:
    return w.identify(video_url=w.http_url("audio-only.mp4"))


@breaks("video-format", "video_url")
def video_fixture_is_webm(w: World) -> httpx2.Response:
    return w.identify(video_url="https://fixtures.test/clip.webm")


@keeps("video-format")
def video_url_ends_in_mov(w: World) -> httpx2.Response:
    return w.identify(video_url="https://example.com/speaker.mov")


@keeps("video-format")
def video_file_is_real_mp4(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MIN_VIDEO_MS}ms.mp4"))


# video-size --------------------------------------------------------------------------------


@breaks("video-size", "video_url")
def video_fixture_100mb_and_one_byte(w: World) -> httpx2.Response:
    return w.identify(video_url="https://fixtures.test/100mb-and-one-byte.mp4")


@breaks("video-size", "video_url")
def video_file_100mb_and_one_byte(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url("video-100mb-and-one-byte.mp4"))


@breaks("video-size", "video_url")
def video_url_streams_100mb_and_one_byte(w: World) -> httpx2.Response:
    return w.identify(video_url=w.http_url("video-100mb-and-one-byte.mp4"))


@keeps("video-size")
def video_fixture_exactly_100mb(w: World) -> httpx2.Response:
    return w.identify(video_url="https://fixtures.test/exactly-100mb.mp4")


@keeps("video-size")
def video_file_exactly_100mb(w: World) -> httpx2.Response:
    r = w.identify(video_url=w.file_url("video-exactly-100mb.mp4"))
    assert r.headers["x-mock-media-source"] == "probed; faces=derived"
    return r


# video-duration ----------------------------------------------------------------------------


@breaks("video-duration", "video_url")
def video_one_ms_under_2s(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MIN_VIDEO_MS - 1}ms.mp4"))


@breaks("video-duration", "video_url")
def video_one_ms_over_60s(w: World) -> httpx2.Response:
    return w.identify(video_url=w.http_url(f"video-{MAX_VIDEO_MS + 1}ms.mp4"))


@breaks("video-duration", "video_id")
def video_id_one_ms_over_60s(w: World) -> httpx2.Response:
    return w.identify(video_id="generated-60001ms")


@keeps("video-duration")
def video_of_exactly_2s(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MIN_VIDEO_MS}ms.mp4"))


@keeps("video-duration")
def video_of_exactly_60s(w: World) -> httpx2.Response:
    return w.identify(video_url=w.http_url(f"video-{MAX_VIDEO_MS}ms.mp4"))


@keeps("video-duration")
def video_id_of_exactly_60s(w: World) -> httpx2.Response:
    return w.identify(video_id="generated-60000ms")


# video-resolution --------------------------------------------------------------------------


@breaks("video-resolution", "video_url")
def video_side_under_512px(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MIN_SIDE - 2}x720.mp4"))


@breaks("video-resolution", "video_url")
def video_side_over_2160px(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MAX_SIDE + 2}x1080.mp4"))


@breaks("video-resolution", "video_url")
def video_neither_720p_nor_1080p(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url("video-1280x640.mp4"))


@keeps("video-resolution")
def video_side_of_exactly_512px(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MIN_SIDE}x720.mp4"))


@keeps("video-resolution")
def video_side_of_exactly_2160px(w: World) -> httpx2.Response:
    return w.identify(video_url=w.file_url(f"video-{MAX_SIDE}x1080.mp4"))


# video-id-recent ---------------------------------------------------------------------------


@breaks("video-id-recent", "video_id")
def generated_video_id_after_30_days(w: World) -> httpx2.Response:
    video_id = w.finished_video_id()
    w.advance(VIDEO_TTL_MS)
    return w.identify(video_id=video_id)


@keeps("video-id-recent")
def generated_video_id_1ms_before_30_days(w: World) -> httpx2.Response:
    video_id = w.finished_video_id()
    w.advance(VIDEO_TTL_MS - 1)
    r = w.identify(video_id=video_id)
    assert r.headers["x-mock-media-source"] == "generated"
    return r


# session-known -----------------------------------------------------------------------------


@breaks("session-known", "session_id")
def session_never_issued(w: World) -> httpx2.Response:
    return w.create(session_id="123456789012345678")


@breaks("session-known", "session_id")
def session_of_another_account(w: World) -> httpx2.Response:
    return w.create(session_id=w.session(headers=OTHER))


@keeps("session-known")
def session_of_this_account(w: World) -> httpx2.Response:
    return w.create(session_id=w.session())


# session-valid -----------------------------------------------------------------------------


@breaks("session-valid", "session_id")
def session_used_at_24h(w: World) -> httpx2.Response:
    sid = w.session()
    w.advance(SESSION_TTL_MS)
    return w.create(session_id=sid)


@keeps("session-valid")
def session_used_1ms_before_24h(w: World) -> httpx2.Response:
    sid = w.session()
    w.advance(SESSION_TTL_MS - 1)
    return w.create(session_id=sid)


# face-choose-single ------------------------------------------------------------------------


@breaks("face-choose-single", "face_choose")
def two_faces_chosen(w: World) -> httpx2.Response:
    sid = w.session()
    body = {"session_id": sid, "face_choose": [w.face(), w.face(face_id="1")]}
    return w.client.post(TASKS, json=body)


@breaks("face-choose-single", "face_choose")
def no_face_chosen(w: World) -> httpx2.Response:
    return w.client.post(TASKS, json={"session_id": w.session(), "face_choose": []})


@keeps("face-choose-single")
def exactly_one_face_chosen(w: World) -> httpx2.Response:
    return w.create(w.face())


# face-known --------------------------------------------------------------------------------


@breaks("face-known", "face_choose[0].face_id")
def face_not_in_session(w: World) -> httpx2.Response:
    return w.create(w.face(face_id="2"))


@keeps("face-known")
def second_face_of_session(w: World) -> httpx2.Response:
    return w.create(w.face(face_id="1", sound_insert_time=4000))


# audio-source-xor --------------------------------------------------------------------------


@breaks("audio-source-xor", "face_choose[0].audio_id")
def neither_audio_id_nor_sound_file(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file="", audio_id=""))


@breaks("audio-source-xor", "face_choose[0].sound_file")
def both_audio_id_and_sound_file(w: World) -> httpx2.Response:
    return w.create(w.face(audio_id="tts-60000ms"))


@keeps("audio-source-xor")
def audio_id_with_empty_sound_file(w: World) -> httpx2.Response:
    return w.create(w.face(audio_id="tts-60000ms", sound_file=""))


# audio-id-known ----------------------------------------------------------------------------


@breaks("audio-id-known", "face_choose[0].audio_id")
def audio_id_never_generated(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=None, audio_id="123456789012345678"))


@breaks("audio-id-known", "face_choose[0].audio_id")
def audio_id_of_another_account(w: World) -> httpx2.Response:
    audio_id = w.tts("a" * 40, headers=OTHER)
    return w.create(w.face(sound_file=None, audio_id=audio_id, **_crop(2000)))


@breaks("audio-id-known", "face_choose[0].audio_id")
def audio_id_is_the_tts_task_id(w: World) -> httpx2.Response:
    body = {"text": "a" * 40, "voice_id": "oversea_male1", "voice_language": "en"}
    data = w.client.post(TTS, json=body).json()["data"]
    assert data["task_id"] != data["task_result"]["audios"][0]["id"]
    r = w.create(w.face(sound_file=None, audio_id=data["task_id"], **_crop(2000)))
    assert "not its task_id" in r.json()["message"], r.text
    return r


@keeps("audio-id-known")
def audio_id_of_this_account(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=None, audio_id=w.tts("a" * 40), **_crop(2000)))


# audio-id-recent ---------------------------------------------------------------------------


@breaks("audio-id-recent", "face_choose[0].audio_id")
def audio_id_after_30_days(w: World) -> httpx2.Response:
    audio_id = w.tts("a" * 40)
    w.advance(AUDIO_TTL_MS)
    return w.create(w.face(sound_file=None, audio_id=audio_id, **_crop(2000)))


@keeps("audio-id-recent")
def audio_id_1ms_before_30_days(w: World) -> httpx2.Response:
    audio_id = w.tts("a" * 40)
    w.advance(AUDIO_TTL_MS - 1)
    return w.create(w.face(sound_file=None, audio_id=audio_id, **_crop(2000)))


# sound-url-reachable -----------------------------------------------------------------------


@breaks("sound-url-reachable", "face_choose[0].sound_file")
def sound_url_answers_404(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.http_url("missing.mp3")))


@breaks("sound-url-reachable", "face_choose[0].sound_file")
def sound_url_port_closed(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=f"http://127.0.0.1:{closed_port()}/voice.mp3"))


@breaks("sound-url-reachable", "face_choose[0].sound_file")
def sound_file_outside_allowed_dirs(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=(w.outside / "sound.mp3").as_uri()))


@keeps("sound-url-reachable")
def sound_url_served_over_loopback(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.http_url("sound-3000ms.mp3")))


# sound-format ------------------------------------------------------------------------------


@breaks("sound-format", "face_choose[0].sound_file")
def sound_url_ends_in_ogg(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file="https://example.com/voice.ogg"))


@breaks("sound-format", "face_choose[0].sound_file")
def sound_base64_is_an_mp4_video(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.b64("video-with-sound.mp4")))


@breaks("sound-format", "face_choose[0].sound_file")
def sound_named_mp3_holds_wav(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.http_url("wav-content.mp3")))


def _keeps_format(fmt: str) -> Send:
    """Register an accepted case for one documented format, its audio sent as base64."""

    def send(w: World) -> httpx2.Response:
        return w.create(w.face(sound_file=w.b64(f"sound-3000ms.{fmt}")))

    send.__name__ = f"sound_base64_{fmt}"
    return keeps("sound-format")(send)


for _fmt in ("mp3", "wav", "m4a", "aac"):
    _keeps_format(_fmt)


@keeps("sound-format")
def sound_file_url_named_aac(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.file_url("sound-3000ms.aac")))


# sound-size --------------------------------------------------------------------------------


@breaks("sound-size", "face_choose[0].sound_file")
def sound_base64_5mb_and_one_byte(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.b64("sound-5mb-and-one-byte.wav")))


@breaks("sound-size", "face_choose[0].sound_file")
def sound_file_5mb_and_one_byte(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.file_url("sound-5mb-and-one-byte.wav")))


@breaks("sound-size", "face_choose[0].sound_file")
def sound_fixture_5mb_and_one_byte(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file="https://fixtures.test/5mb-and-one-byte.wav"))


@keeps("sound-size")
def sound_base64_of_exactly_5mb(w: World) -> httpx2.Response:
    assert (w.media / "sound-exactly-5mb.wav").stat().st_size == 5 * 1024 * 1024
    return w.create(w.face(sound_file=w.b64("sound-exactly-5mb.wav")))


@keeps("sound-size")
def sound_file_of_exactly_5mb(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.file_url("sound-exactly-5mb.wav")))


@keeps("sound-size")
def sound_fixture_of_exactly_5mb(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file="https://fixtures.test/exactly-5mb.wav"))


# sound-content -----------------------------------------------------------------------------


@breaks("sound-content", "face_choose[0].sound_file")
def sound_is_not_base64(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file="this is not base64!"))


@breaks("sound-content", "face_choose[0].sound_file")
def sound_base64_of_garbage(w: World) -> httpx2.Response:
    garbage = base64.b64encode(b"\x00\x13garbage\xff" * 500).decode()
    return w.create(w.face(sound_file=garbage))


@breaks("sound-content", "face_choose[0].sound_file")
def sound_base64_of_a_silent_video(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.b64(f"video-{MIN_VIDEO_MS}ms.mp4")))


@breaks("sound-content", "face_choose[0].sound_file")
def sound_as_data_uri(w: World) -> httpx2.Response:
    r = w.create(w.face(sound_file="data:audio/mpeg;base64," + w.b64("sound-3000ms.mp3")))
    assert "File is not in a valid base64 format" in r.json()["message"], r.text
    return r


@keeps("sound-content")
def sound_as_bare_base64(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.b64("sound-3000ms.mp3")))


# sound-duration ----------------------------------------------------------------------------


@breaks("sound-duration", "face_choose[0].sound_file")
def sound_one_ms_under_2s(w: World) -> httpx2.Response:
    fc = w.face(sound_file=w.b64(f"sound-{MIN_SOUND_MS - 1}ms.mp3"), **_crop(MIN_SOUND_MS))
    return w.create(fc)


@breaks("sound-duration", "face_choose[0].sound_file")
def sound_one_ms_over_60s(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.b64(f"sound-{MAX_SOUND_MS + 1}ms.mp3")))


@breaks("sound-duration", "face_choose[0].audio_id")
def audio_id_one_ms_over_60s(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=None, audio_id="tts-60001ms"))


@breaks("sound-duration", "face_choose[0].audio_id")
def tts_audio_of_1950ms(w: World) -> httpx2.Response:
    # 39 characters at speed 1.3: round(39 * 65 / 1.3) = 1950 ms.
    return w.create(w.face(sound_file=None, audio_id=w.tts("b" * 39, 1.3), **_crop(2000)))


@keeps("sound-duration")
def sound_of_exactly_2s(w: World) -> httpx2.Response:
    fc = w.face(sound_file=w.b64(f"sound-{MIN_SOUND_MS}ms.mp3"), **_crop(MIN_SOUND_MS))
    return w.create(fc)


@keeps("sound-duration")
def sound_of_exactly_60s(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=w.b64(f"sound-{MAX_SOUND_MS}ms.mp3")))


@keeps("sound-duration")
def audio_id_of_exactly_60s(w: World) -> httpx2.Response:
    return w.create(w.face(sound_file=None, audio_id="tts-60000ms"))


@keeps("sound-duration")
def tts_audio_of_exactly_2s(w: World) -> httpx2.Response:
    # 40 characters at speed 1.3: 40 * 65 / 1.3 = 2000 ms.
    return w.create(w.face(sound_file=None, audio_id=w.tts("b" * 40, 1.3), **_crop(2000)))


# times-non-negative ------------------------------------------------------------------------


@breaks("times-non-negative", "face_choose[0].sound_start_time")
def negative_sound_start_time(w: World) -> httpx2.Response:
    return w.create(w.face(sound_start_time=-1))


@breaks("times-non-negative", "face_choose[0].sound_end_time")
def negative_sound_end_time(w: World) -> httpx2.Response:
    return w.create(w.face(sound_end_time=-1))


@breaks("times-non-negative", "face_choose[0].sound_insert_time")
def negative_sound_insert_time(w: World) -> httpx2.Response:
    return w.create(w.face(sound_insert_time=-1))


@keeps("times-non-negative")
def all_times_start_at_zero(w: World) -> httpx2.Response:
    return w.create(w.face(sound_start_time=0, sound_insert_time=0))


# crop-min-length ---------------------------------------------------------------------------


@breaks("crop-min-length", "face_choose[0].sound_end_time")
def crop_one_ms_under_2s(w: World) -> httpx2.Response:
    return w.create(w.face(sound_start_time=1000, sound_end_time=1000 + MIN_CROP_MS - 1))


@keeps("crop-min-length")
def crop_of_exactly_2s(w: World) -> httpx2.Response:
    return w.create(w.face(sound_start_time=1000, sound_end_time=1000 + MIN_CROP_MS))


# crop-end-within-audio ---------------------------------------------------------------------


@breaks("crop-end-within-audio", "face_choose[0].sound_end_time")
def crop_ends_1ms_after_audio(w: World) -> httpx2.Response:
    return w.create(w.face(sound_start_time=2000, sound_end_time=5001))


@keeps("crop-end-within-audio")
def crop_ends_with_audio(w: World) -> httpx2.Response:
    return w.create(w.face(sound_start_time=2000, sound_end_time=5000))


# insert-within-video -----------------------------------------------------------------------


@breaks("insert-within-video", "face_choose[0].sound_insert_time")
def insert_ends_1ms_after_video(w: World) -> httpx2.Response:
    return w.create(w.face(sound_end_time=2000, sound_insert_time=8001))


@keeps("insert-within-video")
def insert_ends_with_video(w: World) -> httpx2.Response:
    return w.create(w.face(sound_end_time=2000, sound_insert_time=8000))


# insert-face-overlap -----------------------------------------------------------------------


@breaks("insert-face-overlap", "face_choose[0].sound_insert_time")
def overlap_one_ms_under_2s(w: World) -> httpx2.Response:
    # Face "1" is on screen for [4000, 8000): [6001, 9001) overlaps it by 1999 ms.
    return w.create(w.face(face_id="1", sound_insert_time=8000 - MIN_OVERLAP_MS + 1))


@breaks("insert-face-overlap", "face_choose[0].sound_insert_time")
def insert_before_face_appears(w: World) -> httpx2.Response:
    return w.create(w.face(face_id="1", sound_insert_time=0))


@keeps("insert-face-overlap")
def overlap_of_exactly_2s(w: World) -> httpx2.Response:
    return w.create(w.face(face_id="1", sound_insert_time=8000 - MIN_OVERLAP_MS))


# volume-range ------------------------------------------------------------------------------


@breaks("volume-range", "face_choose[0].sound_volume")
def sound_volume_over_2(w: World) -> httpx2.Response:
    return w.create(w.face(sound_volume=MAX_VOLUME + 0.01))


@breaks("volume-range", "face_choose[0].sound_volume")
def sound_volume_under_0(w: World) -> httpx2.Response:
    return w.create(w.face(sound_volume=MIN_VOLUME - 0.01))


@breaks("volume-range", "face_choose[0].original_audio_volume")
def original_volume_over_2(w: World) -> httpx2.Response:
    return w.create(w.face(original_audio_volume=MAX_VOLUME + 0.01))


@breaks("volume-range", "face_choose[0].original_audio_volume")
def original_volume_under_0(w: World) -> httpx2.Response:
    return w.create(w.face(original_audio_volume=MIN_VOLUME - 0.01))


@keeps("volume-range")
def volumes_of_exactly_2(w: World) -> httpx2.Response:
    return w.create(w.face(sound_volume=2.0, original_audio_volume=MAX_VOLUME))


@keeps("volume-range")
def volumes_of_exactly_0(w: World) -> httpx2.Response:
    return w.create(w.face(sound_volume=0, original_audio_volume=MIN_VOLUME))


# external-task-id-unique -------------------------------------------------------------------


@breaks("external-task-id-unique", "external_task_id")
def external_task_id_reused(w: World) -> httpx2.Response:
    assert w.create(external_task_id="order-42").status_code == 200
    return w.create(external_task_id="order-42")


@keeps("external-task-id-unique")
def external_task_id_reused_by_another_account(w: World) -> httpx2.Response:
    assert w.create(external_task_id="order-42").status_code == 200
    return w.create(external_task_id="order-42", headers=OTHER)


@keeps("external-task-id-unique")
def empty_external_task_id_twice(w: World) -> httpx2.Response:
    assert w.create(external_task_id="").status_code == 200
    return w.create(external_task_id="")


# callback-url-http -------------------------------------------------------------------------


@breaks("callback-url-http", "callback_url")
def callback_url_is_ftp(w: World) -> httpx2.Response:
    return w.create(callback_url="ftp://example.com/hook")


@breaks("callback-url-http", "callback_url")
def callback_url_is_relative(w: World) -> httpx2.Response:
    return w.create(callback_url="/hook")


@keeps("callback-url-http")
def callback_url_is_absolute_http(w: World) -> httpx2.Response:
    return w.create(callback_url=w.http_url("hook"))


@keeps("callback-url-http")
def callback_url_is_empty(w: World) -> httpx2.Response:
    return w.create(callback_url="")


# callback-url-not-self ---------------------------------------------------------------------


def _own_port(w: World) -> int:
    port: int = mock_of(w.client).config.port
    return port


def _self_callback(host: str) -> Send:
    def send(w: World) -> httpx2.Response:
        return w.create(callback_url=f"http://{host}:{_own_port(w)}/__admin/reset")

    return send


for _alias in (
    "127.0.0.1",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "127.1",
    "127.0.0.2",
    "2130706433",
    "0x7f.0.0.1",
    "0.0.0.0",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    socket.gethostname(),
):
    _send = _self_callback(_alias)
    _send.__name__ = f"callback_url_is_the_mock_itself_as_{_alias}"
    breaks("callback-url-not-self", "callback_url")(_send)


@breaks("callback-url-not-self", "callback_url")
def callback_url_is_the_public_base_url(w: World) -> httpx2.Response:
    return w.create(callback_url=mock_of(w.client).base_url + "/__admin/reset")


@keeps("callback-url-not-self")
def callback_url_is_another_port_on_loopback(w: World) -> httpx2.Response:
    return w.create(callback_url=w.http_url("hook"))


@keeps("callback-url-not-self")
def callback_url_is_the_same_port_on_another_host(w: World) -> httpx2.Response:
    return w.create(callback_url=f"http://example.com:{_own_port(w)}/hook")


# task-exists -------------------------------------------------------------------------------


@breaks("task-exists", "id")
def task_never_created(w: World) -> httpx2.Response:
    return w.client.get(f"{TASKS}/123456789012345678")


@breaks("task-exists", "id")
def task_of_another_account(w: World) -> httpx2.Response:
    task_id = w.create(headers=OTHER).json()["data"]["task_id"]
    return w.client.get(f"{TASKS}/{task_id}")


@keeps("task-exists")
def task_by_task_id(w: World) -> httpx2.Response:
    return w.client.get(f"{TASKS}/{w.create().json()['data']['task_id']}")


@keeps("task-exists")
def task_by_external_task_id(w: World) -> httpx2.Response:
    w.create(external_task_id="order-7")
    return w.client.get(f"{TASKS}/order-7")


# page-num-range / page-size-range ----------------------------------------------------------


@breaks("page-num-range", "pageNum")
def page_num_0(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageNum": MIN_PAGE_NUM - 1})


@breaks("page-num-range", "pageNum")
def page_num_1001(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageNum": MAX_PAGE_NUM + 1})


@breaks("page-num-range", "pageNum")
def page_num_not_a_number(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageNum": "two"})


@keeps("page-num-range")
def page_num_1(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageNum": MIN_PAGE_NUM})


@keeps("page-num-range")
def page_num_1000(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageNum": MAX_PAGE_NUM})


@breaks("page-size-range", "pageSize")
def page_size_0(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageSize": MIN_PAGE_SIZE - 1})


@breaks("page-size-range", "pageSize")
def page_size_501(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageSize": MAX_PAGE_SIZE + 1})


@keeps("page-size-range")
def page_size_1(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageSize": MIN_PAGE_SIZE})


@keeps("page-size-range")
def page_size_500(w: World) -> httpx2.Response:
    return w.client.get(TASKS, params={"pageSize": MAX_PAGE_SIZE, "pageNum": MAX_PAGE_NUM})


# tts-text-length ---------------------------------------------------------------------------


def _tts(w: World, text: str, voice_id: str = "oversea_male1", lang: str = "en") -> httpx2.Response:
    return w.client.post(TTS, json={"text": text, "voice_id": voice_id, "voice_language": lang})


@breaks("tts-text-length", "text")
def text_of_1001_chars(w: World) -> httpx2.Response:
    return _tts(w, "x" * (MAX_TEXT + 1))


@breaks("tts-text-length", "text")
def text_empty(w: World) -> httpx2.Response:
    return _tts(w, "")


@keeps("tts-text-length")
def text_of_exactly_1000_chars(w: World) -> httpx2.Response:
    return _tts(w, "x" * MAX_TEXT)


# tts-voice-known ---------------------------------------------------------------------------


@breaks("tts-voice-known", "voice_id")
def voice_unknown(w: World) -> httpx2.Response:
    return _tts(w, "hello", voice_id="nobody_at_all")


@breaks("tts-voice-known", "voice_language")
def voice_of_the_other_language(w: World) -> httpx2.Response:
    return _tts(w, "hello", voice_id="genshin_vindi2", lang="en")


@keeps("tts-voice-known")
def english_voice_in_english(w: World) -> httpx2.Response:
    return _tts(w, "hello", voice_id="oversea_male1", lang="en")


@keeps("tts-voice-known")
def chinese_voice_in_chinese(w: World) -> httpx2.Response:
    return _tts(w, "ni hao", voice_id="genshin_vindi2", lang="zh")


# -- the tests ------------------------------------------------------------------------------


def _generic(field: str) -> str:
    return re.sub(r"\[\d+\]", "[]", field)


def _case_id(case: Case) -> str:
    return f"{case.rule}:{case.name}"


class TestRuleBroken:
    @pytest.mark.parametrize("case", BROKEN, ids=_case_id)
    def test_refused_with_code_status_field_and_rule(self, case: Case, world: World) -> None:
        """Breaking a rule answers its code and HTTP status, naming the field and the rule id."""
        rule = SPEC.rules[case.rule]
        r = case.send(world)
        body = r.json()
        assert (r.status_code, body["code"]) == (SPEC.http_status[rule.code], rule.code), r.text
        assert f"(rule {rule.id})" in body["message"]
        assert case.field in body["message"]
        assert body["data"] is None
        assert body["request_id"]


class TestRuleKept:
    @pytest.mark.parametrize("case", KEPT, ids=_case_id)
    def test_accepted_at_the_boundary(self, case: Case, world: World) -> None:
        """A request right at the edge of a rule is accepted."""
        r = case.send(world)
        assert r.status_code == 200, r.text
        assert r.json()["code"] == 0


class TestRuleTable:
    def test_every_rule_is_broken_and_kept_by_a_test(self) -> None:
        """Each rule id in x-kling-rules has a refusing and an accepted case here."""
        rules = set(SPEC.rules)
        assert rules - {c.rule for c in BROKEN} == set(), "rules without a breaking case"
        assert rules - {c.rule for c in KEPT} == set(), "rules without a boundary case"
        assert {c.rule for c in BROKEN + KEPT} <= rules, "cases for rules the spec lacks"

    @pytest.mark.parametrize("case", BROKEN, ids=_case_id)
    def test_case_field_is_one_of_the_rule_fields(self, case: Case) -> None:
        """The field a refusal must name is one the rule table lists for that rule."""
        rule: Rule = SPEC.rules[case.rule]
        assert _generic(case.field) in rule.fields

    def test_case_names_are_unique(self) -> None:
        """No two cases share a name, so parametrised ids stay readable and stable."""
        names = [c.name for c in BROKEN + KEPT]
        assert len(names) == len(set(names))


class TestRuleMessages:
    def test_long_text_refusal_says_it_is_too_long(self, world: World) -> None:
        """A 1001-character text is refused with a message that says it is too long."""
        message = text_of_1001_chars(world).json()["message"]
        assert "too long" in message

    def test_two_faces_refusal_says_the_list_is_too_long(self, world: World) -> None:
        """Choosing two faces is refused with a message that says the list is too long."""
        message = two_faces_chosen(world).json()["message"]
        assert "too long" in message

    def test_message_reports_the_measured_value(self, world: World) -> None:
        """Duration refusals say what was measured, so the user can fix the input."""
        message = sound_one_ms_over_60s(world).json()["message"]
        assert str(MAX_SOUND_MS + 1) in message
