"""Probing and synthesis of audio and video media with PyAV, independent of the HTTP layer."""

from __future__ import annotations

import enum
import functools
import io
import logging
import math
import os
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, cast

import av
import av.error
import av.filter
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Disposition, Stream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

__all__ = [
    "MAX_DECODE_MS",
    "MAX_RESULT_MS",
    "MAX_RESULT_SIDE",
    "MediaError",
    "MediaFormat",
    "MediaInfo",
    "format_from_extension",
    "make_audio",
    "make_video",
    "probe_bytes",
    "probe_file",
    "render_result",
    "speech_duration_ms",
    "synthesize_speech",
]


class MediaError(Exception):
    """Media that cannot be decoded or is not what it claims to be.

    str(e) is a user-facing reason.
    """


class MediaFormat(enum.StrEnum):
    """Container formats the lip-sync API distinguishes, detected from content."""

    MP3 = "mp3"
    WAV = "wav"
    M4A = "m4a"
    AAC = "aac"
    MP4 = "mp4"
    MOV = "mov"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a probe learned about one media file."""

    format: MediaFormat
    duration_ms: int
    size_bytes: int
    has_audio: bool
    has_video: bool
    width: int | None
    height: int | None
    # The audio was decoded only up to the bound (MAX_DECODE_MS): it lasts at least
    # duration_ms, probably much longer.
    truncated: bool = False


# Errors PyAV raises for bad input: FFmpegError and the builtin bases its subclasses mix in.
_AV_ERRORS: tuple[type[Exception], ...] = (
    av.error.FFmpegError,
    OSError,
    ValueError,
    RuntimeError,
)

_EXTENSIONS: dict[str, MediaFormat] = {
    "mp3": MediaFormat.MP3,
    "wav": MediaFormat.WAV,
    "m4a": MediaFormat.M4A,
    "aac": MediaFormat.AAC,
    "mp4": MediaFormat.MP4,
    "mov": MediaFormat.MOV,
}

_ISOBMFF = "mp4"  # one of the names in FFmpeg's "mov,mp4,m4a,3gp,3g2,mj2" demuxer

# Media is trusted only as far as it was decoded. An audio probe decodes every sample, but no
# more than the rules' maximum (60 s) plus a margin: past that the audio is reported as longer
# (truncated), whatever its container claims, and the rules refuse it. A probe also stops, as
# undecodable, after PROBE_SECONDS of wall time or when a stream decodes at an absurd rate.
MAX_DECODE_MS = 65_000
PROBE_SECONDS = 10.0
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_STREAMS = 16
# A video frame is decoded only when its declared size is plausible; larger ones are reported
# with their declared size, which the resolution rule refuses, without allocating the frame.
MAX_PROBE_SIDE = 8192
MAX_PIXELS = 3840 * 2160 * 2
_DECODER_OPTIONS = {"max_pixels": str(MAX_PIXELS)}

log = logging.getLogger("mock_server.media")

_AUDIO_RATE = 48_000
_SPEECH_RATE = 24_000
_FRAME_SAMPLES = 4096
_MS = Fraction(1, 1000)

_SPEECH_MS_PER_CHAR = 65
_SPEECH_MIN_MS = 1000
_SPEECH_SCALE_HZ = (196.0, 220.0, 247.0, 294.0, 330.0, 392.0, 440.0, 494.0)

# Results are rendered at the parent's size, within the rules' own limits, and kept cheap: a
# static picture of two flat areas (a light box where the face would be) at 2 frames per second
# with a keyframe every ten seconds, x264's fastest preset: ~50 KB and under a second for 60 s
# of 1080p.
MAX_RESULT_SIDE = 2160
MAX_RESULT_MS = 60_000
_RESULT_FPS = 2
_RESULT_GOP_S = 10
_BACKGROUND_HZ = 110
_BACKGROUND_GAIN = 0.5  # the sine source peaks at 1/8 full scale
_STAND_IN_HZ = 330
_STAND_IN_GAIN = 2.0

_MAX_DECODE_ERRORS = 3


def _reason(exc: BaseException) -> str:
    """A short human-readable reason for a PyAV/FFmpeg exception."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- probing


def probe_bytes(data: bytes) -> MediaInfo:
    """Probe in-memory media; raises MediaError for empty, corrupt or undecodable data."""
    if not data:
        raise MediaError("empty file")
    return _probe(io.BytesIO(data), len(data))


