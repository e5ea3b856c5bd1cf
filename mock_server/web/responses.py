"""The Kling envelope for successes and errors, and the code -> HTTP status mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from ..domain.errors import INTERNAL, ApiError


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class Envelope(Response):
    media_type = "application/json"


def success(request_id: str, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data}
    return Envelope(dumps(body), 200, headers=headers)


def failure(error: ApiError, request_id: str, http_status: Mapping[int, int]) -> Response:
    body = {"code": error.code, "message": error.message, "request_id": request_id, "data": None}
    status = http_status.get(error.code, 500 if error.code == INTERNAL else 400)
    headers = {"retry-after": "1"} if status in (429, 503) else None
    return Envelope(dumps(body), status, headers=headers)
