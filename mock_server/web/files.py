"""Files the mock serves itself: TTS audio, rendered results, face crops."""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from urllib.parse import urlsplit

from .. import media
from ..domain.backend import LipSyncBackend
from ..domain.lifecycle import result_expired


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


class FileStore:
    """Renders results on first download and keeps the last few in memory."""

    def __init__(self, backend: LipSyncBackend, base_url: str, cache_entries: int = 16) -> None:
        self._backend = backend
        self._base_url = base_url
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_entries = cache_entries

    def audio(self, audio_id: str) -> bytes | None:
        return self._backend.audio_bytes(audio_id)

    def video(self, video_id: str) -> bytes | None:
        task = self._backend.result_task(video_id)
        if task is None or result_expired(task, self._backend.now_ms()):
            return None
        cached = self._cache.get(video_id)
        if cached is not None:
            self._cache.move_to_end(video_id)
            return cached
        sound = self._backend.blob(task.sound.blob) if task.sound.blob else None
        data = media.render_result(
            duration_ms=task.parent.duration_ms,
            width=task.parent.width,
            height=task.parent.height,
            sound=sound,
            sound_start_ms=task.sound.start_ms,
            sound_end_ms=task.sound.end_ms,
            insert_ms=task.sound.insert_ms,
            sound_volume=task.sound.sound_volume,
            original_volume=task.sound.original_volume,
        )
        self._cache[video_id] = data
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return data

    def clear(self) -> None:
        """Drop every cached render (the control API's reset)."""
        self._cache.clear()

    def by_url(self, url: str) -> bytes | None:
        """Resolver hook: bytes for one of our own file URLs, so the mock never calls itself."""
        prefix = self._base_url + "/files/"
        if not url.startswith(prefix):
            return None
        path = urlsplit(url).path
        name = path.rsplit("/", 1)[-1].split(".", 1)[0]
        if "/files/audio/" in path:
            return self.audio(name)
        if "/files/videos/" in path:
            return self.video(name)
        return None