def probe_file(path: str | os.PathLike[str]) -> MediaInfo:
    """Probe a media file on disk; raises MediaError for empty, corrupt or undecodable files."""
    size = os.path.getsize(path)
    if size == 0:
        raise MediaError("empty file")
    with open(path, "rb") as handle:
        return _probe(handle, size)


def format_from_extension(name: str) -> MediaFormat | None:
    """The format a file name or URL claims by its extension, or None for unknown ones."""
    base = name.strip().split("?", 1)[0].split("#", 1)[0]
    base = base.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    _, dot, ext = base.rpartition(".")
    if not dot:
        return None
    return _EXTENSIONS.get(ext.lower())


def _open(source: BinaryIO) -> InputContainer:
    """Open media for reading; undecodable tag text is replaced rather than fatal.

    FFmpeg's own limits keep a small file from costing much: at most MAX_STREAMS streams
    (each would be probed) and frames of at most MAX_PIXELS pixels (a PNG in a MOV may
    declare 16000x16000 and inflate to 256 MB).
    """
    # PyAV's stub types stream_options as list[str]; it takes one dict of options per stream.
    per_stream = cast("list[str]", [_DECODER_OPTIONS] * MAX_STREAMS)
    container = av.open(
        source,
        mode="r",
        metadata_errors="replace",
        options={"max_streams": str(MAX_STREAMS)},
        stream_options=per_stream,
    )
    for stream in container.streams:
        stream.codec_context.options = dict(_DECODER_OPTIONS)
    return container


def _probe(source: BinaryIO, size: int) -> MediaInfo:
    deadline = time.monotonic() + PROBE_SECONDS
    try:
        container = _open(source)
    except av.error.MemoryError as exc:  # what FFmpeg says past max_streams
        raise MediaError(
            f"media could not be decoded: more than {MAX_STREAMS} streams, or too large"
        ) from exc
    except _AV_ERRORS as exc:
        raise MediaError(f"media could not be decoded: {_reason(exc)}") from exc
    try:
        with container:
            return _inspect(container, size, deadline)
    except MediaError:
        raise
    except _AV_ERRORS as exc:
        raise MediaError(f"media could not be decoded: {_reason(exc)}") from exc


def _inspect(container: InputContainer, size: int, deadline: float) -> MediaInfo:
    if len(container.streams) > MAX_STREAMS:
        raise MediaError(
            f"media could not be decoded: {len(container.streams)} streams, "
            f"more than the {MAX_STREAMS} a media file may hold"
        )
    audio = container.streams.audio[0] if container.streams.audio else None
    video = next(
        (s for s in container.streams.video if not s.disposition & Disposition.attached_pic),
        None,
    )
    if audio is None and video is None:
        raise MediaError("no audio or video stream found")
    fmt = _detect_format(container, has_video=video is not None)
    width = height = None
    if video is not None:
        width = video.codec_context.width or None
        height = video.codec_context.height or None

    truncated = False
    if video is None:
        assert audio is not None
        duration_ms, truncated = _decode_audio(container, audio, deadline)
    else:
        streams: list[AudioStream | VideoStream] = [s for s in (audio, video) if s is not None]
        declared = _declared_ms(container, streams)
        if max(width or 0, height or 0) > MAX_PROBE_SIDE:
            # The rules refuse this size anyway: report it without decoding a frame of it.
            duration_ms = declared or 0
        elif declared is None:
            duration_ms = _decode(container, streams, full=True, deadline=deadline)
        else:
            _decode(container, streams, full=False, deadline=deadline)
            duration_ms = declared
        if max(width or 0, height or 0) <= MAX_PROBE_SIDE:
            # as decoded: the decoder sets the size of the frames it actually produced
            width = video.codec_context.width or None
            height = video.codec_context.height or None
    if duration_ms <= 0:
        raise MediaError("media has no duration")
    return MediaInfo(
        format=fmt,
        duration_ms=duration_ms,
        size_bytes=size,
        has_audio=audio is not None,
        has_video=video is not None,
        width=width,
        height=height,
        truncated=truncated,
    )


