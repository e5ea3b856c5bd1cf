"""The mock with one deliberate contract break, started as its own process by the verify tests.

`python -m tests.contracts.broken_mock VARIANT [mock options]` patches the mock in this process,
then serves it exactly as `python -m mock_server [mock options]` would.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mock_server.cli import main as serve_mock
from mock_server.domain import rules
from mock_server.domain.errors import ApiError
from mock_server.web import callbacks, responses, serialize


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
        data = copy.deepcopy(original(t, base_url))  # the mock caches its documents
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


def _timestamps_in_seconds() -> None:
    """`created_at` and `updated_at` are Unix seconds instead of the documented milliseconds."""

    def in_seconds(shape: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def wrapped(*args: Any) -> dict[str, Any]:
            data = shape(*args)
            for key in ("created_at", "updated_at"):
                if isinstance(data.get(key), int):
                    data[key] //= 1000
            return data

        return wrapped

    serialize.task = in_seconds(serialize.task)
    serialize.created_task = in_seconds(serialize.created_task)
    serialize.tts = in_seconds(serialize.tts)


def _updated_before_created() -> None:
    """A submitted task's `updated_at` is 1 ms before its `created_at`."""

    def stamped(shape: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def wrapped(*args: Any) -> dict[str, Any]:
            data = shape(*args)
            if data.get("task_status") == "submitted":
                data["updated_at"] = data["created_at"] - 1
            return data

        return wrapped

    serialize.task = stamped(serialize.task)
    serialize.created_task = stamped(serialize.created_task)


def _result_duration_in_ms() -> None:
    """A result video's `duration` is its milliseconds written as seconds ("13600")."""
    original = serialize.task

    def task(t: Any, base_url: str) -> dict[str, Any]:
        data = copy.deepcopy(original(t, base_url))  # the mock caches its documents
        for video in data["task_result"]["videos"]:
            video["duration"] = str(t.parent.duration_ms)
        return data

    serialize.task = task


def _faces_in_seconds() -> None:
    """identify-face gives face intervals in seconds (13.6 s -> 13) instead of milliseconds."""
    original = serialize.session

    def session(s: Any, base_url: str) -> dict[str, Any]:
        data = original(s, base_url)
        for face in data["face_data"]:
            face["start_time"] //= 1000
            face["end_time"] //= 1000
        return data

    serialize.session = session


def _units_before_success() -> None:
    """`final_unit_deduction` is charged while the task is still submitted or processing."""
    original = serialize.task

    def task(t: Any, base_url: str) -> dict[str, Any]:
        data = copy.deepcopy(original(t, base_url))  # the mock caches its documents
        if data["task_status"] in ("submitted", "processing"):
            data["final_unit_deduction"] = "1"
        return data

    serialize.task = task


def _parent_url_rewritten() -> None:
    """`parent_video.url` names another video than the one given to identify-face."""
    original = serialize.task

    def task(t: Any, base_url: str) -> dict[str, Any]:
        data = copy.deepcopy(original(t, base_url))  # the mock caches its documents
        data["task_info"]["parent_video"]["url"] = "https://cdn.example.com/other.mp4"
        return data

    serialize.task = task


def _request_id_reused() -> None:
    """Every success carries the same `request_id`."""
    original = responses.success

    def success(request_id: str, data: Any, headers: Any = None) -> Any:
        return original("req-constant", data, headers)

    responses.success = success


def _callback_without_updated_at() -> None:
    """Callback payloads lack the required `updated_at`."""
    original = serialize.callback_payload

    def callback_payload(t: Any, base_url: str) -> dict[str, Any]:
        data = copy.deepcopy(original(t, base_url))  # the mock caches its documents
        del data["updated_at"]
        return data

    serialize.callback_payload = callback_payload


def _callback_stale_processing() -> None:
    """The `processing` callback is stamped after the task's end (its status goes back)."""
    original = serialize.callback_payload

    def callback_payload(t: Any, base_url: str) -> dict[str, Any]:
        data = copy.deepcopy(original(t, base_url))  # the mock caches its documents
        if data["task_status"] == "processing":
            data["updated_at"] += 3_600_000
        return data

    serialize.callback_payload = callback_payload


def _callback_wrong_signature() -> None:
    """Callbacks are signed with another key than the account's webhook secret."""
    original = callbacks.sign

    def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
        return original("whsec_b3RoZXIta2V5", msg_id, timestamp, body)

    callbacks.sign = sign


def _callback_processing_not_sent() -> None:
    """The change to `processing` is never announced."""
    original = callbacks.CallbackDispatcher.on_event

    def on_event(self: Any, event: Any) -> None:
        if event.task.status.value != "processing":
            original(self, event)

    setattr(callbacks.CallbackDispatcher, "on_event", on_event)  # noqa: B010 - a method swapped


def _renamed_field_unknown_code() -> None:
    """Tasks say `task_status_message` instead of `task_status_msg`, and an unknown task is
    answered with code 1209, which the spec's error table lacks (HTTP 404 as for 1203)."""
    original_task = serialize.task
    original_failure = responses.failure

    def task(t: Any, base_url: str) -> dict[str, Any]:
        data = copy.deepcopy(original_task(t, base_url))  # the mock caches its documents
        data["task_status_message"] = data.pop("task_status_msg")
        return data

    def failure(error: ApiError, request_id: str, http_status: Any) -> Any:
        if error.code == 1203:
            error = ApiError(1209, "task not found", error.rule)
            http_status = {**http_status, 1209: 404}
        return original_failure(error, request_id, http_status)

    serialize.task = task
    responses.failure = failure


VARIANTS: dict[str, Callable[[], None]] = {
    "renamed-field-unknown-code": _renamed_field_unknown_code,
    "sound-duration-1900": _accept_short_audio,
    "succeeded": _succeeded_status,
    "not-found-400": _not_found_as_bad_request,
    "overlap-1000": _short_overlap,
    "sessions-never-expire": _sessions_never_expire,
    "timestamps-in-seconds": _timestamps_in_seconds,
    "updated-before-created": _updated_before_created,
    "result-duration-in-ms": _result_duration_in_ms,
    "faces-in-seconds": _faces_in_seconds,
    "units-before-success": _units_before_success,
    "request-id-reused": _request_id_reused,
    "parent-url-rewritten": _parent_url_rewritten,
    "callback-without-updated-at": _callback_without_updated_at,
    "callback-stale-processing": _callback_stale_processing,
    "callback-wrong-signature": _callback_wrong_signature,
    "callback-processing-not-sent": _callback_processing_not_sent,
}


def main(argv: Sequence[str]) -> None:
    """Apply the variant named first, then run the mock's CLI with the remaining options."""
    if not argv or argv[0] not in VARIANTS:
        raise SystemExit(f"usage: broken_mock {{{','.join(VARIANTS)}}} [mock options]")
    VARIANTS[argv[0]]()
    serve_mock(list(argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
