"""The request journal: what each client sent and what it was answered."""

from __future__ import annotations

import itertools
import time
from typing import Any

from starlette.requests import Request

from ..auth import Principal
from ..domain.clock import Clock
from ..domain.models import JournalEntry
from ..domain.store import Store

LONG_STRING = 256


def summarise(value: Any) -> Any:
    """The body with long strings (base64 audio) replaced by a short description."""
    if isinstance(value, str):
        if len(value) <= LONG_STRING:
            return value
        kind = "url" if "://" in value[:16] else "base64"
        return f"<{kind} {len(value)} chars>"
    if isinstance(value, dict):
        return {k: summarise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [summarise(v) for v in value[:50]]
    return value


class Journal:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._seq = itertools.count(1)

    def record(
        self,
        request: Request,
        *,
        operation: str | None,
        principal: Principal | None,
        body: Any,
        http_status: int,
        code: int,
        request_id: str,
        started: float,
    ) -> None:
        self._store.add_journal(
            JournalEntry(
                seq=next(self._seq),
                wall_ms=int(time.time() * 1000),
                clock_ms=self._clock.now_ms(),
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                operation=operation,
                account=principal.account if principal else None,
                auth=principal.via if principal else None,
                token_lifetime_s=principal.token_lifetime_s if principal else None,
                body=summarise(body),
                http_status=http_status,
                code=code,
                request_id=request_id,
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )

    def reset(self) -> None:
        self._seq = itertools.count(1)
