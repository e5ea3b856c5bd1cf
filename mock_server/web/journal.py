"""The request journal: what each client sent and what it was answered, within a byte budget.

A body is kept as its size, its SHA-256 and a bounded summary of its shape: numbers, booleans
and strings up to LONG_STRING characters stay exactly as sent (check-client re-validates them);
longer strings become `<base64 N chars>` / `<url N chars>`; keys are cut at LONG_KEY
characters; a container keeps its first MAX_ITEMS items and says how many it dropped; nesting
stops at MAX_DEPTH and the whole walk at MAX_NODES values. The summary costs O(MAX_NODES)
whatever the body, so one entry is a few KB at most; the store evicts the oldest entries once
the journal holds `journal_bytes` (16 MB by default).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
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
LONG_KEY = 64
MAX_ITEMS = 50
MAX_DEPTH = 16
MAX_NODES = 400
MAX_PATH = 512
MAX_QUERY = 1024
MAX_MESSAGE = 1024
BIG_INT_BITS = 64
RAW_BODY = "journal_raw_body"  # scope key the body reader leaves the bytes under

log = logging.getLogger("mock_server")

# Characters for which Starlette's `request.url` differs from the scope's own path and query
# string (escaped, or dropped by urlsplit); with none of them the scope is used as it is.
_URL_SPECIAL = frozenset("?#\\\t\r\n")


def url_path(request: Request) -> str:
    """`request.url.path`, without building the URL for an ordinary path."""
    path: str = request.scope["path"]
    if _URL_SPECIAL.isdisjoint(path):
        return path
    return request.url.path


def url_query(request: Request) -> str:
    """`request.url.query`, without building the URL for an empty or plain ASCII query."""
    raw: bytes = request.scope.get("query_string", b"")
    if not raw:
        return ""
    if raw.isascii():
        text = raw.decode("ascii")
        if _URL_SPECIAL.isdisjoint(text):
            return text
    return request.url.query


def clip(text: str, limit: int) -> str:
    """`text`, or its start and how long it was, within `limit` characters."""
    if len(text) <= limit:
        return text
    tail = f"...<{len(text)} chars>"
    return text[: limit - len(tail)] + tail


def _string(value: str) -> str:
    if len(value) <= LONG_STRING:
        return value
    kind = "url" if "://" in value[:16] else "base64"
    return f"<{kind} {len(value)} chars>"


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return (
            value if value.bit_length() <= BIG_INT_BITS else f"<integer {value.bit_length()} bits>"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return f"<number {value}>"  # 1e400 parses as inf, which JSON cannot carry back out
    return value


def summarise(value: Any) -> Any:
    """The bounded summary of a parsed JSON body (see the module's docstring).

    Every value costs one unit of the MAX_NODES budget, counted before it is looked at; a
    container's children that are strings or other scalars are summarised in its loop, so a
    create's body costs one call per container, not one per value."""
    if value is None:  # no body was read (every GET)
        return None
    budget = [MAX_NODES - 1]  # the root's unit

    def child(v: Any, depth: int) -> Any:
        if type(v) is str:
            return v if len(v) <= LONG_STRING else _string(v)
        if isinstance(v, dict | list):
            return container(v, depth)
        return _scalar(v)

    def container(item: dict[str, Any] | list[Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            return f"<{type(item).__name__} nested deeper than {MAX_DEPTH} levels>"
        if budget[0] <= 0:
            return f"<{type(item).__name__} of {len(item)} items, not summarised>"
        if isinstance(item, dict):
            out: dict[str, Any] = {}
            for k, v in itertools.islice(item.items(), MAX_ITEMS):
                if budget[0] <= 0:
                    break
                budget[0] -= 1
                out[k if len(k) <= LONG_KEY else clip(k, LONG_KEY)] = child(v, depth + 1)
            if len(out) < len(item):
                out["..."] = f"<{len(item) - len(out)} more keys>"
            return out
        kept: list[Any] = []
        for v in itertools.islice(item, MAX_ITEMS):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            kept.append(child(v, depth + 1))
        if len(kept) < len(item):
            kept.append(f"<{len(item) - len(kept)} more items>")
        return kept

    return child(value, 0)


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
        path: str | None = None,
        task_status: str | None = None,
    ) -> None:
        """`path`: `request.url.path` when the caller has it already; `task_status`: the
        status a query of one task answered (what contract coverage counts as seen)."""
        raw: bytes | None = request.scope.get(RAW_BODY)
        entry = JournalEntry(
            seq=next(self._seq),
            wall_ms=int(time.time() * 1000),
            clock_ms=self._now_ms(),
            method=clip(request.scope["method"], 16),
            path=clip(url_path(request) if path is None else path, MAX_PATH),
            query=clip(url_query(request), MAX_QUERY),
            operation=operation,
            account=principal.account if principal else None,
            auth=principal.via if principal else None,
            token_lifetime_s=principal.token_lifetime_s if principal else None,
            body=summarise(body),
            http_status=http_status,
            code=0 if error is None else error.code,
            request_id=request_id,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            message="" if error is None else clip(error.message, MAX_MESSAGE),
            rule=None if error is None else error.rule,
            body_bytes=None if raw is None else len(raw),
            body_sha256=None if raw is None else hashlib.sha256(raw).hexdigest(),
            task_status=task_status,
        )
        try:
            self._store.add_journal(entry)
        except ApiError as failure:  # the store cannot take it (locked, broken): answer anyway
            log.warning("request %s not journaled: %s", request_id, failure.message)

    def reset(self) -> None:
        self._seq = itertools.count(1)
