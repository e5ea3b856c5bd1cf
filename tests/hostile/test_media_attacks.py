"""Media that lies, breaks or costs: each attack against a real mock process, with its figure."""

from __future__ import annotations

import concurrent.futures
import io
import random
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from av.audio.frame import AudioFrame

from mock_server import media

from .harness import AUTH, MediaServer, ServerProcess, assert_envelope

IDENTIFY = "/v1/videos/identify-face"
CREATE = "/v1/videos/advanced-lip-sync"
MANUAL = ("--clock", "manual", "--submit-delay", "0", "--processing-delay", "0")
MB = 1024


# -- media that lies -----------------------------------------------------------------------------


def _patch_duration(data: bytearray, box: bytes, claim_s: int, scale: int) -> None:
    """Overwrite the 32-bit duration of every version-0 `box` (mvhd, mdhd, tkhd)."""
    at = data.find(box)
    while at >= 0:
        assert data[at + 4] == 0, "version 1 boxes have 64-bit durations"
        if box == b"mdhd":
            scale = struct.unpack_from(">I", data, at + 16)[0]
        offset = at + 24 if box == b"tkhd" else at + 20
        struct.pack_into(">I", data, offset, claim_s * scale)
        at = data.find(box, at + 4)


def lying_m4a(real_s: int = 3600, claim_s: int = 10, rate: int = 8000) -> bytes:
    """An M4A whose mvhd/mdhd/tkhd say `claim_s` seconds but whose samples last `real_s`."""
    buffer = io.BytesIO()
    chunk = 1024 * 50
    silence = bytes(chunk * 2)
    with av.open(buffer, mode="w", format="ipod") as output:
        stream = output.add_stream("aac", rate=rate)
        stream.layout = "mono"
        stream.bit_rate = 8000
        for start in range(0, real_s * rate, chunk):
            frame = AudioFrame(format="s16", layout="mono", samples=chunk)
            frame.planes[0].update(silence)
            frame.sample_rate = rate
            frame.pts = start
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    data = bytearray(buffer.getvalue())
    mvhd = data.find(b"mvhd")
    movie_scale = struct.unpack_from(">I", data, mvhd + 16)[0]
    for box in (b"mvhd", b"mdhd", b"tkhd"):
        _patch_duration(data, box, claim_s, movie_scale)
    return bytes(data)


def garbage_tail_m4a() -> bytes:
    """A 6 s M4A whose first frames decode and whose remaining samples are random bytes."""
    data = bytearray(media.make_audio(media.MediaFormat.M4A, 6000))
    start = data.find(b"mdat") + 4 + 2000
    end = data.find(b"moov") if data.find(b"moov") > start else len(data)
    data[start:end] = random.Random(8).randbytes(end - start)
    return bytes(data)


def silent_adts(size: int = 5 * 1024 * 1024, rate: int = 8000) -> bytes:
    """ADTS of one silent low-bitrate AAC frame repeated up to `size` bytes: about 17 hours."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="adts") as output:
        stream = output.add_stream("aac", rate=rate)
        stream.layout = "mono"
        stream.bit_rate = 8000
        frame = AudioFrame(format="s16", layout="mono", samples=rate * 4)
        frame.planes[0].update(bytes(rate * 8))
        frame.sample_rate = rate
        frame.pts = 0
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    data = buffer.getvalue()
    frames: list[bytes] = []
    at = 0
    while at < len(data):  # the 13-bit frame length of each ADTS header
        length = ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
        frames.append(data[at : at + length])
        at += length
    one = frames[len(frames) // 2]  # past the encoder's priming: a plain silent frame
    return one * (size // len(one))


def png_bomb_mov(side: int = 16000, frames: int = 3) -> bytes:
    """A MOV whose PNG frames declare side x side gray pixels, zeros that deflate ~1000:1."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    deflate = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + one gray byte per pixel
    idat = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
    png += chunk(b"IEND", b"")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mov") as output:
        stream = output.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "gray"
        for index in range(frames):
            packet = av.Packet(png)
            packet.stream = stream
            packet.time_base = Fraction(1, 1)
            packet.pts = packet.dts = index
            packet.duration = 1
            output.mux(packet)
    return buffer.getvalue()