def _check_rate(rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise MediaError(
            f"audio could not be decoded: a sample rate of {rate} Hz "
            f"(accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)"
        )


def _decode_audio(
    container: InputContainer, stream: AudioStream, deadline: float
) -> tuple[int, bool]:
    """Decoded duration of an audio stream, in ms, and whether decoding stopped at the bound.

    At most _MAX_DECODE_ERRORS packets may fail (trailing padding, a glitch a player skips);
    one more refuses the file. The render skips at least as many, so a sound the mock
    accepts is one it can render.
    """
    _check_rate(stream.codec_context.sample_rate or stream.rate or 0)
    seconds = Fraction(0)
    limit = Fraction(MAX_DECODE_MS, 1000)
    frames = errors = 0
    for packet in container.demux(stream):
        if time.monotonic() > deadline:
            raise MediaError(f"audio could not be decoded within {PROBE_SECONDS:g} s")
        try:
            decoded = packet.decode()
        except _AV_ERRORS as exc:
            errors += 1
            if errors > _MAX_DECODE_ERRORS:
                raise MediaError(f"audio could not be decoded: {_reason(exc)}") from exc
            continue
        for frame in decoded:
            if not isinstance(frame, AudioFrame):
                continue
            _check_rate(frame.sample_rate)
            frames += 1
            seconds += Fraction(frame.samples, frame.sample_rate)
            if seconds > limit:
                return round(seconds * 1000), True
    if not frames:
        raise MediaError("audio could not be decoded: no audio frames")
    return round(seconds * 1000), False


def _detect_format(container: InputContainer, *, has_video: bool) -> MediaFormat:
    names = container.format.name.split(",")
    if names == ["mp3"]:
        return MediaFormat.MP3
    if names == ["wav"]:
        return MediaFormat.WAV
    if names == ["aac"]:
        return MediaFormat.AAC
    if _ISOBMFF in names:
        if not has_video:
            return MediaFormat.M4A
        brand = container.metadata.get("major_brand", "").strip()
        return MediaFormat.MOV if brand == "qt" else MediaFormat.MP4
    return MediaFormat.OTHER


def _declared_ms(
    container: InputContainer, streams: Sequence[AudioStream | VideoStream]
) -> int | None:
    """Duration the container or its streams declare, or None when nothing is declared."""
    if container.duration is not None and container.duration > 0:
        return round(container.duration / 1000)
    best: Fraction | None = None
    for stream in streams:
        if stream.duration and stream.time_base:
            seconds = stream.duration * stream.time_base
            best = seconds if best is None else max(best, seconds)
    return None if best is None else round(best * 1000)


class _Span:
    """Decoded extent of one stream."""

    __slots__ = ("first", "frames", "samples", "stop")

    def __init__(self) -> None:
        self.frames = 0
        self.samples = 0
        self.first: float | None = None
        self.stop = 0.0


def _frames(
    container: InputContainer,
    streams: Sequence[AudioStream | VideoStream],
    failures: dict[int, BaseException],
    deadline: float | None = None,
) -> Iterator[tuple[AudioStream | VideoStream, AudioFrame | VideoFrame]]:
    """Decode the streams, skipping a few bad packets like players do.

    The last error of each stream is recorded in ``failures``; once a stream has more
    errors than the budget allows, MediaError is raised.
    """
    by_index = {stream.index: stream for stream in streams}
    errors = dict.fromkeys(by_index, 0)
    packets = 0
    for packet in container.demux(*streams):
        if deadline is not None and time.monotonic() > deadline:
            raise MediaError(f"media could not be decoded within {PROBE_SECONDS:g} s")
        stream = by_index[packet.stream.index]
        packets += 1
        try:
            decoded = packet.decode()
        except _AV_ERRORS as exc:
            failures[stream.index] = exc
            errors[stream.index] += 1
            if errors[stream.index] > max(_MAX_DECODE_ERRORS, packets // 10):
                raise MediaError(f"{stream.type} could not be decoded: {_reason(exc)}") from exc
            continue
        for frame in decoded:
            if isinstance(frame, AudioFrame | VideoFrame):
                yield stream, frame


def _decode(
    container: InputContainer,
    streams: Sequence[AudioStream | VideoStream],
    *,
    full: bool,
    deadline: float,
) -> int:
    """Decode the streams (all of them up to MAX_DECODE_MS, or until each yields a frame);
    returns decoded ms."""
    spans = {stream.index: _Span() for stream in streams}
    failures: dict[int, BaseException] = {}
    for stream, frame in _frames(container, streams, failures, deadline):
        span = spans[stream.index]
        _account(span, frame, stream)
        if not full and all(span.frames for span in spans.values()):
            break
        if full and _span_seconds(span, stream) * 1000 > MAX_DECODE_MS:
            break

    longest = 0.0
    for stream in streams:
        span = spans[stream.index]
        if not span.frames:
            failure = failures.get(stream.index)
            reason = _reason(failure) if failure else f"no {stream.type} frames"
            raise MediaError(f"{stream.type} could not be decoded: {reason}")
        longest = max(longest, _span_seconds(span, stream))
    return round(longest * 1000)


def _span_seconds(span: _Span, stream: AudioStream | VideoStream) -> float:
    if isinstance(stream, AudioStream):
        rate = stream.codec_context.sample_rate or stream.rate
        return span.samples / rate if rate else 0.0
    return span.stop - (span.first or 0.0)


def _account(
    span: _Span, frame: AudioFrame | VideoFrame, stream: AudioStream | VideoStream
) -> None:
    span.frames += 1
    if isinstance(frame, AudioFrame):
        span.samples += frame.samples
    elif frame.time is not None:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        if span.first is None:
            span.first = frame.time
        span.stop = max(span.stop, frame.time + float(1 / rate))


# --------------------------------------------------------------------------- PCM helpers


@functools.lru_cache(maxsize=64)
def _tone_second(cycles: int, rate: int, level: int) -> bytes:
    """One second of signed 16-bit mono sine holding a whole number of cycles."""
    step = 2.0 * math.pi * cycles / rate
    return array("h", [round(level * math.sin(step * i)) for i in range(rate)]).tobytes()


def _tone_pcm(freq_hz: float, samples: int, rate: int, amplitude: float) -> bytes:
    """Signed 16-bit mono sine of the given length (frequency rounded to whole hertz)."""
    second = _tone_second(max(1, round(freq_hz)), rate, round(32767 * amplitude))
    repeats = -(-samples // rate)
    return (second * repeats)[: samples * 2]


def _pcm_frames(pcm: bytes, rate: int) -> Iterator[AudioFrame]:
    """Cut signed 16-bit mono PCM into timestamped audio frames."""
    total = len(pcm) // 2
    for start in range(0, total, _FRAME_SAMPLES):
        count = min(_FRAME_SAMPLES, total - start)
        frame = AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(pcm[start * 2 : (start + count) * 2])
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        yield frame


def _frame_pcm(frame: AudioFrame) -> bytes:
    """The signed 16-bit mono samples of a frame, without alignment padding."""
    return bytes(frame.planes[0])[: frame.samples * 2]


def _encode_audio(stream: AudioStream, pcm: bytes, rate: int) -> list[Packet[Stream]]:
    packets: list[Packet[Stream]] = []
    for frame in _pcm_frames(pcm, rate):
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _samples(duration_ms: int, rate: int) -> int:
    return duration_ms * rate // 1000


def _fit_pcm(pcm: bytes, samples: int) -> bytes:
    """Trim or zero-pad PCM to exactly the given sample count."""
    size = samples * 2
    return pcm[:size] if len(pcm) >= size else pcm + bytes(size - len(pcm))


# --------------------------------------------------------------------------- audio synthesis

_AUDIO_CONTAINERS: dict[MediaFormat, tuple[str, str]] = {
    MediaFormat.MP3: ("mp3", "libmp3lame"),
    MediaFormat.WAV: ("wav", "pcm_s16le"),
    MediaFormat.M4A: ("ipod", "aac"),
    MediaFormat.AAC: ("adts", "aac"),
}


def _write_audio(fmt: MediaFormat, pcm: bytes, rate: int) -> bytes:
    muxer, codec = _AUDIO_CONTAINERS[fmt]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=muxer) as output:
        stream = output.add_stream(codec, rate=rate)
        if not isinstance(stream, AudioStream):
            raise TypeError(f"{codec} is not an audio codec")
        stream.layout = "mono"
        output.mux(_encode_audio(stream, pcm, rate))
    return buffer.getvalue()


def make_audio(fmt: MediaFormat, duration_ms: int, freq_hz: float = 440.0) -> bytes:
    """A sine tone as mp3, wav, m4a (AAC in MP4) or aac (ADTS) bytes."""
    if fmt not in _AUDIO_CONTAINERS:
        raise ValueError(f"make_audio cannot write {fmt!s}; use mp3, wav, m4a or aac")
    if duration_ms <= 0:
        raise ValueError("duration_ms must be positive")
    if not 1 <= freq_hz < _AUDIO_RATE / 2:
        raise ValueError("freq_hz must lie between 1 Hz and the Nyquist frequency")
    pcm = _tone_pcm(freq_hz, _samples(duration_ms, _AUDIO_RATE), _AUDIO_RATE, 0.5)
    return _write_audio(fmt, pcm, _AUDIO_RATE)


def speech_duration_ms(text: str, speed: float = 1.0) -> int:
    """Length of the synthetic speech for a text: 65 ms per character / speed, at least 1 s."""
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError("speed must be a positive number")
    return max(_SPEECH_MIN_MS, round(len(text.strip()) * _SPEECH_MS_PER_CHAR / speed))


@functools.lru_cache(maxsize=256)
def _syllable(note: int, samples: int) -> bytes:
    """A short enveloped tone for one character, as signed 16-bit mono PCM."""
    freq = _SPEECH_SCALE_HZ[note]
    step = 2.0 * math.pi * freq / _SPEECH_RATE
    ramp = max(1, min(samples // 4, _SPEECH_RATE // 200))
    level = 0.4 * 32767
    values = array("h")
    for i in range(samples):
        envelope = min(1.0, i / ramp, (samples - 1 - i) / ramp)
        values.append(round(level * envelope * math.sin(step * i)))
    return values.tobytes()


def synthesize_speech(text: str, speed: float = 1.0) -> bytes:
    """An MP3 whose tone sequence follows the characters and lasts speech_duration_ms."""
    total = _samples(speech_duration_ms(text, speed), _SPEECH_RATE)
    chars = text.strip() or " "
    per_char = total // len(chars)
    parts: list[bytes] = []
    for char in chars:
        if char.isalnum():
            parts.append(_syllable(ord(char.lower()[0]) % len(_SPEECH_SCALE_HZ), per_char))
        else:
            parts.append(bytes(per_char * 2))
    pcm = _fit_pcm(b"".join(parts), total)
    return _write_audio(MediaFormat.MP3, pcm, _SPEECH_RATE)


# --------------------------------------------------------------------------- video synthesis


class _Pattern:
    """Diagonal stripes that drift over time, painted straight into yuv420p planes."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.period = max(8, (min(width, height) // 6) & ~1)
        half = self.period // 2
        self._luma = bytes(
            70 + (120 * (x % half)) // half if (x // half) % 2 else 200 - (120 * (x % half)) // half
            for x in range(width + self.period)
        )
        self._rows: dict[int, list[bytes]] = {}

    def _rows_for(self, line_size: int) -> list[bytes]:
        rows = self._rows.get(line_size)
        if rows is None:
            pad = bytes(line_size - self.width)
            rows = [self._luma[s : s + self.width] + pad for s in range(self.period)]
            self._rows[line_size] = rows
        return rows

    def frame(self, index: int) -> VideoFrame:
        frame = VideoFrame(self.width, self.height, "yuv420p")
        luma, cb, cr = frame.planes
        rows = self._rows_for(luma.line_size)
        shift = index * max(1, self.period // 8)
        luma.update(b"".join(rows[(shift + y) % self.period] for y in range(luma.height)))
        phase = index / 12.0
        cb.update(bytes([128 + round(48 * math.sin(phase))]) * cb.buffer_size)
        cr.update(bytes([128 + round(48 * math.cos(phase))]) * cr.buffer_size)
        return frame


def _still(width: int, height: int) -> VideoFrame:
    """A grey picture with a lighter box in its middle third, in yuv420p."""
    frame = VideoFrame(width, height, "yuv420p")
    luma, cb, cr = frame.planes
    left, right = luma.line_size // 3, 2 * luma.line_size // 3
    plain = bytes([70]) * luma.line_size
    boxed = plain[:left] + bytes([170]) * (right - left) + plain[right:]
    top, bottom = luma.height // 3, 2 * luma.height // 3
    luma.update(plain * top + boxed * (bottom - top) + plain * (luma.height - bottom))
    cb.update(bytes([120]) * cb.buffer_size)
    cr.update(bytes([140]) * cr.buffer_size)
    return frame


def _packet_time(packet: Packet[Stream]) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float((stamp or 0) * packet.time_base) if packet.time_base else 0.0


def _encode_mp4(
    duration_ms: int,
    width: int,
    height: int,
    fps: int,
    pcm: bytes | None,
    rate: int,
    *,
    static: bool = False,
) -> bytes:
    """An H.264/AAC MP4 of exactly duration_ms showing the drifting pattern (or, static, one
    still picture throughout, with a keyframe every _RESULT_GOP_S seconds)."""
    count = max(1, math.ceil(duration_ms * fps / 1000))
    stamps = [i * 1000 // fps for i in range(count)] + [duration_ms]
    lengths = {stamps[i]: stamps[i + 1] - stamps[i] for i in range(count)}
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        options = {"preset": "ultrafast", "crf": "30"}
        if static:
            options["tune"] = "stillimage"
        video = output.add_stream("libx264", rate=fps, options=options)
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = _MS
        if static:
            video.codec_context.gop_size = fps * _RESULT_GOP_S
        audio = None
        if pcm is not None:
            audio = output.add_stream("aac", rate=rate)
            audio.layout = "mono"
        packets: list[Packet[Stream]] = []
        pattern = _Pattern(width, height)
        still = _still(width, height) if static else None
        for index in range(count):
            frame = still or pattern.frame(index)
            frame.pts = stamps[index]
            frame.time_base = _MS
            packets.extend(video.encode(frame))
        packets.extend(video.encode(None))
        for packet in packets:
            if packet.pts is not None:
                packet.duration = lengths.get(packet.pts, packet.duration)
        if audio is not None and pcm is not None:
            packets.extend(_encode_audio(audio, pcm, rate))
        packets.sort(key=_packet_time)
        output.mux(packets)
    return buffer.getvalue()


def _check_video_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError("width and height must be positive even numbers")


def make_video(
    duration_ms: int, width: int, height: int, *, fps: int = 10, with_audio: bool = True
) -> bytes:
    """An H.264 MP4 of the given size and length, with an AAC tone unless with_audio is False."""
    if duration_ms <= 0:
        raise ValueError("duration_ms must be positive")
    if not 1 <= fps <= 120:
        raise ValueError("fps must lie between 1 and 120")
    _check_video_size(width, height)
    pcm = None
    if with_audio:
        pcm = _tone_pcm(220.0, _samples(duration_ms, _AUDIO_RATE), _AUDIO_RATE, 0.3)
    return _encode_mp4(duration_ms, width, height, fps, pcm, _AUDIO_RATE)


# --------------------------------------------------------------------------- result rendering


def _result_size(width: int, height: int) -> tuple[int, int]:
    """The parent's size, scaled down so the longer side is at most MAX_RESULT_SIDE; even."""
    scale = min(1.0, MAX_RESULT_SIDE / max(width, height))
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


def _decode_mono(data: bytes, rate: int, max_samples: int) -> bytes:
    """Decode the first audio stream of some media into signed 16-bit mono PCM, stopping once
    max_samples are decoded: what lies past them is never needed."""
    if not data:
        raise MediaError("empty file")
    chunks: list[bytes] = []
    failures: dict[int, BaseException] = {}
    try:
        with _open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise MediaError("no audio stream found")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            size = 0
            for _, frame in _frames(container, [stream], failures):
                if isinstance(frame, AudioFrame):
                    for out in resampler.resample(frame):
                        chunks.append(_frame_pcm(out))
                        size += out.samples
                if size >= max_samples:
                    break
            else:
                chunks.extend(_frame_pcm(out) for out in resampler.resample(None))
    except MediaError:
        raise
    except _AV_ERRORS as exc:
        raise MediaError(f"audio could not be decoded: {_reason(exc)}") from exc
    if not chunks:
        failure = next(iter(failures.values()), None)
        reason = _reason(failure) if failure else "no audio frames"
        raise MediaError(f"audio could not be decoded: {reason}")
    return b"".join(chunks)


def _mix_result_audio(
    duration_ms: int,
    sound: bytes | None,
    sound_start_ms: int,
    sound_end_ms: int,
    insert_ms: int,
    sound_volume: float,
    original_volume: float,
) -> bytes:
    """Background tone plus the cropped, delayed, scaled sound, clipped, as s16 mono PCM."""
    rate = _AUDIO_RATE
    graph = av.filter.Graph()
    background = graph.add(
        "sine", f"frequency={_BACKGROUND_HZ}:sample_rate={rate}:duration={duration_ms}ms"
    )
    background_gain = graph.add("volume", f"volume={_BACKGROUND_GAIN * original_volume:.6f}")
    mix = graph.add("amix", "inputs=2:duration=first:dropout_transition=0:normalize=0")
    clip = graph.add("aformat", "sample_fmts=s16:channel_layouts=mono")
    sink = graph.add("abuffersink")
    background.link_to(background_gain)
    background_gain.link_to(mix, 0, 0)
    mix.link_to(clip)
    clip.link_to(sink)

    crop_samples = _samples(sound_end_ms, rate) - _samples(sound_start_ms, rate)
    feed = b""
    if sound is not None:
        start = _samples(sound_start_ms, rate) * 2
        pcm = _decode_mono(sound, rate, _samples(sound_end_ms, rate))
        feed = pcm[start : start + crop_samples * 2]
    if sound is None and crop_samples > 0:
        length_ms = sound_end_ms - sound_start_ms
        source = graph.add(
            "sine", f"frequency={_STAND_IN_HZ}:sample_rate={rate}:duration={length_ms}ms"
        )
        gain = graph.add("volume", f"volume={_STAND_IN_GAIN * sound_volume:.6f}")
    elif feed:
        source = graph.add_abuffer(
            sample_rate=rate, format="s16", layout="mono", time_base=Fraction(1, rate)
        )
        gain = graph.add("volume", f"volume={sound_volume:.6f}")
    else:
        source = graph.add("anullsrc", f"sample_rate={rate}:channel_layout=mono:duration=0.001")
        gain = graph.add("volume", "volume=0")
    delay = graph.add("adelay", f"delays={insert_ms}:all=1")
    source.link_to(gain)
    gain.link_to(delay)
    delay.link_to(mix, 0, 1)
    graph.configure()

    if feed:
        for frame in _pcm_frames(feed, rate):
            source.push(frame)
        source.push(None)
    chunks: list[bytes] = []
    while True:
        try:
            out = sink.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        if isinstance(out, AudioFrame):
            chunks.append(_frame_pcm(out))
    return _fit_pcm(b"".join(chunks), _samples(duration_ms, rate))


def render_result(
    *,
    duration_ms: int,
    width: int,
    height: int,
    sound: bytes | None,
    sound_start_ms: int,
    sound_end_ms: int,
    insert_ms: int,
    sound_volume: float,
    original_volume: float,
) -> bytes:
    """The playable H.264/AAC MP4 a finished lip-sync task returns, at the parent's size.

    The rules' own limits bound it: at most MAX_RESULT_MS long, sides at most MAX_RESULT_SIDE
    (larger parents are scaled down). The picture is still and the frame rate low, so a
    60 s 1080p result costs about a second and weighs about 1 MB (mostly its audio).

    The soundtrack is a quiet tone standing for the original audio (scaled by original_volume)
    mixed with ``sound`` cropped to [sound_start_ms, sound_end_ms), scaled by sound_volume and
    placed at insert_ms; without a sound, a tone of the cropped length stands in for it.
    """
    if duration_ms <= 0:
        raise ValueError("duration_ms must be positive")
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    if sound_start_ms < 0 or sound_end_ms < sound_start_ms:
        raise ValueError("need 0 <= sound_start_ms <= sound_end_ms")
    if insert_ms < 0:
        raise ValueError("insert_ms must not be negative")
    for name, volume in (("sound_volume", sound_volume), ("original_volume", original_volume)):
        if not 0.0 <= volume <= 2.0:
            raise ValueError(f"{name} must lie in [0, 2]")
    duration_ms = min(duration_ms, MAX_RESULT_MS)
    sound_end_ms = min(sound_end_ms, sound_start_ms + duration_ms)
    insert_ms = min(insert_ms, duration_ms)
    pcm = _mix_result_audio(
        duration_ms, sound, sound_start_ms, sound_end_ms, insert_ms, sound_volume, original_volume
    )
    out_width, out_height = _result_size(width, height)
    return _encode_mp4(
        duration_ms, out_width, out_height, _RESULT_FPS, pcm, _AUDIO_RATE, static=True
    )
