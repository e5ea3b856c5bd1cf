"""`--api-latency`: every /v1/ answer waits a duration drawn from the configured distribution."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class ApiLatency:
    """Pure ASGI: the wait happens before the request is read, as a slow service would."""

    def __init__(self, app: ASGIApp, draw: Callable[[], int]) -> None:
        self.app = app
        self.draw = draw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            wait_ms = self.draw()
            if wait_ms:
                await asyncio.sleep(wait_ms / 1000)
        await self.app(scope, receive, send)
