"""Media metadata for a URL, id or base64 payload: fixture, then real probe, then derivation."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import unquote

from .. import media
from ..urls import is_loopback, is_url, split_url
from .errors import ApiError
from .fixtures import FixtureSet
from .models import AudioMeta, BlobKey, Face, MetaSource, VideoMeta
from .store import blob_key

PROBE_CACHE_ENTRIES = 4096
MAX_VIDEO_BYTES = 100 * 1024 * 1024
MAX_SOUND_BYTES = 5 * 1024 * 1024
VIDEO_FORMATS = frozenset({"mp4", "mov"})
SOUND_FORMATS = frozenset({"mp3", "wav", "m4a", "aac"})


class FetchError(Exception):
    """A URL that could not be read; str(e) says why."""


class FetchTooLarge(FetchError):
    """A URL whose response went past the byte limit while it was being read."""


Fetcher = Callable[[str, int], Awaitable[bytes]]
"""Reads a loopback http(s) URL, refusing more than the given number of bytes."""

OwnFiles = Callable[[str], Awaitable[bytes | None]]
"""Bytes of a file this mock serves itself (TTS audio, results), by absolute URL."""


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def derive_faces(key: str, duration_ms: int) -> tuple[Face, ...]:
    """One or two faces, fixed for a given key: face "0" is on screen from the start."""
    h = _digest("faces:" + key)
    first_end = max(min(duration_ms, 2000), duration_ms - (h % 4) * 500)
    faces = [Face("0", 0, first_end)]
    if duration_ms >= 8000 and h % 3 == 0:
        faces.append(Face("1", duration_ms // 2, duration_ms))
    return tuple(faces)


def derive_video(key: str) -> VideoMeta:
    """Deterministic metadata for a video nobody registered: 6-30 s, 720p or 1080p."""
    h = _digest("video:" + key)
    duration = 6000 + (h % 241) * 100
    width, height = ((1280, 720), (1920, 1080), (720, 1280))[(h >> 12) % 3]
    return VideoMeta(
        duration_ms=duration,
        width=width,
        height=height,
        size_bytes=duration * 250,
        format="mov" if _extension(key) == "mov" else "mp4",
        faces=derive_faces(key, duration),
        source=MetaSource.DERIVED,
    )


def derive_audio(key: str, fmt: str) -> AudioMeta:
    """Deterministic metadata for an audio URL nobody registered: 5-30 s."""
    h = _digest("audio:" + key)
    duration = 5000 + (h % 251) * 100
    return AudioMeta(
        duration_ms=duration, size_bytes=duration * 16, format=fmt, source=MetaSource.DERIVED
    )


def _extension(url: str) -> str | None:
    fmt = media.format_from_extension(split_url(url).path if "://" in url else url)
    if fmt is not None:
        return fmt.value
    suffix = Path(unquote(split_url(url).path)).suffix.lower().lstrip(".")
    return suffix or None


def decode_base64(value: str, field: str) -> bytes:
    """Strict base64 (a data: URI prefix is allowed); at most 5 MB once decoded."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > MAX_SOUND_BYTES + 3:
        raise ApiError.rule_broken("sound-size", f"{field}: the decoded audio is larger than 5 MB")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError.rule_broken(
            "sound-content", f"{field}: neither an http(s) URL nor valid base64 ({exc})"
        ) from exc
    if len(data) > MAX_SOUND_BYTES:
        raise ApiError.rule_broken("sound-size", f"{field}: the decoded audio is larger than 5 MB")
    return data


