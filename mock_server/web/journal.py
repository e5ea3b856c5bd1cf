"""The request journal: what each client sent and what it was answered."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from ..auth import Principal
from ..domain.errors import ApiError
from ..domain.models import JournalEntry
from ..domain.store import Store

LONG_STRING = 256
MAX_DEPTH = 32  # a body the JSON parser accepts can nest ~1000 deep: deeper than recursion allows


def summarise(value: Any, depth: int = 0) -> Any:
    """The body with long strings (base64 audio) and deep nesting replaced by a description."""
    if isinstance(value, str):
        if len(value) <= LONG_STRING:
            return value
        kind = "url" if "://" in value[:16] else "base64"
        return f"<{kind} {len(value)} chars>"
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels>"
    if isinstance(value, dict):
        return {k: summarise(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [summarise(v, depth + 1) for v in value[:50]]
    if isinstance(value, float) and not math.isfinite(value):
        return f"<number {value}>"  # 1e400 parses as inf, which JSON cannot carry back out
    return value


class Journal:
    def __init__(self, store: Store, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._now_ms = now_ms
        # a durable store reopened: go on after its last entry
        self._seq = itertools.count(store.last_journal_seq() + 1)

    def record(
        self,
        request: Request,
        *,
        operation: str | None,
        principal: Principal | None,
        body: Any,
        http_status: int,
        error: ApiError | None,
        request_id: str,
        started: float,
    ) -> None:
        self._store.add_journal(
            JournalEntry(
                seq=next(self._seq),
                wall_ms=int(time.time() * 1000),
                clock_ms=self._now_ms(),
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                operation=operation,
                account=principal.account if principal else None,
                auth=principal.via if principal else None,
                token_lifetime_s=principal.token_lifetime_s if principal else None,
                body=summarise(body),
                http_status=http_status,
                code=0 if error is None else error.code,
                request_id=request_id,
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                message="" if error is None else error.message,
                rule=None if error is None else error.rule,
            )
        )

    def reset(self) -> None:
        self._seq = itertools.count(1)
