"""The ASGI entry of a mock: the API's operations by one dict lookup, the rest through Starlette.

A request to `GET /v1/videos/advanced-lip-sync/{id}` through Starlette passes two middlewares,
three exception wrappers, the router's regex scan and a request/response adapter before the
mock's pipeline runs: ~30 us of uvicorn's ~60 us for a bare Starlette answer on this stack. The
front takes GET and POST of the routes whose endpoint is a pipeline `Endpoint` and calls it
directly (what Starlette would have called, with the same scope keys the pipeline reads);
everything else (HEAD, other methods, the control API, the UI, docs, files, the spec, unknown
paths, lifespan) goes to the Starlette app unchanged, which answers it as before.

`--api-latency` waits here, before any /v1/ request is read, whichever of the two answers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .pipeline import Endpoint

FAST_METHODS = ("GET", "POST")


class ApiFront:
    def __init__(
        self,
        app: Starlette,
        routes: Iterable[BaseRoute],
        latency: Callable[[], int] | None = None,
    ) -> None:
        self.app = app
        self.latency = latency
        self._exact: dict[tuple[str, str], Endpoint] = {}
        # (method, prefix up to the last "/", parameter name): a template ending in /{name}
        self._tails: list[tuple[str, str, str, Endpoint]] = []
        for route in routes:
            if not isinstance(route, Route) or not isinstance(route.endpoint, Endpoint):
                continue
            for method in FAST_METHODS:
                if method in (route.methods or ()):
                    self._add(method, route.path, route.endpoint)

    @property
    def state(self) -> State:
        """The Starlette app's state (`state.mock`), for what reads it off the app."""
        return self.app.state

    def _add(self, method: str, template: str, endpoint: Endpoint) -> None:
        if "{" not in template:
            self._exact[(method, template)] = endpoint
            return
        prefix, _, last = template.rpartition("/")
        if "{" in prefix or not (last.startswith("{") and last.endswith("}")) or ":" in last:
            raise ValueError(f"the front takes /{{name}} at the end of a path only: {template}")
        self._tails.append((method, prefix + "/", last[1:-1], endpoint))

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        endpoint = self._exact.get((method, path))
        if endpoint is not None:
            return endpoint, {}
        for tail_method, prefix, name, candidate in self._tails:
            if method == tail_method and path.startswith(prefix):
                value = path[len(prefix) :]
                if value and "/" not in value:  # Starlette's {name}: [^/]+
                    return candidate, {name: value}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.latency is not None and path.startswith("/v1/"):
            wait_ms = self.latency()
            if wait_ms:
                await asyncio.sleep(wait_ms / 1000)
        found = None if scope.get("root_path") else self.match(scope["method"], path)
        if found is None:
            await self.app(scope, receive, send)
            return
        endpoint, params = found
        scope["app"] = self.app  # what Starlette sets: `request.app` reads it
        scope["path_params"] = params
        await endpoint(scope, receive, send)
