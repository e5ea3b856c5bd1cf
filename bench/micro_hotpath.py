"""Micro-benchmarks of each per-request change in bench/PROFILING.md: the old way beside the new.

`python bench/micro_hotpath.py` prints microseconds per call (best of 5 timeit repeats). The
old ways are the code as it was before the change (Starlette's URL and Headers objects, the
generic to_doc, the envelope encoded whole), so both sides run here on the same objects.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.requests import Request
from starlette.responses import Response

from mock_server.domain import codec
from mock_server.domain.models import JournalEntry
from mock_server.web import journal, pipeline, responses, serialize
from mock_server.web.journal import RAW_BODY

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "scheme": "http",
    "server": ("127.0.0.1", 8000),
    "path": "/v1/videos/advanced-lip-sync/851027346193289226",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"accept", b"application/json"),
        (b"authorization", b"Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig"),
    ],
}
TASK_DOC = {
    "task_id": "851027346193289226",
    "task_status": "succeed",
    "task_status_msg": "",
    "task_info": {
        "external_task_id": "",
        "parent_video": {"id": "", "url": "https://example.com/v.mp4", "duration": "9.8"},
    },
    "task_result": {
        "videos": [{"id": "1", "url": "http://127.0.0.1/files/1.mp4", "duration": "9.8"}]
    },
    "watermark_info": {"enabled": False},
    "final_unit_deduction": "1",
    "created_at": 1722769557708,
    "updated_at": 1722769569708,
}
ENTRY = JournalEntry(
    seq=1, wall_ms=1, clock_ms=1, method="GET", path=SCOPE["path"], query="",
    operation="getLipSyncTask", account="mock-access-key", auth="jwt", token_lifetime_s=1800,
    body=None, http_status=200, code=0, request_id="6b0d4f1e-5c1a-4b8e-9a51-0d1f3c2b7a10",
    latency_ms=0.1,
)  # fmt: skip


def old_to_doc(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: old_to_doc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [old_to_doc(v) for v in value]
    if isinstance(value, dict):
        return {k: old_to_doc(v) for k, v in value.items()}
    return value


class OldEnvelope(Response):
    media_type = "application/json"


def us(fn: Callable[[], object]) -> float:
    n = 20_000
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    rid = "6b0d4f1e-5c1a-4b8e-9a51-0d1f3c2b7a10"

    def old_url() -> object:
        r = Request(dict(SCOPE))
        return r.url.path, r.url.path, r.url.query, getattr(r.state, RAW_BODY, None)

    def new_url() -> object:
        r = Request(dict(SCOPE))
        p = journal.url_path(r)
        return p, p, journal.url_query(r), r.scope.get(RAW_BODY)

    def old_header() -> object:
        return Request(SCOPE).headers.get("authorization")

    def new_header() -> object:
        return pipeline.header(Request(SCOPE), b"authorization")

    # A document as serialize.task leaves it in its cache (a stand-in for the frozen Task).
    serialize._task_docs[TASK_DOC["task_id"]] = (object(), "", TASK_DOC, [])  # type: ignore[assignment]
    envelope = {"code": 0, "message": "SUCCEED", "request_id": rid, "data": TASK_DOC}
    rows = [
        ("path, query, raw body (journal, faults, log)", old_url, new_url),
        ("Authorization header", old_header, new_header),
        (
            "envelope: encode and build the response",
            lambda: OldEnvelope(responses.dumps(envelope), 200),
            lambda: responses.Envelope(
                b'{"code":0,"message":"SUCCEED","request_id":'
                + responses.dumps(rid) + b',"data":' + responses.dumps(TASK_DOC) + b"}",
                200,
            ),
        ),
        (
            "task JSON: encoded vs made once (cache hit)",
            lambda: responses.dumps(TASK_DOC),
            lambda: responses.dumps_data(TASK_DOC),
        ),
        (
            "journal entry to JSON (store)",
            lambda: json.dumps(old_to_doc(ENTRY), separators=(",", ":")),
            lambda: codec.dumps(ENTRY),
        ),
    ]  # fmt: skip
    assert json.dumps(old_to_doc(ENTRY), separators=(",", ":")) == codec.dumps(ENTRY)
    print("| per request | before us | after us |")
    print("|---|---|---|")
    for name, old, new in rows:
        print(f"| {name} | {us(old):.2f} | {us(new):.2f} |")


if __name__ == "__main__":
    main()