def many_streams_m4a(count: int = 300) -> bytes:
    """An M4A of `count` short silent AAC tracks: FFmpeg probes every stream it opens."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ipod") as output:
        streams = [output.add_stream("aac", rate=8000) for _ in range(count)]
        for stream in streams:
            stream.layout = "mono"
        for stream in streams:
            frame = AudioFrame(format="s16", layout="mono", samples=8000 * 3)
            frame.planes[0].update(bytes(8000 * 6))
            frame.sample_rate = 8000
            frame.pts = 0
            output.mux(stream.encode(frame))
            output.mux(stream.encode(None))
    return buffer.getvalue()


def wav(rate: int, samples: int) -> bytes:
    """A mono 16-bit WAV of silence at any sample rate the header can hold."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2 % 2**32, 2, 16)
    data = bytes(samples * 2)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


def giant_id3_mp3(tag_bytes: int = 4_900_000) -> bytes:
    """A 3 s MP3 behind an ID3v2.3 tag holding one text frame of `tag_bytes` bytes."""

    def synchsafe(n: int) -> bytes:
        return bytes((n >> shift) & 127 for shift in (21, 14, 7, 0))

    payload = b"\x03" + b"x" * tag_bytes
    frame = b"TXXX" + struct.pack(">I", len(payload)) + b"\x00\x00" + payload
    tag = b"ID3\x03\x00\x00" + synchsafe(len(frame)) + frame
    return tag + media.make_audio(media.MediaFormat.MP3, 3000)


# -- helpers -------------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} line")


class Peak:
    """RSS of a process before and at its highest (VmHWM) across the `with` block."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.before_kb = 0
        self.growth_mb = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Peak:
        self.before_kb = _status_kb(self.server.pid, "VmRSS")
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started
        peak = _status_kb(self.server.pid, "VmHWM")
        self.growth_mb = max(0, peak - self.before_kb) / MB


class LoopWatch:
    """GET /openapi.json in a loop on its own connection; the slowest answer is how long the
    server's event loop was blocked at most."""

    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=60, trust_env=False)
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self._client.get("/openapi.json").raise_for_status()
            self.latencies.append(time.perf_counter() - started)

    @property
    def worst_ms(self) -> float:
        return max(self.latencies) * 1000

    def __enter__(self) -> LoopWatch:
        self._client.get("/openapi.json").raise_for_status()  # connection open before timing
        self._thread.start()
        while not self.latencies:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._client.close()


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    """A fresh mock per test: peaks (VmHWM) of one attack must not hide another's."""
    with ServerProcess(*MANUAL) as proc:
        yield proc
        assert proc.running, "the mock died"
        assert "Traceback" not in proc.log_text(), proc.log_text()[-4000:]


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120, trust_env=False) as client:
        yield client


def session(http: httpx.Client, video_url: str = "https://example.com/parent.mp4") -> str:
    r = http.post(IDENTIFY, json={"video_url": video_url}, headers=AUTH)
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    sid: str = r.json()["data"]["session_id"]
    return sid


def create(http: httpx.Client, session_id: str, sound: str, end_ms: int = 3000) -> httpx.Response:
    body: dict[str, Any] = {
        "session_id": session_id,
        "face_choose": [
            {
                "face_id": "0",
                "sound_file": sound,
                "sound_start_time": 0,
                "sound_end_time": end_ms,
                "sound_insert_time": 0,
            }
        ],
    }
    return http.post(CREATE, json=body, headers=AUTH)


def result_url(http: httpx.Client, task_id: str) -> str:
    r = http.post("/__admin/clock/advance", json={"ms": 10})
    assert r.status_code == 200, r.text
    task = http.get(f"{CREATE}/{task_id}", headers=AUTH).json()["data"]
    assert task["task_status"] == "succeed", task
    url: str = task["task_result"]["videos"][0]["url"]
    return url


