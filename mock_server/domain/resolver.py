"""Media facts for a URL, id or base64 payload: fixture, then real probe, then derivation.

The resolver only finds things out (what the bytes are, how long they last, why they could not
be read); whether that breaks a rule is for `rules.py` to say. Every read, probe and decode
runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import unquote

from .. import media
from ..urls import is_loopback, is_url, split_url
from .fixtures import FixtureSet
from .models import AudioMeta, BlobKey, Face, MetaSource, VideoMeta
from .rules import MAX_SOUND_BYTES, MAX_VIDEO_BYTES, MediaFacts
from .store import blob_key

PROBE_CACHE_ENTRIES = 4096
DERIVED_CACHE_ENTRIES = 1024
DERIVED_CACHE_CHARS = 1024 * 1024  # of URL text
BASE64_CACHE_ENTRIES = 64
BASE64_CACHE_BYTES = 16 * 1024 * 1024  # base64 text and decoded bytes together
BASE64_KEY_CHARS = 64  # how much of a payload's head and tail its cache key holds


class FetchError(Exception):
    """A URL that could not be read; str(e) says why."""


class FetchTooLarge(FetchError):
    """A URL whose response went past the byte limit while it was being read."""


Fetcher = Callable[[str, int], Awaitable[bytes]]
"""Reads a loopback http(s) URL, refusing more than the given number of bytes."""

OwnFiles = Callable[[str], Awaitable[bytes | None]]
"""Bytes of a file this mock serves itself (TTS audio, results), by absolute URL."""

OwnAddress = Callable[[str], bool]
"""Whether a URL reaches this mock's own listening socket."""


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


def video_facts(meta: VideoMeta, field: str, label: str) -> MediaFacts:
    """Facts of a video whose metadata is already known (a fixture, a derivation, a result)."""
    return MediaFacts(
        field=field,
        label=label,
        format=meta.format,
        size_bytes=meta.size_bytes,
        duration_ms=meta.duration_ms,
        width=meta.width,
        height=meta.height,
        faces=meta.faces,
        generated_at_ms=meta.created_at_ms,
    )


def audio_facts(meta: AudioMeta, field: str, label: str) -> MediaFacts:
    return MediaFacts(
        field=field,
        label=label,
        format=meta.format,
        size_bytes=meta.size_bytes,
        duration_ms=meta.duration_ms,
    )


@dataclass(frozen=True, slots=True)
class ResolvedVideo:
    facts: MediaFacts
    meta: VideoMeta | None  # None when the facts break a rule (no metadata could be had)


@dataclass(frozen=True, slots=True)
class ResolvedSound:
    facts: MediaFacts
    meta: AudioMeta | None
    data: bytes | None  # the real bytes, kept as a blob once the task is accepted
    key: BlobKey | None = None  # blob_key(data), hashed once for the probe and the blob store


@dataclass(frozen=True, slots=True)
class _Read:
    data: bytes | None = None  # None: nothing to read, derive the metadata
    unreachable: str | None = None
    over_limit: int | None = None


def _read_file(path: Path, limit: int) -> _Read:
    """A regular file inside an allowed folder, at most `limit` bytes; never blocks on a FIFO."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would block the thread forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return _Read(unreachable=f"cannot read {path}: {exc.strerror or exc}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO, device, socket or folder
            return _Read(unreachable=f"{path} is not a regular file")
        if info.st_size > limit:
            return _Read(over_limit=limit)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        return _Read(unreachable=f"cannot read {path}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > limit:
        return _Read(over_limit=limit)
    return _Read(data)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The most recently used entries, at most `entries` of them and `budget` units in all
    (each entry's cost is given when it is put); an entry over a quarter of the budget is not
    kept."""

    def __init__(self, entries: int, budget: int) -> None:
        self._entries = entries
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, cost: int) -> None:
        if cost > self._budget // 4:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._used -= old[1]
        self._items[key] = (value, cost)
        self._used += cost
        while self._used > self._budget or len(self._items) > self._entries:
            _, (_, dropped) = self._items.popitem(last=False)
            self._used -= dropped

    def clear(self) -> None:
        self._items.clear()
        self._used = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def used(self) -> int:
        return self._used


