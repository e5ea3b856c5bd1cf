"""Run a real mock in a background thread: the seam the pytest plugin and tests share."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from types import TracebackType

from . import serving
from .admin_client import AdminClient
from .auth import make_token
from .config import Config
from .domain.models import Account
from .web.app import Mock, create_app


class MockServer:
    """A mock on 127.0.0.1 and a free port; `with MockServer() as m:` starts and stops it.

    `config` sets everything but the address; `admin_token` (or `config.admin_token`) makes
    the mock require the X-Admin-Token header on /__admin/, and `.admin` sends it.
    """

    def __init__(self, config: Config | None = None, *, admin_token: str | None = None) -> None:
        config = config or Config()
        sock = serving.bind_socket("127.0.0.1", 0)
        self._sock = sock
        self.config = replace(
            config,
            host="127.0.0.1",
            port=sock.getsockname()[1],
            admin_token=admin_token or config.admin_token,
        )
        try:
            self.app = create_app(self.config)
        except BaseException:
            sock.close()
            raise
        self.mock: Mock = self.app.state.mock
        self._server = serving.Server(
            serving.server_config(
                self.app,
                header_timeout_s=self.config.header_timeout_s,
                keep_alive_s=self.config.keep_alive_s,
            )
        )
        self._thread = threading.Thread(target=self._run, name="lipsync-mock", daemon=True)
        self._admin: AdminClient | None = None

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def account(self) -> Account:
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
            self._admin = AdminClient(self.base_url, admin_token=self.config.admin_token)
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
