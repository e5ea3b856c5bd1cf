"""Files the mock serves itself: TTS audio, rendered results, face crops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import struct
import tempfile
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import media
from ..domain.backend import LipSyncBackend
from ..domain.lifecycle import result_expired
from ..domain.models import Task

log = logging.getLogger("mock_server")

CACHE_BYTES = 256 * 1024 * 1024
CACHE_ENTRIES = 64
MEDIA_TYPES = {("audio", "mp3"): "audio/mpeg", ("videos", "mp4"): "video/mp4"}
MEDIA_TYPES[("faces", "png")] = "image/png"


def face_png(seed: str, size: int = 64) -> bytes:
    """A small solid-colour PNG standing for a face crop."""
    h = zlib.crc32(seed.encode())
    pixel = bytes(((h >> 16) & 255, (h >> 8) & 255, h & 255))
    raw = b"".join(b"\0" + pixel * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True, slots=True)
class _Cached:
    path: Path
    size: int


class _Lru:
    """Files on disk, least recently used out first past `entries` or `size` bytes.

    Not locked: FileStore holds its lock around every call.
    """

    def __init__(self, entries: int, size: int) -> None:
        self.max_entries = entries
        self.max_bytes = size
        self.files: OrderedDict[str, _Cached] = OrderedDict()
        self.bytes = 0

    def get(self, key: str) -> Path | None:
        cached = self.files.get(key)
        if cached is None:
            return None
        self.files.move_to_end(key)
        return cached.path

    def put(self, key: str, entry: _Cached, *, stale: bool) -> None:
        old = self.files.pop(key, None)
        if old is not None:
            self._drop(old, unlink=old.path != entry.path)
        self.files[key] = entry
        self.bytes += entry.size
        if stale:  # made for before a clear(): first out
            self.files.move_to_end(key, last=False)
        while len(self.files) > 1 and (
            len(self.files) > self.max_entries or self.bytes > self.max_bytes
        ):
            self._drop(self.files.popitem(last=False)[1])

    def clear(self) -> None:
        while self.files:
            self._drop(self.files.popitem()[1])

    def _drop(self, entry: _Cached, unlink: bool = True) -> None:
        self.bytes -= entry.size
        if unlink:
            with contextlib.suppress(OSError):
                entry.path.unlink()


class FileStore:
    """The files under /files/: TTS audio and results materialised once each on disk.

    A result is rendered on its first download, in a worker thread, once however many
    downloads ask for it at the same time (single flight). Results and audio have a cache
    each (so one kind never evicts the other), of at most `cache_entries` files and
    `cache_bytes` bytes, least recently used first out; `clear()` drops them all (the
    control API's reset). Face crops are tiny and made on each request.
    """

    def __init__(
        self,
        backend: LipSyncBackend,
        base_url: str,
        cache_entries: int = CACHE_ENTRIES,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self._backend = backend
        self._base_url = base_url
        self._folder = Path(tempfile.mkdtemp(prefix="lipsync-mock-files-"))
        # Removed on close(), or when the store is collected or the process exits.
        self._remove_folder = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self._lock = threading.Lock()
        self._caches = {kind: _Lru(cache_entries, cache_bytes) for kind in ("audio", "videos")}
        self._generation = 0
        self._inflight: dict[str, asyncio.Future[Path]] = {}
        self.renders = 0  # results rendered so far: single flight is observable

    def audio(self, audio_id: str) -> bytes | None:
        return self._backend.audio_bytes(audio_id)

    def _servable(self, video_id: str) -> Task | None:
        task = self._backend.result_task(video_id)
        if task is None or result_expired(task, self._backend.now_ms()):
            return None
        return task

    async def path(self, kind: str, name: str) -> Path | None:
        """The file behind /files/{audio,videos}/{name}, made if needed; None if there is none."""
        stem, _, ext = name.partition(".")
        if (kind, ext) not in MEDIA_TYPES or kind not in self._caches:
            return None
        produce: Callable[[], bytes]
        if kind == "videos":
            task = self._servable(stem)
            if task is None:
                return None
            produce = lambda: self._render(task)  # noqa: E731 - one expression, named once
        else:
            data = self.audio(stem)
            if data is None:
                return None
            produce = lambda: data  # noqa: E731
        return await self._single_flight(kind, stem, produce)

    async def _single_flight(self, kind: str, stem: str, produce: Callable[[], bytes]) -> Path:
        with self._lock:
            cached = self._caches[kind].get(stem)
            if cached is not None:
                return cached
            generation = self._generation
        flight_key = f"{generation}:{kind}/{stem}"
        flight = self._inflight.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(
                asyncio.to_thread(self._materialise, kind, stem, generation, produce)
            )
            self._inflight[flight_key] = flight
            flight.add_done_callback(lambda _: self._inflight.pop(flight_key, None))
        # shield: a client that hangs up must not cancel the work others wait for
        return await asyncio.shield(flight)

    def _materialise(
        self, kind: str, stem: str, generation: int, produce: Callable[[], bytes]
    ) -> Path:
        data = produce()
        self._folder.mkdir(parents=True, exist_ok=True)  # a closed store may be reopened
        path = self._folder / f"{generation}-{kind}-{stem}"
        path.write_bytes(data)
        with self._lock:
            stale = generation != self._generation
            self._caches[kind].put(stem, _Cached(path, len(data)), stale=stale)
        return path

    def _render(self, task: Task) -> bytes:
        self.renders += 1
        sound = self._backend.blob(task.sound.blob) if task.sound.blob else None
        parent = task.parent

        def render(sound: bytes | None, volume: float) -> bytes:
            return media.render_result(
                duration_ms=parent.duration_ms,
                width=parent.width,
                height=parent.height,
                sound=sound,
                sound_start_ms=task.sound.start_ms,
                sound_end_ms=task.sound.end_ms,
                insert_ms=task.sound.insert_ms,
                sound_volume=volume,
                original_volume=task.sound.original_volume,
            )

        try:
            return render(sound, task.sound.sound_volume)
        except media.MediaError as exc:
            # The probe at create decodes every sample, so this takes a sound the probe never
            # saw (a fixture, an older store). A result URL never answers 500: the result
            # plays with the sound silenced, and the log says why.
            log.warning("result %s: the sound cannot be rendered (%s); silenced", task.task_id, exc)
            return render(None, 0.0)

    def clear(self) -> None:
        """Drop every cached file; renders in flight finish but are not served again."""
        with self._lock:
            self._generation += 1
            for cache in self._caches.values():
                cache.clear()
        self._inflight.clear()

    def close(self) -> None:
        self.clear()
        shutil.rmtree(self._folder, ignore_errors=True)

    @property
    def cached(self) -> tuple[int, int]:
        """(files, bytes) the caches hold now."""
        with self._lock:
            caches = self._caches.values()
            return sum(len(c.files) for c in caches), sum(c.bytes for c in caches)

    async def by_url(self, url: str) -> bytes | None:
        """Resolver hook: bytes for one of our own file URLs, so the mock never calls itself."""
        prefix = self._base_url + "/files/"
        if not url.startswith(prefix):
            return None
        parts = urlsplit(url).path.split("/")
        if len(parts) < 2 or parts[-2] not in ("audio", "videos"):
            return None
        path = await self.path(parts[-2], parts[-1])
        if path is None:
            return None
        return await asyncio.to_thread(path.read_bytes)


# RFC 9110 byte ranges; anything else in a Range header is ignored (the whole file, 200).
_RANGE = re.compile(r"bytes=\s*(\d+-\d*|-\d+)(\s*,\s*(\d+-\d*|-\d+))*\s*")


def usable_range(value: str) -> bool:
    if not _RANGE.fullmatch(value):
        return False
    for part in value.split("=", 1)[1].split(","):
        start, _, end = part.strip().partition("-")
        if start and end and int(start) > int(end):
            return False
    return True
