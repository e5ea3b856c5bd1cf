"""Run a real mock in a background thread: the seam the pytest plugin and tests share."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import replace
from types import TracebackType
from typing import Any

import uvicorn

from .admin_client import AdminClient
from .auth import make_token
from .config import Config
from .web.app import Mock, create_app


class MockServer:
    """A mock on 127.0.0.1 and a free port; `with MockServer() as m:` starts and stops it."""

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        config = config or Config()
        # IPPROTO_TCP explicitly: asyncio then sets TCP_NODELAY on accepted connections, and
        # keep-alive requests don't wait ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.config = replace(config, host="127.0.0.1", port=sock.getsockname()[1], **overrides)
        try:
            self.app = create_app(self.config)
        except BaseException:
            sock.close()
            raise
        self.mock: Mock = self.app.state.mock
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        )
        self._thread = threading.Thread(target=self._run, name="lipsync-mock", daemon=True)
        self._admin: AdminClient | None = None

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def account(self) -> Any:
        return self.config.accounts[0]

    @property
    def api_key(self) -> str:
        keys: tuple[str, ...] = self.account.api_keys
        return keys[0]

    def token(self, lifetime_s: int = 1800) -> str:
        """A fresh HS256 JWT for the first account, built like the documented sample."""
        return make_token(self.account.access_key, self.account.secret_key, lifetime_s)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def admin(self) -> AdminClient:
        """The control client: clock, faults, fixtures, journal, callbacks."""
        if self._admin is None:
            self._admin = AdminClient(self.base_url)
        return self._admin

    def start(self, timeout_s: float = 10.0) -> MockServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the mock did not start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