def parallel(count: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def video_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


@pytest.fixture(scope="module")
def lying() -> bytes:
    return lying_m4a()


# -- the attacks ---------------------------------------------------------------------------------


class TestLyingContainer:
    def test_probe_sees_through_the_container(self, lying: bytes) -> None:
        """An M4A that says 10 s but holds an hour is probed as longer than the rules allow."""
        assert 200_000 < len(lying) < 260_000
        started = time.perf_counter()
        info = media.probe_bytes(lying)
        took = time.perf_counter() - started
        print(f"\n[lying m4a] {len(lying)} bytes probed as {info.duration_ms} ms in {took:.3f} s")
        assert info.duration_ms > 60_000
        assert took < 2.0

    def test_refused_at_create_with_sound_duration(
        self, server: ServerProcess, http: httpx.Client, lying: bytes
    ) -> None:
        """The lying M4A is refused with 1201 sound-duration; nothing decodes the hour."""
        with MediaServer({"/lying.m4a": lying}) as files:
            sid = session(http)
            with Peak(server) as peak:
                r = create(http, sid, files.url("/lying.m4a"))
                accepted = r.json()["code"] == 0
                downloads: list[httpx.Response] = []
                if accepted:  # the code before the fix: measure what the first download costs
                    url = result_url(http, r.json()["data"]["task_id"])
                    downloads.append(http.get(url))
            print(
                f"\n[lying m4a] create code {r.json()['code']}, "
                f"downloads {[d.status_code for d in downloads]}: "
                f"peak RSS growth {peak.growth_mb:.0f} MB in {peak.seconds:.2f} s"
            )
        body = assert_envelope(r, 1201)
        assert "rule sound-duration" in body["message"], body["message"]
        assert peak.growth_mb < 64

    def test_parallel_first_downloads_of_a_lying_result(
        self, server: ServerProcess, http: httpx.Client, lying: bytes
    ) -> None:
        """Three parallel first downloads never decode the hour three times (refused first)."""
        with MediaServer({"/lying.m4a": lying}) as files:
            sid = session(http)
            with Peak(server) as peak:
                r = create(http, sid, files.url("/lying.m4a"))
                statuses: list[int] = []
                if r.json()["code"] == 0:
                    url = result_url(http, r.json()["data"]["task_id"])
                    statuses = [d.status_code for d in parallel(3, lambda: http.get(url))]
            print(
                f"\n[lying m4a x3] create code {r.json()['code']}, downloads {statuses}: "
                f"peak RSS growth {peak.growth_mb:.0f} MB in {peak.seconds:.2f} s"
            )
        assert_envelope(r, 1201)
        assert peak.growth_mb < 64


class TestGarbageTail:
    def test_refused_at_create_with_sound_content(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """A sound whose first frames decode and whose rest is garbage is refused at create."""
        with MediaServer({"/tail.m4a": garbage_tail_m4a()}) as files:
            sid = session(http)
            r = create(http, sid, files.url("/tail.m4a"))
            download = None
            if r.json()["code"] == 0:
                download = http.get(result_url(http, r.json()["data"]["task_id"])).status_code
            print(f"\n[garbage tail] create code {r.json()['code']}, download {download}")
        body = assert_envelope(r, 1201)
        assert "rule sound-content" in body["message"], body["message"]


def _wanted_result(http: httpx.Client, files: MediaServer, seconds: int) -> str:
    sid = session(http, files.url("/parent.mp4"))
    r = create(http, sid, files.url("/sound.mp3"), end_ms=seconds * 1000)
    assert r.json()["code"] == 0, r.text
    return result_url(http, r.json()["data"]["task_id"])


@pytest.fixture(scope="module")
def full_hd_minute() -> dict[str, bytes]:
    return {
        "/parent.mp4": media.make_video(60_000, 1920, 1080, fps=1, with_audio=False),
        "/sound.mp3": media.make_audio(media.MediaFormat.MP3, 60_000),
    }


@pytest.mark.slow  # three renders of 60 s of 1080p
class TestRender:
    def test_one_minute_full_hd_renders_once_at_the_parent_size(
        self, server: ServerProcess, http: httpx.Client, full_hd_minute: dict[str, bytes]
    ) -> None:
        """Three parallel first downloads of a 60 s 1080p result share one render at 1920x1080."""
        with MediaServer(full_hd_minute) as files:
            url = _wanted_result(http, files, 60)
            with Peak(server) as peak, LoopWatch(server.base_url) as watch:
                answers = parallel(3, lambda: http.get(url))
            print(
                f"\n[render 60 s 1080p x3] {[a.status_code for a in answers]} "
                f"{len(answers[0].content)} bytes, {video_size(answers[0].content)}: "
                f"{peak.seconds:.2f} s, peak RSS growth {peak.growth_mb:.0f} MB, "
                f"loop blocked at most {watch.worst_ms:.0f} ms"
            )
            started = time.perf_counter()
            again = http.get(url)
            cached_s = time.perf_counter() - started
            print(f"[render 60 s 1080p] cached download {cached_s * 1000:.0f} ms")
        assert [a.status_code for a in answers] == [200] * 3
        assert len({a.content for a in answers}) == 1
        assert again.content == answers[0].content
        assert video_size(answers[0].content) == (1920, 1080)
        assert peak.growth_mb < 150
        assert peak.seconds < 20
        assert watch.worst_ms < 500
        assert cached_s < 1.0

    def test_first_download_of_a_one_minute_full_hd_result(
        self, server: ServerProcess, http: httpx.Client, full_hd_minute: dict[str, bytes]
    ) -> None:
        """The first download of a 60 s 1080p result (its render) takes a few seconds at most."""
        with MediaServer(full_hd_minute) as files:
            url = _wanted_result(http, files, 60)
            with Peak(server) as peak:
                answer = http.get(url)
        print(
            f"\n[render 60 s 1080p x1] {answer.status_code} {len(answer.content)} bytes, "
            f"{video_size(answer.content)}: {peak.seconds:.2f} s, "
            f"peak RSS growth {peak.growth_mb:.0f} MB"
        )
        assert answer.status_code == 200
        assert video_size(answer.content) == (1920, 1080)
        assert peak.seconds < 10
        assert peak.growth_mb < 150

    def test_result_url_as_video_url_does_not_block_the_loop(
        self, server: ServerProcess, http: httpx.Client, full_hd_minute: dict[str, bytes]
    ) -> None:
        """A result URL given as video_url renders (once) off the event loop."""
        with MediaServer(full_hd_minute) as files:
            url = _wanted_result(http, files, 60)
            with LoopWatch(server.base_url) as watch:
                r = http.post(IDENTIFY, json={"video_url": url}, headers=AUTH)
            print(
                f"\n[own result as video_url] code {r.json()['code']}: "
                f"loop blocked at most {watch.worst_ms:.0f} ms"
            )
        assert r.json()["code"] == 0, r.text
        assert watch.worst_ms < 500


class TestProbeOffTheLoop:
    def test_five_megabyte_adts_does_not_freeze_clients(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """Probing a 5 MB ADTS file leaves other clients answered within a fraction of a second."""
        adts = silent_adts()
        assert 5_000_000 < len(adts) <= 5 * 1024 * 1024, len(adts)
        with MediaServer({"/long.aac": adts}) as files:
            sid = session(http)
            with LoopWatch(server.base_url) as watch:
                started = time.perf_counter()
                r = create(http, sid, files.url("/long.aac"))
                took = time.perf_counter() - started
            print(
                f"\n[5 MB ADTS] {len(adts)} bytes, create code {r.json()['code']} in {took:.2f} s; "
                f"loop blocked at most {watch.worst_ms:.0f} ms over {len(watch.latencies)} GETs"
            )
        body = assert_envelope(r, 1201)
        assert "rule sound-duration" in body["message"]
        assert watch.worst_ms < 300


class TestRange:
    def test_range_requests_on_results_and_audio(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """/files/ answers 206 with Content-Range for a range, 416 past the end, 1203 if unknown."""
        sid = session(http)
        r = create(http, sid, "https://example.com/speech.mp3")
        url = result_url(http, r.json()["data"]["task_id"])
        whole = http.get(url)
        assert whole.status_code == 200
        size = len(whole.content)
        part = http.get(url, headers={"Range": "bytes=10-109"})
        print(f"\n[range] whole {whole.status_code} {size} bytes, part {part.status_code}")
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 10-109/{size}"
        assert part.content == whole.content[10:110]
        tail = http.get(url, headers={"Range": "bytes=-16"})
        assert tail.status_code == 206 and tail.content == whole.content[-16:]
        past = http.get(url, headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{size}"
        assert_envelope(http.get(url.replace("/videos/", "/videos/x")), 1203)

        tts = {"text": "hello there", "voice_id": "oversea_male1", "voice_language": "en"}
        data = http.post("/v1/audio/tts", json=tts, headers=AUTH).json()["data"]
        audio_url = data["task_result"]["audios"][0]["url"]
        audio = http.get(audio_url, headers={"Range": "bytes=0-3"})
        assert audio.status_code == 206 and len(audio.content) == 4


class TestLookingFurther:
    def test_png_bomb_video_is_refused_without_inflating(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """A 0.7 MB MOV whose PNG frames declare 16000x16000 is refused, never inflated."""
        bomb = png_bomb_mov()
        with MediaServer({"/bomb.mov": bomb}) as files, Peak(server) as peak:
            r = http.post(IDENTIFY, json={"video_url": files.url("/bomb.mov")}, headers=AUTH)
        print(
            f"\n[png bomb] {len(bomb)} bytes: code {r.json()['code']} "
            f"{r.json()['message'][:90]!r}, peak RSS growth {peak.growth_mb:.0f} MB "
            f"in {peak.seconds:.2f} s"
        )
        body = assert_envelope(r, 1201)
        assert "rule video-" in body["message"]
        assert peak.growth_mb < 32
        assert peak.seconds < 2

    def test_many_streams_are_refused_before_probing_them(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """An M4A of 300 tracks is refused without FFmpeg probing each of them."""
        many = many_streams_m4a()
        with MediaServer({"/many.m4a": many}) as files:
            sid = session(http)
            with Peak(server) as peak:
                r = create(http, sid, files.url("/many.m4a"))
        print(
            f"\n[300 streams] {len(many)} bytes: code {r.json()['code']}, "
            f"peak RSS growth {peak.growth_mb:.0f} MB in {peak.seconds:.2f} s"
        )
        body = assert_envelope(r, 1201)
        assert "rule sound-content" in body["message"]
        assert peak.growth_mb < 32

    @pytest.mark.parametrize(("rate", "samples"), [(1, 60), (100, 6000), (2**31 - 1, 480_000)])
    def test_absurd_sample_rates_are_refused(
        self, server: ServerProcess, http: httpx.Client, rate: int, samples: int
    ) -> None:
        """A WAV at 1 Hz (60 samples: "60 s" in 164 bytes) or 2 GHz is not a sound."""
        with MediaServer({"/odd.wav": wav(rate, samples)}) as files:
            r = create(http, session(http), files.url("/odd.wav"))
        print(f"\n[{rate} Hz wav] code {r.json()['code']}: {r.json()['message'][:100]!r}")
        body = assert_envelope(r, 1201)
        assert "rule sound-content" in body["message"]

    def test_giant_id3_tag_is_read_as_its_audio(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """An MP3 behind a 4.9 MB ID3 tag is its 3 s of audio, and costs little."""
        tagged = giant_id3_mp3()
        assert media.probe_bytes(tagged).duration_ms in range(2950, 3100)
        with MediaServer({"/tagged.mp3": tagged}) as files:
            sid = session(http)
            with Peak(server) as peak:
                r = create(http, sid, files.url("/tagged.mp3"))
        print(
            f"\n[giant ID3] {len(tagged)} bytes: code {r.json()['code']}, "
            f"peak RSS growth {peak.growth_mb:.0f} MB in {peak.seconds:.2f} s"
        )
        assert r.json()["code"] == 0, r.text
        assert peak.growth_mb < 64
