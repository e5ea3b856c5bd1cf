"""The control-API token: with `--admin-token`, every /__admin/ request must carry it."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.errors import AUTH_EMPTY, AUTH_FAILED, ApiError
from . import responses

ADMIN_PREFIX = "/__admin"
HEADER = "x-admin-token"


class AdminTokenGuard:
    """Pure ASGI: API requests pass with one prefix test; admin ones need the X-Admin-Token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        ):
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope["headers"] if k == HEADER.encode()), None)
        if sent is not None and hmac.compare_digest(sent, self._token):
            await self.app(scope, receive, send)
            return
        if sent is None or not sent.strip():
            error = ApiError(
                AUTH_EMPTY, "the control API needs the X-Admin-Token header (--admin-token)"
            )
        else:
            error = ApiError(AUTH_FAILED, "X-Admin-Token does not match --admin-token")
        mock = scope["app"].state.mock
        response = responses.failure(error, mock.backend.request_id(), mock.spec.http_status)
        await response(scope, receive, send)
