"""Real media files served on 127.0.0.1 for the identify-face rules that need real media."""

from __future__ import annotations

import http.server
import threading
from typing import Any, Final


class MediaServer:
    """Real media files served on 127.0.0.1 (a free port) for the media rules of identify-face.

    Files are encoded on first use and kept for the run; ``oversize`` streams zero bytes with a
    ``Content-Length`` one byte over the limit, without holding them in memory.
    """

    _CHUNK: Final = bytes(1 << 20)

    def __init__(self) -> None:
        files: dict[str, bytes] = {}
        oversize: dict[str, int] = {}
        chunk = self._CHUNK

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                size = oversize.get(path)
                data = files.get(path)
                if size is None and data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                length = size if size is not None else len(data or b"")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                try:
                    if data is not None:
                        self.wfile.write(data)
                        return
                    left = size or 0
                    while left > 0:
                        self.wfile.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading past its limit, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the target's fetches are not verify's progress

        self._files = files
        self._oversize = oversize
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="verify-media", daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"

    def video(self, duration_ms: int, width: int, height: int) -> str:
        """The URL of an MP4 of that duration and size (encoded once per run)."""
        path = f"/video-{duration_ms}ms-{width}x{height}.mp4"
        if path not in self._files:
            from mock_server.media import make_video

            self._files[path] = make_video(duration_ms, width, height, fps=1, with_audio=False)
        return self.base_url + path

    def oversize(self, size_bytes: int) -> str:
        """The URL of a response of ``size_bytes`` zero bytes, streamed."""
        path = f"/oversize-{size_bytes}.mp4"
        self._oversize[path] = size_bytes
        return self.base_url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
