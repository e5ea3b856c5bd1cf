"""Tests for probing and synthesising media in mock_server.media."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import itertools
import math
import random
from array import array
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import av
import pytest
from starlette.testclient import TestClient

from mock_server import media as media_module
from mock_server.media import (
    MediaError,
    MediaFormat,
    MediaInfo,
    format_from_extension,
    make_audio,
    make_video,
    probe_bytes,
    probe_file,
    render_result,
    speech_duration_ms,
    synthesize_speech,
)
from mock_server.web.files import FileStore

from .conftest import b64_audio, create_body, face_choose, identify, mock_of

AUDIO_FORMATS = [MediaFormat.MP3, MediaFormat.WAV, MediaFormat.M4A, MediaFormat.AAC]
RATE = 48_000


def decode_mono(data: bytes) -> array[int]:
    """Decode the first audio stream of some media into 48 kHz signed 16-bit mono samples."""
    samples: array[int] = array("h")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(container.streams.audio[0]):
            for out in resampler.resample(frame):
                samples.frombytes(bytes(out.planes[0])[: out.samples * 2])
    for out in resampler.resample(None):
        samples.frombytes(bytes(out.planes[0])[: out.samples * 2])
    return samples


def rms(samples: array[int], start_ms: int, end_ms: int) -> float:
    """Root mean square of the samples between two instants."""
    window = samples[start_ms * RATE // 1000 : end_ms * RATE // 1000]
    return math.sqrt(sum(x * x for x in window) / len(window))


class TestProbeAudio:
    @pytest.mark.parametrize("fmt", AUDIO_FORMATS)
    @pytest.mark.parametrize("duration_ms", [2000, 60_000])
    def test_probe_reports_format_and_duration(self, fmt: MediaFormat, duration_ms: int) -> None:
        """make_audio output probes as its own format with the duration within 50 ms."""
        data = make_audio(fmt, duration_ms)
        info = probe_bytes(data)
        assert info.format is fmt
        assert abs(info.duration_ms - duration_ms) <= 50
        assert info.size_bytes == len(data)
        assert info.has_audio
        assert not info.has_video
        assert info.width is None
        assert info.height is None

    def test_probe_file_matches_probe_bytes(self, tmp_path: Path) -> None:
        """probe_file reads a file on disk the same way probe_bytes reads its bytes."""
        data = make_audio(MediaFormat.M4A, 1500)
        path = tmp_path / "clip.m4a"
        path.write_bytes(data)
        assert probe_file(path) == probe_bytes(data)
        assert probe_file(str(path)) == probe_bytes(data)

    def test_make_audio_rejects_video_formats(self) -> None:
        """make_audio only writes the four audio formats."""
        with pytest.raises(ValueError):
            make_audio(MediaFormat.MP4, 1000)


class TestProbeErrors:
    def test_empty_bytes(self) -> None:
        """Zero-length input is refused with the reason 'empty file'."""
        with pytest.raises(MediaError, match=r"^empty file$"):
            probe_bytes(b"")

    def test_empty_file(self, tmp_path: Path) -> None:
        """A zero-length file on disk is refused with the reason 'empty file'."""
        path = tmp_path / "empty.mp3"
        path.write_bytes(b"")
        with pytest.raises(MediaError, match=r"^empty file$"):
            probe_file(path)

    @pytest.mark.parametrize("seed", range(5))
    @pytest.mark.parametrize("size", [16, 4096, 200_000])
    def test_random_bytes(self, seed: int, size: int) -> None:
        """Random bytes are not media."""
        data = random.Random(seed).randbytes(size)
        with pytest.raises(MediaError, match="could not be decoded"):
            probe_bytes(data)

    @pytest.mark.parametrize(
        "label",
        ["truncated mp4", "truncated m4a", "mp3 header only", "wav header only", "mp3 then noise"],
    )
    def test_corrupt_bytes(self, label: str) -> None:
        """Truncated or garbled files raise MediaError with a readable reason."""
        noise = random.Random(label).randbytes(20_000)
        corrupt = {
            "truncated mp4": lambda: make_video(2000, 64, 48)[:3000],
            "truncated m4a": lambda: make_audio(MediaFormat.M4A, 2000)[:5000],
            "mp3 header only": lambda: make_audio(MediaFormat.MP3, 2000)[:200],
            "wav header only": lambda: make_audio(MediaFormat.WAV, 2000)[:44],
            "mp3 then noise": lambda: make_audio(MediaFormat.MP3, 2000)[:1000] + noise,
        }[label]()
        with pytest.raises(MediaError) as caught:
            probe_bytes(corrupt)
        assert "could not be decoded: " in str(caught.value)
        assert "Errno" not in str(caught.value)

    def test_text_is_not_media(self) -> None:
        """Plain text, such as an HTML error page, is not media."""
        with pytest.raises(MediaError):
            probe_bytes(b"<html><body>403 Forbidden</body></html>" * 20)


class TestContentDetection:
    def test_wav_named_mp3_is_wav(self, tmp_path: Path) -> None:
        """The format comes from the content: a WAV saved under an .mp3 name probes as WAV."""
        path = tmp_path / "voice.mp3"
        path.write_bytes(make_audio(MediaFormat.WAV, 2000))
        assert format_from_extension(path.name) is MediaFormat.MP3
        assert probe_file(path).format is MediaFormat.WAV

    def test_mp4_with_video_is_mp4_and_audio_only_is_m4a(self) -> None:
        """ISO media with a video track is MP4; with audio only it is M4A."""
        assert probe_bytes(make_video(1000, 64, 48)).format is MediaFormat.MP4
        assert probe_bytes(make_audio(MediaFormat.M4A, 1000)).format is MediaFormat.M4A

    def test_quicktime_is_mov(self) -> None:
        """A QuickTime file (major brand 'qt  ') with video is MOV."""
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="mov") as output:
            stream = output.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for index in range(10):
                frame = av.VideoFrame(64, 48, "yuv420p")
                frame.pts = index
                output.mux(stream.encode(frame))
            output.mux(stream.encode(None))
        info = probe_bytes(buffer.getvalue())
        assert info.format is MediaFormat.MOV
        assert abs(info.duration_ms - 1000) <= 100


class TestFormatFromExtension:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            (".mp3", MediaFormat.MP3),
            ("song.MP3", MediaFormat.MP3),
            ("a.wav", MediaFormat.WAV),
            ("a.m4a", MediaFormat.M4A),
            ("a.aac", MediaFormat.AAC),
            ("clip.Mp4", MediaFormat.MP4),
            ("clip.mov", MediaFormat.MOV),
            ("https://cdn.example/v/clip.mp4?sig=a.b.wav&x=1", MediaFormat.MP4),
            ("https://cdn.example/v/voice.mp3#t=10", MediaFormat.MP3),
            ("archive.tar.gz", None),
            ("README", None),
            ("https://cdn.example/v.mp3/download", None),
            ("", None),
        ],
    )
    def test_extension(self, name: str, expected: MediaFormat | None) -> None:
        """Extensions map case-insensitively, ignoring query and fragment; unknown gives None."""
        assert format_from_extension(name) is expected


class TestMakeVideo:
    def test_probe_of_made_video(self) -> None:
        """make_video yields an MP4 with the requested duration, size, video and audio."""
        data = make_video(3000, 320, 240)
        info = probe_bytes(data)
        assert info.format is MediaFormat.MP4
        assert abs(info.duration_ms - 3000) <= 50
        assert (info.width, info.height) == (320, 240)
        assert info.has_video
        assert info.has_audio
        assert info.size_bytes == len(data)

    def test_duration_not_a_whole_number_of_frames(self) -> None:
        """A duration between two frame instants is kept exactly."""
        info = probe_bytes(make_video(2345, 64, 48, fps=7))
        assert abs(info.duration_ms - 2345) <= 50

    def test_without_audio(self) -> None:
        """with_audio=False yields a video-only MP4."""
        info = probe_bytes(make_video(1000, 64, 48, with_audio=False))
        assert info.has_video
        assert not info.has_audio

    def test_odd_size_is_refused(self) -> None:
        """H.264 4:2:0 needs even sides, so odd ones raise ValueError."""
        with pytest.raises(ValueError):
            make_video(1000, 65, 48)


class TestSpeech:
    @pytest.mark.parametrize(
        ("text", "speed", "expected"),
        [
            ("", 1.0, 1000),
            ("hi", 1.0, 1000),
            ("x" * 100, 1.0, 6500),
            ("x" * 100, 2.0, 3250),
            ("x" * 100, 0.8, 8125),
            ("  padded  ", 1.0, 1000),
        ],
    )
    def test_speech_duration(self, text: str, speed: float, expected: int) -> None:
        """Speech lasts 65 ms per character divided by speed, at least one second."""
        assert speech_duration_ms(text, speed) == expected

    def test_speed_must_be_positive(self) -> None:
        """A zero speed is a programming error."""
        with pytest.raises(ValueError):
            speech_duration_ms("hello", 0.0)

    @pytest.mark.parametrize(
        ("text", "speed"),
        [
            ("Hi", 1.0),
            ("Hello, this is the synthetic voice of the lip-sync mock.", 1.0),
            ("Hello, this is the synthetic voice of the lip-sync mock.", 2.0),
            ("\u4f60\u597d\uff0c\u4e16\u754c\uff01\u6b22\u8fce" * 6, 0.8),
        ],
    )
    def test_synthesized_mp3_lasts_speech_duration(self, text: str, speed: float) -> None:
        """synthesize_speech gives a decodable MP3 as long as speech_duration_ms says."""
        info = probe_bytes(synthesize_speech(text, speed))
        assert info.format is MediaFormat.MP3
        assert info.has_audio
        assert abs(info.duration_ms - speech_duration_ms(text, speed)) <= 50

    def test_synthesis_is_deterministic(self) -> None:
        """The same text and speed always give the same bytes."""
        assert synthesize_speech("repeatable", 1.2) == synthesize_speech("repeatable", 1.2)


class TestRenderResult:
    @pytest.mark.parametrize(
        ("duration_ms", "width", "height", "expected_size"),
        [
            (2000, 720, 1280, (720, 1280)),
            (4321, 1280, 720, (1280, 720)),
            (60_000, 1920, 1080, (1920, 1080)),
            (3000, 3840, 2160, (2160, 1216)),
            (3001, 641, 479, (640, 480)),
        ],
    )
    def test_result_probes_as_requested(
        self, duration_ms: int, width: int, height: int, expected_size: tuple[int, int]
    ) -> None:
        """The result is an MP4 with audio and video, the requested duration and the parent's size
        (even, longer side at most 2160 px)."""
        data = render_result(
            duration_ms=duration_ms,
            width=width,
            height=height,
            sound=make_audio(MediaFormat.MP3, 3000),
            sound_start_ms=0,
            sound_end_ms=3000,
            insert_ms=500,
            sound_volume=1.0,
            original_volume=1.0,
        )
        info = probe_bytes(data)
        assert info.format is MediaFormat.MP4
        assert abs(info.duration_ms - duration_ms) <= 100
        assert info.has_audio
        assert info.has_video
        assert (info.width, info.height) == expected_size

    def test_video_stream_is_h264_yuv420p(self) -> None:
        """The result video is H.264 in yuv420p and the audio is AAC."""
        data = render_result(
            duration_ms=2000,
            width=640,
            height=480,
            sound=None,
            sound_start_ms=0,
            sound_end_ms=1000,
            insert_ms=0,
            sound_volume=1.0,
            original_volume=1.0,
        )
        with av.open(io.BytesIO(data)) as container:
            video = container.streams.video[0]
            assert video.codec_context.name == "h264"
            assert video.codec_context.pix_fmt == "yuv420p"
            assert container.streams.audio[0].codec_context.name == "aac"

    @pytest.mark.parametrize("with_sound", [True, False])
    def test_inserted_sound_is_louder_than_the_rest(self, with_sound: bool) -> None:
        """The cropped sound (or its stand-in tone) is heard only in [insert, insert + len)."""
        sound = make_audio(MediaFormat.WAV, 4000, 660.0) if with_sound else None
        data = render_result(
            duration_ms=8000,
            width=1280,
            height=720,
            sound=sound,
            sound_start_ms=1000,
            sound_end_ms=3000,
            insert_ms=3000,
            sound_volume=2.0,
            original_volume=0.1,
        )
        samples = decode_mono(data)
        assert abs(len(samples) - 8 * RATE) <= RATE // 10
        inside = rms(samples, 3100, 4900)
        before = rms(samples, 200, 2900)
        after = rms(samples, 5100, 7800)
        assert inside > 10 * before
        assert inside > 10 * after
        assert before > 0

    def test_loud_sound_is_clipped_not_wrapped(self) -> None:
        """A sound pushed past full scale saturates instead of wrapping around."""
        data = render_result(
            duration_ms=3000,
            width=64,
            height=64,
            sound=make_audio(MediaFormat.WAV, 3000, 660.0),
            sound_start_ms=0,
            sound_end_ms=3000,
            insert_ms=0,
            sound_volume=2.0,
            original_volume=2.0,
        )
        window = decode_mono(data)[RATE // 2 : 5 * RATE // 2]
        assert max(window) > 30_000
        assert min(window) < -30_000
        assert max(abs(b - a) for a, b in itertools.pairwise(window)) < 16_000

    def test_volume_out_of_range_is_refused(self) -> None:
        """Volumes outside [0, 2] raise ValueError."""
        with pytest.raises(ValueError):
            render_result(
                duration_ms=2000,
                width=64,
                height=64,
                sound=None,
                sound_start_ms=0,
                sound_end_ms=1000,
                insert_ms=0,
                sound_volume=2.5,
                original_volume=1.0,
            )

    def test_undecodable_sound_is_a_media_error(self) -> None:
        """A sound that is not audio raises MediaError."""
        with pytest.raises(MediaError, match="could not be decoded"):
            render_result(
                duration_ms=2000,
                width=64,
                height=64,
                sound=b"not audio at all" * 100,
                sound_start_ms=0,
                sound_end_ms=1000,
                insert_ms=0,
                sound_volume=1.0,
                original_volume=1.0,
            )


def _succeeded_result(client: TestClient, sound_file: str) -> str:
    """The result URL of a task made with sound_file, after the clock let it succeed."""
    session = identify(client)["session_id"]
    body = create_body(session, face_choose=[face_choose(sound_file=sound_file)])
    r = client.post("/v1/videos/advanced-lip-sync", json=body)
    assert r.json()["code"] == 0, r.text
    task_id = r.json()["data"]["task_id"]
    client.post("/__admin/clock/advance", json={"ms": 10_000})
    task = client.get(f"/v1/videos/advanced-lip-sync/{task_id}").json()["data"]
    url: str = task["task_result"]["videos"][0]["url"]
    return url


class TestFileStore:
    def test_parallel_first_downloads_render_once(self, client: TestClient) -> None:
        """Parallel first downloads of a result share one render; later ones hit the cache."""
        files = mock_of(client).files
        url = _succeeded_result(client, b64_audio(3000))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: client.get(url), range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        assert len({a.content for a in answers}) == 1
        assert client.get(url).content == answers[0].content
        assert files.renders == 1
        assert files.cached[0] == 1

    def test_result_has_the_parent_size(self, client: TestClient) -> None:
        """A result is as large as the parent video the session was made from."""
        url = _succeeded_result(client, b64_audio(3000))
        parent = mock_of(client).backend.result_task(
            urlsplit(url).path.rsplit("/", 1)[-1].split(".")[0]
        )
        assert parent is not None
        with av.open(io.BytesIO(client.get(url).content)) as container:
            video = container.streams.video[0].codec_context
            assert (video.width, video.height) == (parent.parent.width, parent.parent.height)

    def test_clear_drops_every_cached_render(self, client: TestClient) -> None:
        """clear() empties the cache and its folder; the next download renders again."""
        files = mock_of(client).files
        url = _succeeded_result(client, b64_audio(3000))
        first = client.get(url)
        assert files.cached[0] == 1
        files.clear()
        assert files.cached == (0, 0)
        assert client.get(url).content == first.content
        assert files.renders == 2

    def test_cache_is_bounded_in_entries(self, make_client: Callable[..., TestClient]) -> None:
        """The cache keeps at most cache_entries files, least recently used out first."""
        client = make_client()
        mock = mock_of(client)
        mock.files = files = FileStore(mock.backend, mock.base_url, cache_entries=2)
        urls = [_succeeded_result(client, b64_audio(3000 + i * 100)) for i in range(3)]
        for url in urls:
            assert client.get(url).status_code == 200
        assert files.cached[0] == 2
        files.close()

    def test_unrenderable_sound_plays_silenced(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A sound that slipped past the probe and fails to render gives a silenced result,
        never an HTTP 500."""
        garbage = b"\xff\xf1" + random.Random(3).randbytes(50_000)
        fake = MediaInfo(MediaFormat.AAC, 3000, len(garbage), True, False, None, None)
        monkeypatch.setattr(media_module, "probe_bytes", lambda data: fake)
        url = _succeeded_result(client, base64.b64encode(garbage).decode())
        r = client.get(url)
        assert r.status_code == 200
        assert probe_bytes(r.content).has_video
        assert "cannot be rendered" in caplog.text

    def test_range_is_honoured(self, client: TestClient) -> None:
        """Byte ranges answer 206, past-the-end ones 416, a malformed Range the whole file."""
        url = _succeeded_result(client, b64_audio(3000))
        whole = client.get(url).content
        part = client.get(url, headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == whole[:10]
        assert part.headers["content-range"] == f"bytes 0-9/{len(whole)}"
        assert client.get(url, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
        for junk in ("bytes=9-2", "items=0-1", "bytes=abc", "bytes="):
            r = client.get(url, headers={"Range": junk})
            assert (r.status_code, r.content) == (200, whole), junk

    def test_own_result_url_is_read_without_a_request(self, client: TestClient) -> None:
        """by_url hands the resolver a result's bytes (rendered off the loop), or None."""
        mock = mock_of(client)
        url = _succeeded_result(client, b64_audio(3000))

        async def read(target: str) -> bytes | None:
            return await mock.files.by_url(target)

        data = asyncio.run(read(url))
        assert data is not None and probe_bytes(data).has_video
        assert asyncio.run(read(url.replace("/videos/", "/videos/x"))) is None
        assert asyncio.run(read("https://example.com/files/videos/a.mp4")) is None

    def test_audio_and_faces_never_evict_results(
        self, make_client: Callable[..., TestClient]
    ) -> None:
        """Downloads of audio and face crops leave the cached results where they are."""
        client = make_client()
        mock = mock_of(client)
        mock.files = files = FileStore(mock.backend, mock.base_url, cache_entries=1)
        url = _succeeded_result(client, b64_audio(3000))
        assert client.get(url).status_code == 200
        tts = {"text": "hello there", "voice_id": "oversea_male1", "voice_language": "en"}
        for index in range(3):
            data = client.post("/v1/audio/tts", json=tts).json()["data"]
            assert client.get(data["task_result"]["audios"][0]["url"]).status_code == 200
            assert client.get(f"/files/faces/x{index}-0.png").status_code == 200
        assert client.get(url).status_code == 200
        assert files.renders == 1
        files.close()
