"""Log set-up of the process (text for people, JSON lines for machines) and the request line."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .auth import Principal
from .domain.errors import ApiError

REQUESTS = logging.getLogger("mock_server.requests")
LOG_FORMATS = ("text", "json")

# The fields a request line carries, in order; JSON lines carry them as keys.
REQUEST_FIELDS = ("method", "path", "status", "code", "account", "rule", "ms", "operation")


MAX_LOGGED_PATH = 300


def _loggable(path: str) -> str:
    """The path as one safe line: a decoded %0A must not start a forged log line."""
    if not path.isprintable():
        path = path.encode("unicode_escape").decode("ascii")
    if len(path) > MAX_LOGGED_PATH:
        path = f"{path[:MAX_LOGGED_PATH]}...({len(path)} chars)"
    return path


def log_request(
    method: str,
    path: str,
    *,
    operation: str | None,
    principal: Principal | None,
    http_status: int,
    error: ApiError | None,
    request_id: str,
    started: float,
) -> None:
    """One info line per API request: `POST /v1/... 200 code=0 account=ak rule=- 1.2 ms`."""
    if not REQUESTS.isEnabledFor(logging.INFO):
        return
    path = _loggable(path)
    fields = {
        "method": method,
        "path": path,
        "status": http_status,
        "code": 0 if error is None else error.code,
        "account": principal.account if principal is not None else None,
        "rule": error.rule if error is not None else None,
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "operation": operation,
        "request_id": request_id,
    }
    REQUESTS.info(
        "%s %s %d code=%d account=%s rule=%s %.1f ms",
        method,
        path,
        http_status,
        fields["code"],
        fields["account"] or "-",
        fields["rule"] or "-",
        fields["ms"],
        extra={"request": fields},
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = getattr(record, "request", None)
        if isinstance(request, dict):
            doc.update(request)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A dictConfig for the process: everything on stderr, uvicorn's access log off."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(message)s", "datefmt": "%H:%M:%S"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "mock_server": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            # each API request is logged once, by the mock, with its code and rule
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }
