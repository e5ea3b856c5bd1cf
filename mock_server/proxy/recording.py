"""The recording format: JSON lines of exchanges, status changes and callbacks, secrets redacted.

Every line is one object with `kind` (`session`, `exchange`, `status`, `callback`, and
`truncated` when the file reached its byte limit) and `at_ms` (Unix ms, wall clock). The
proxy writes it; replay and `python -m contracts drift` read it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("mock_server")

REDACTED = "[redacted]"
# Headers and body keys whose values are credentials; they never reach the file.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-admin-token"}
)
_SECRET_KEY = re.compile(r"(secret|password|token|api_?key|access_?key|signature)", re.I)
# Long strings (base64 audio) are kept as their hash: replay matches on it, the file stays small.
MAX_STRING_CHARS = 2048
FORMAT_VERSION = 1


def now_ms() -> int:
    return int(time.time() * 1000)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name.lower(): REDACTED if name.lower() in SECRET_HEADERS else value
        for name, value in headers.items()
    }


def redact_body(value: Any) -> Any:
    """The JSON value with secret-named keys blanked and long strings replaced by their hash."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(k) and isinstance(v, str) else redact_body(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_body(v) for v in value]
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"[{len(value)} chars sha256:{digest}]"
    return value


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or a short description when it is none (binary, empty, invalid)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return f"[{len(raw)} bytes, not JSON]"


DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class Recorder:
    """Appends records to a file, one JSON object per line, flushed at once; thread-safe.

    The file holds at most `max_bytes` (what it held before counts: records are appended).
    The record that would pass it is replaced by one `truncated` record saying so, and later
    ones are counted in `dropped`, not written: a proxy left running keeps answering, and its
    disk does not fill up.
    """

    def __init__(self, path: str | Path | None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._file: IO[str] | None = (
            open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - closed by close()
        )
        self._size = os.fstat(self._file.fileno()).st_size if self._file is not None else 0
        self._max = max_bytes
        self._lock = threading.Lock()
        self.count = 0
        self.dropped = 0

    def write(self, kind: str, **fields: Any) -> None:
        record = {"kind": kind, "at_ms": now_ms(), **fields}
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
        with self._lock:
            self.count += 1
            if self._file is None:
                return
            if self.dropped or self._size + len(line) > self._max:
                if not self.dropped:
                    self._truncate(record)
                self.dropped += 1
                return
            self._file.write(line)  # ASCII: as many bytes as characters
            self._file.flush()
            self._size += len(line)

    def _truncate(self, first_dropped: dict[str, Any]) -> None:
        assert self._file is not None
        marker = {
            "kind": "truncated",
            "at_ms": first_dropped["at_ms"],
            "max_bytes": self._max,
            "reason": "the recording reached --record-max-mb; later records were not written",
        }
        self._file.write(json.dumps(marker, separators=(",", ":")) + "\n")
        self._file.flush()
        log.warning(
            "recording: %s reached its limit of %d bytes; later records are not written",
            self._file.name,
            self._max,
        )

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the line."""


def read(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_records(path))


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"cannot read recording {path}: {exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise RecordingError(f"{path}:{number}: not a JSON line ({exc})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise RecordingError(f"{path}:{number}: expected an object with a 'kind'")
        yield record


def operation_of(
    document: Mapping[str, Any], method: str, path: str
) -> tuple[str | None, dict[str, str]]:
    """The operationId a request targets and its path parameters, from the spec's paths."""
    for template, item in document["paths"].items():
        op = item.get(method.lower())
        if not isinstance(op, dict):
            continue
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        match = re.match(pattern, path)
        if match:
            return str(op["operationId"]), match.groupdict()
    return None, {}


def phase_samples(records: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Recorded durations (ms): `submitted` and `processing` of each task (from the tasks' own
    created_at/updated_at, seen by polls and callbacks), `api` the upstream's answer times."""
    created: dict[str, int] = {}
    seen: dict[str, dict[str, int]] = {}
    api: list[int] = []
    for r in records:
        task: Any = None
        if r["kind"] == "exchange":
            if isinstance(r.get("latency_ms"), int | float) and r.get("response"):
                api.append(round(r["latency_ms"]))
            body = (r.get("response") or {}).get("body")
            task = body.get("data") if isinstance(body, dict) else None
        elif r["kind"] in ("status", "callback"):
            task = (
                r.get("body") if r["kind"] == "callback" else {**r, "task_status": r.get("after")}
            )
        if not isinstance(task, dict) or not isinstance(task.get("task_id"), str):
            continue
        task_id, status, stamp = task["task_id"], task.get("task_status"), task.get("updated_at")
        if isinstance(task.get("created_at"), int):
            created.setdefault(task_id, task["created_at"])
        if isinstance(status, str) and isinstance(stamp, int):
            seen.setdefault(task_id, {}).setdefault(status, stamp)
    out: dict[str, list[int]] = {"submitted": [], "processing": [], "api": api}
    for task_id, stamps in seen.items():
        processing = stamps.get("processing")
        end = stamps.get("succeed", stamps.get("failed"))
        if processing is not None and task_id in created:
            out["submitted"].append(processing - created[task_id])
        if processing is not None and end is not None:
            out["processing"].append(end - processing)
    return out