class MediaResolver:
    def __init__(
        self,
        fixtures: FixtureSet,
        fetch: Fetcher,
        own_files: OwnFiles,
        own_address: OwnAddress = lambda url: False,
        allowed_dirs: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self._fixtures = fixtures
        self._fetch = fetch
        self._own_files = own_files
        self.own_address = own_address
        self._allowed = tuple(Path(d).resolve() for d in allowed_dirs)
        self._probed: OrderedDict[BlobKey, media.MediaInfo] = OrderedDict()
        # What a URL nobody registered derives to, by (field, URL): a pure function of the URL
        # once it is known to be neither one of our own files (asked again on every hit: a
        # TTS audio or a result may appear there later), a file, this mock, nor loopback.
        self._derived_videos: Recent[tuple[str, str], ResolvedVideo] = Recent(
            DERIVED_CACHE_ENTRIES, DERIVED_CACHE_CHARS
        )
        self._derived_sounds: Recent[tuple[str, str], ResolvedSound] = Recent(
            DERIVED_CACHE_ENTRIES, DERIVED_CACHE_CHARS
        )
        # The facts of recently sent base64 sound_files: a client's suite sends the same audio
        # again and again, and decoding and hashing it costs more than the rest of a create.
        # Keyed by length, head and tail; a hit is the whole string compared equal, so a
        # payload differing anywhere else misses.
        self._decoded: Recent[tuple[str, int, str, str], tuple[str, ResolvedSound]] = Recent(
            BASE64_CACHE_ENTRIES, BASE64_CACHE_BYTES
        )

    def clear(self) -> None:
        """Forget every probe result and remembered derivation (the control API's reset)."""
        self._probed.clear()
        self._derived_videos.clear()
        self._derived_sounds.clear()
        self._decoded.clear()

    async def _probe(self, data: bytes, key: BlobKey | None = None) -> media.MediaInfo:
        """probe_bytes in a worker thread, remembered by content hash (`key`: blob_key(data)
        when the caller has it): clients resend the same audio a lot, and decoding every frame
        (exact durations) costs about 1 ms per 3 s of MP3.
        """
        key = blob_key(data) if key is None else key
        info = self._probed.get(key)
        if info is None:
            info = await asyncio.to_thread(media.probe_bytes, data)
            self._probed[key] = info
            if len(self._probed) > PROBE_CACHE_ENTRIES:
                self._probed.popitem(last=False)
        return info

    async def _read(self, url: str, limit: int) -> _Read:
        """The bytes behind a URL we may read; data None when the URL is to be derived (only a
        URL that is not loopback, once it is none of our own files: the callers remember what
        it derives to)."""
        own = await self._own_files(url)
        if own is not None:
            return _Read(own)
        parts = split_url(url)
        if parts.scheme.lower() == "file":
            raw = unquote(parts.path)
            if "\x00" in raw:
                return _Read(unreachable=f"{url!r} holds a NUL byte, which no file name can")
            path = Path(raw).resolve()
            if not any(path.is_relative_to(d) for d in self._allowed):
                return _Read(unreachable=f"{path} is not inside a folder allowed with --allow-dir")
            return await asyncio.to_thread(_read_file, path, limit)
        if self.own_address(url):
            return _Read(unreachable=f"{url} is this mock's own address, which it never fetches")
        if not is_loopback(url):
            return _Read()
        try:
            return _Read(await self._fetch(url, limit))
        except FetchTooLarge:
            return _Read(over_limit=limit)
        except FetchError as exc:
            return _Read(unreachable=f"cannot fetch {url}: {exc}")

    async def video_from_url(self, url: str, field: str = "video_url") -> ResolvedVideo:
        fixture = self._fixtures.videos_by_url.get(url)
        if fixture is not None:
            return ResolvedVideo(video_facts(fixture, field, url), fixture)
        derived = self._derived_videos.get((field, url))
        if derived is not None:
            own = await self._own_files(url)
            if own is None:
                return derived
            return await self._probe_video(own, url, field, _extension(url))
        if not is_url(url):
            return ResolvedVideo(
                MediaFacts(field, url, not_a_source=f"{url!r} is not an http(s) or file URL"),
                None,
            )
        read = await self._read(url, MAX_VIDEO_BYTES)
        declared = _extension(url)
        if read.data is None:
            if read.unreachable or read.over_limit is not None:
                facts = MediaFacts(
                    field, url, unreachable=read.unreachable, over_limit=read.over_limit
                )
                return ResolvedVideo(facts, None)
            meta = derive_video(url)
            facts = video_facts(meta, field, url)
            derived = ResolvedVideo(replace(facts, declared=declared), meta)
            self._derived_videos.put((field, url), derived, len(url))
            return derived
        return await self._probe_video(read.data, url, field, declared)

    async def _probe_video(
        self, data: bytes, url: str, field: str, declared: str | None
    ) -> ResolvedVideo:
        base = MediaFacts(field, url, read=True, declared=declared, size_bytes=len(data))
        try:
            info = await self._probe(data)
        except media.MediaError as exc:
            return ResolvedVideo(
                replace(base, content_error=f"the video could not be decoded: {exc}"),
                None,
            )
        if not info.has_video or info.width is None or info.height is None:
            return ResolvedVideo(replace(base, content_error="the file has no video stream"), None)
        meta = VideoMeta(
            duration_ms=info.duration_ms,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            format=info.format.value,
            faces=derive_faces(url, info.duration_ms),
            source=MetaSource.PROBED,
            faces_source=MetaSource.DERIVED,  # no face detection: the faces come from a hash
        )
        return ResolvedVideo(
            replace(video_facts(meta, field, url), read=True, declared=declared), meta
        )

    def video_from_id(self, video_id: str) -> VideoMeta | None:
        """A video registered under this id, or None (ids are never derived: see video-id-known)."""
        return self._fixtures.videos_by_id.get(video_id)

    async def sound(self, value: str, field: str) -> ResolvedSound:
        """Facts of a sound_file: a fixture URL, a URL to read or derive, or base64."""
        by_url = self._fixtures.audios_by_url
        fixture = by_url.get(value) if by_url else None  # a long base64 string is not hashed
        if fixture is not None:
            return ResolvedSound(audio_facts(fixture, field, value), fixture, None)
        # Only a URL was remembered; without a colon it is none (and base64 is not hashed).
        derived = self._derived_sounds.get((field, value)) if ":" in value else None
        if derived is not None:
            own = await self._own_files(value)
            if own is None:
                return derived
            return await self._probe_sound(own, field, value, _extension(value))
        if is_url(value):
            declared = _extension(value)
            read = await self._read(value, MAX_SOUND_BYTES)
            if read.data is None:
                if read.unreachable or read.over_limit is not None:
                    facts = MediaFacts(
                        field, value, unreachable=read.unreachable, over_limit=read.over_limit
                    )
                    return ResolvedSound(facts, None, None)
                meta = derive_audio(value, declared or "mp3")
                facts = replace(audio_facts(meta, field, value), declared=declared)
                derived = ResolvedSound(facts, meta, None)
                self._derived_sounds.put((field, value), derived, len(value))
                return derived
            return await self._probe_sound(read.data, field, value, declared)
        return await self._base64_sound(value, field)

    async def _base64_sound(self, value: str, field: str) -> ResolvedSound:
        k = BASE64_KEY_CHARS
        key = (field, len(value), value[:k], value[-k:])
        hit = self._decoded.get(key)
        if hit is not None and hit[0] == value:  # the whole string: never a false hit
            return hit[1]
        decoded = decode_base64(value)
        if isinstance(decoded, MediaFacts):
            return ResolvedSound(replace(decoded, field=field), None, None)
        resolved = await self._probe_sound(decoded, field, BASE64_LABEL, None)
        self._decoded.put(key, (value, resolved), len(value) + len(decoded))
        return resolved

    async def _probe_sound(
        self, data: bytes, field: str, label: str, declared: str | None
    ) -> ResolvedSound:
        base = MediaFacts(field, label, read=True, declared=declared, size_bytes=len(data))
        if not data:
            return ResolvedSound(replace(base, content_error="the audio is empty"), None, None)
        key = blob_key(data)
        try:
            info = await self._probe(data, key)
        except media.MediaError as exc:
            error = f"the audio could not be decoded: {exc}"
            return ResolvedSound(replace(base, content_error=error), None, None)
        if not info.has_audio:
            error = "the file has no audio stream"
            return ResolvedSound(replace(base, content_error=error), None, None)
        meta = AudioMeta(
            duration_ms=info.duration_ms,
            size_bytes=info.size_bytes,
            format=info.format.value,
            source=MetaSource.PROBED,
        )
        facts = replace(
            base, format=meta.format, size_bytes=meta.size_bytes, duration_ms=meta.duration_ms
        )
        return ResolvedSound(facts, meta, data, key)


BASE64_LABEL = "the decoded base64 audio"

NOT_BASE64 = "File is not in a valid base64 format"
"""The real service's words for a sound_file that is neither a URL nor bare base64."""


def decode_base64(value: str) -> bytes | MediaFacts:
    """Strict bare base64, or the facts of why it is not usable.

    A `data:audio/mpeg;base64,` prefix is not base64: the real service refuses it with
    "File is not in a valid base64 format", so the mock does not strip it.
    """
    label = BASE64_LABEL
    if value.startswith("data:"):
        return MediaFacts(
            "",
            label,
            not_a_source=f"{NOT_BASE64}: send the bare base64, without the "
            f"{value.split(',', 1)[0][:40]!r} prefix of a data: URI",
        )
    if len(value) * 3 // 4 <= MAX_SOUND_BYTES + 3:
        # Most payloads hold no whitespace: decode them as they are. A payload that decodes
        # here holds only base64 characters, so it is the payload stripped below as well.
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
        else:
            if len(data) > MAX_SOUND_BYTES:
                return MediaFacts("", label, read=True, over_limit=MAX_SOUND_BYTES)
            return data
    payload = "".join(value.split())
    if len(payload) * 3 // 4 > MAX_SOUND_BYTES + 3:
        return MediaFacts("", label, read=True, over_limit=MAX_SOUND_BYTES)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        return MediaFacts(
            "", label, not_a_source=f"{NOT_BASE64}: neither an http(s) URL nor base64 ({exc})"
        )
    if len(data) > MAX_SOUND_BYTES:
        return MediaFacts("", label, read=True, over_limit=MAX_SOUND_BYTES)
    return data