def check_video(meta: VideoMeta, field: str) -> None:
    """The documented limits of identify-face videos."""
    if meta.format not in VIDEO_FORMATS:
        raise ApiError.rule_broken(
            "video-format", f"{field}: videos must be .mp4 or .mov, got {meta.format}"
        )
    if meta.size_bytes > MAX_VIDEO_BYTES:
        raise ApiError.rule_broken(
            "video-size", f"{field}: the video is {meta.size_bytes} bytes, more than 100 MB"
        )
    if not 2000 <= meta.duration_ms <= 60000:
        raise ApiError.rule_broken(
            "video-duration",
            f"{field}: the video lasts {meta.duration_ms} ms; it must last 2 s to 60 s",
        )
    # "720p or 1080p" names the class by one side; the other may go down to 512 px (the
    # documented lower bound, unreachable if the shorter side had to be 720 or 1080).
    sides = (meta.width, meta.height)
    if not all(512 <= s <= 2160 for s in sides) or not {720, 1080} & set(sides):
        raise ApiError.rule_broken(
            "video-resolution",
            f"{field}: the video is {meta.width}x{meta.height}; it must be 720p or 1080p "
            "with each side between 512 and 2160 px",
        )


def check_sound(meta: AudioMeta, field: str) -> None:
    if meta.format not in SOUND_FORMATS:
        raise ApiError.rule_broken(
            "sound-format", f"{field}: audio must be mp3, wav, m4a or aac, got {meta.format}"
        )
    if meta.size_bytes > MAX_SOUND_BYTES:
        raise ApiError.rule_broken(
            "sound-size", f"{field}: the audio is {meta.size_bytes} bytes, more than 5 MB"
        )
    check_sound_duration(meta.duration_ms, field)


def check_sound_duration(duration_ms: int, field: str) -> None:
    if not 2000 <= duration_ms <= 60000:
        raise ApiError.rule_broken(
            "sound-duration",
            f"{field}: the audio lasts {duration_ms} ms; it must last 2 s to 60 s",
        )


