"""The mock with one deliberate contract break, started as its own process by the verify tests.

`python -m tests.contracts.broken_mock VARIANT [mock options]` patches the mock in this process,
then serves it exactly as `python -m mock_server [mock options]` would.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mock_server.cli import main as serve_mock
from mock_server.domain import rules
from mock_server.domain.errors import ApiError
from mock_server.web import responses, serialize


def _swap(rule_id: str, check: rules.Check) -> None:
    """Replace one entry of the rule registry: the mock built afterwards uses it."""
    rules.REGISTRY[rule_id] = dataclasses.replace(rules.REGISTRY[rule_id], check=check)


def _accept_short_audio() -> None:
    """Audio from 1.9 s on is accepted: rule sound-duration is off by 100 ms."""

    def sound_duration(c: rules.CreateContext) -> str | None:
        ms = c.sound_ms
        if ms is not None and not 1900 <= ms <= 60000:
            return f"the audio lasts {ms} ms (1.9-60 s)"
        return None

    _swap("sound-duration", sound_duration)


def _succeeded_status() -> None:
    """Finished tasks say `succeeded` (the new-style API's word) instead of `succeed`."""
    original = serialize.task

    def task(t: Any, base_url: str) -> dict[str, Any]:
        data = original(t, base_url)
        if data["task_status"] == "succeed":
            data["task_status"] = "succeeded"
        return data

    serialize.task = task


def _not_found_as_bad_request() -> None:
    """Unknown tasks (code 1203) are answered with HTTP 400 instead of the documented 404."""
    original = responses.failure

    def failure(error: ApiError, request_id: str, http_status: Any) -> Any:
        statuses = {**http_status, 1203: 400}
        return original(error, request_id, statuses)

    responses.failure = failure


def _short_overlap() -> None:
    """An overlap of 1 s with the face is enough: rule insert-face-overlap is off by 1000 ms."""
    original = rules.REGISTRY["insert-face-overlap"].check

    def insert_face_overlap(c: rules.CreateContext) -> str | None:
        face = c.face
        if face is not None:
            end = c.insert_ms + c.end_ms - c.start_ms
            if 1000 <= min(end, face.end_ms) - max(c.insert_ms, face.start_ms) < 2000:
                return None
        return original(c)

    _swap("insert-face-overlap", insert_face_overlap)


def _sessions_never_expire() -> None:
    """Sessions stay valid forever: rule session-valid is never applied."""
    _swap("session-valid", lambda c: None)


VARIANTS: dict[str, Callable[[], None]] = {
    "sound-duration-1900": _accept_short_audio,
    "succeeded": _succeeded_status,
    "not-found-400": _not_found_as_bad_request,
    "overlap-1000": _short_overlap,
    "sessions-never-expire": _sessions_never_expire,
}


def main(argv: Sequence[str]) -> None:
    """Apply the variant named first, then run the mock's CLI with the remaining options."""
    if not argv or argv[0] not in VARIANTS:
        raise SystemExit(f"usage: broken_mock {{{','.join(VARIANTS)}}} [mock options]")
    VARIANTS[argv[0]]()
    serve_mock(list(argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