class MediaResolver:
    def __init__(
        self,
        fixtures: FixtureSet,
        fetch: Fetcher,
        own_files: OwnFiles,
        allowed_dirs: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self._fixtures = fixtures
        self._fetch = fetch
        self._own_files = own_files
        self._allowed = tuple(Path(d).resolve() for d in allowed_dirs)
        self._probed: OrderedDict[BlobKey, media.MediaInfo] = OrderedDict()

    def _probe(self, data: bytes) -> media.MediaInfo:
        """probe_bytes, remembered by content hash: clients resend the same audio a lot, and
        decoding every frame (exact durations) costs about 1 ms per 3 s of MP3."""
        key = blob_key(data)
        info = self._probed.get(key)
        if info is None:
            info = media.probe_bytes(data)
            self._probed[key] = info
            if len(self._probed) > PROBE_CACHE_ENTRIES:
                self._probed.popitem(last=False)
        return info

    async def _read(
        self, url: str, limit: int, rule: str, size_rule: str, field: str
    ) -> bytes | None:
        """The bytes behind a URL we may read, or None when the URL is to be derived."""
        own = await self._own_files(url)
        if own is not None:
            return own
        scheme = split_url(url).scheme.lower()
        if scheme == "file":
            path = Path(unquote(split_url(url).path)).resolve()
            if not any(path.is_relative_to(d) for d in self._allowed):
                raise ApiError.rule_broken(
                    rule, f"{field}: {path} is not inside a folder allowed with --allow-dir"
                )
            try:
                size = path.stat().st_size
                if size > limit:
                    raise ApiError.rule_broken(
                        size_rule, f"{field}: {path} is {size} bytes, more than {limit}"
                    )
                return path.read_bytes()
            except OSError as exc:
                raise ApiError.rule_broken(rule, f"{field}: cannot read {path}: {exc}") from exc
        if not is_loopback(url):
            return None
        try:
            return await self._fetch(url, limit)
        except FetchTooLarge as exc:
            raise ApiError.rule_broken(size_rule, f"{field}: {url} is {exc}") from exc
        except FetchError as exc:
            raise ApiError.rule_broken(rule, f"{field}: cannot fetch {url}: {exc}") from exc

    async def video_from_url(self, url: str, field: str = "video_url") -> VideoMeta:
        fixture = self._fixtures.videos_by_url.get(url)
        if fixture is not None:
            check_video(fixture, field)
            return fixture
        if not is_url(url):
            raise ApiError.rule_broken(
                "video-url-reachable", f"{field}: {url!r} is not an http(s) or file URL"
            )
        data = await self._read(url, MAX_VIDEO_BYTES, "video-url-reachable", "video-size", field)
        if data is None:
            ext = _extension(url)
            if ext is not None and ext not in VIDEO_FORMATS:
                raise ApiError.rule_broken(
                    "video-format", f"{field}: videos must be .mp4 or .mov, got .{ext}"
                )
            return derive_video(url)
        if len(data) > MAX_VIDEO_BYTES:
            raise ApiError.rule_broken("video-size", f"{field}: the video is more than 100 MB")
        meta = await asyncio.to_thread(self._probe_video, data, url, field)
        check_video(meta, field)
        return meta

    def _probe_video(self, data: bytes, key: str, field: str) -> VideoMeta:
        try:
            info = media.probe_bytes(data)
        except media.MediaError as exc:
            raise ApiError.rule_broken(
                "video-format", f"{field}: the video could not be decoded: {exc}"
            ) from exc
        if not info.has_video or info.width is None or info.height is None:
            raise ApiError.rule_broken("video-format", f"{field}: the file has no video stream")
        return VideoMeta(
            duration_ms=info.duration_ms,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            format=info.format.value,
            faces=derive_faces(key, info.duration_ms),
            source=MetaSource.PROBED,
        )

    def video_from_id(self, video_id: str) -> VideoMeta:
        fixture = self._fixtures.videos_by_id.get(video_id)
        if fixture is not None:
            return fixture
        return derive_video("id:" + video_id)

    async def sound(self, value: str, field: str, keep: Callable[[bytes], BlobKey]) -> AudioMeta:
        """Metadata of a sound_file; real bytes are handed to `keep` and only the key is kept."""
        fixture = self._fixtures.audios_by_url.get(value)
        if fixture is not None:
            check_sound(fixture, field)
            return fixture
        if is_url(value):
            data = await self._read(
                value, MAX_SOUND_BYTES, "sound-url-reachable", "sound-size", field
            )
            if data is None:
                ext = _extension(value) or "mp3"
                meta = derive_audio(value, ext)
                check_sound(meta, field)
                return meta
            if len(data) > MAX_SOUND_BYTES:
                raise ApiError.rule_broken("sound-size", f"{field}: the audio is more than 5 MB")
            declared = _extension(value)
        else:
            data = decode_base64(value, field)
            declared = None
        meta = await asyncio.to_thread(probe_sound, data, field, declared, self._probe)
        check_sound(meta, field)
        return AudioMeta(
            duration_ms=meta.duration_ms,
            size_bytes=meta.size_bytes,
            format=meta.format,
            source=MetaSource.PROBED,
            blob=keep(data),
        )


def probe_sound(
    data: bytes,
    field: str,
    declared: str | None,
    probe: Callable[[bytes], media.MediaInfo] = media.probe_bytes,
) -> AudioMeta:
    """Real format and duration of audio bytes; a name that lies about the format is refused."""
    if not data:
        raise ApiError.rule_broken("sound-content", f"{field}: the audio is empty")
    try:
        info = probe(data)
    except media.MediaError as exc:
        raise ApiError.rule_broken(
            "sound-content", f"{field}: the audio could not be decoded: {exc}"
        ) from exc
    if not info.has_audio:
        raise ApiError.rule_broken("sound-content", f"{field}: the file has no audio stream")
    fmt = info.format.value
    if fmt not in SOUND_FORMATS:
        raise ApiError.rule_broken(
            "sound-format", f"{field}: audio must be mp3, wav, m4a or aac, got {fmt}"
        )
    if declared is not None and declared in SOUND_FORMATS and declared != fmt:
        raise ApiError.rule_broken(
            "sound-format", f"{field}: the name says .{declared} but the content is {fmt}"
        )
    if declared is not None and declared not in SOUND_FORMATS:
        raise ApiError.rule_broken(
            "sound-format", f"{field}: audio must be .mp3/.wav/.m4a/.aac, got .{declared}"
        )
    return AudioMeta(
        duration_ms=info.duration_ms,
        size_bytes=info.size_bytes,
        format=fmt,
        source=MetaSource.PROBED,
    )
