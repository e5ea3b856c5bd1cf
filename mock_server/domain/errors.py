"""The one error type of the domain, carrying a Kling error code."""

from __future__ import annotations

from typing import Final

# Codes as named in the documented error table; their HTTP statuses come from the spec.
AUTH_FAILED: Final = 1000
AUTH_EMPTY: Final = 1001
AUTH_INVALID: Final = 1002
AUTH_NOT_YET_VALID: Final = 1003
AUTH_EXPIRED: Final = 1004
RESOURCE_DEPLETED: Final = 1102
INVALID_REQUEST: Final = 1200
INVALID_PARAMETER: Final = 1201
INVALID_METHOD: Final = 1202
NOT_FOUND: Final = 1203
RATE_LIMITED: Final = 1302
CONCURRENCY_LIMITED: Final = 1303
INTERNAL: Final = 5000
UNAVAILABLE: Final = 5001


class ApiError(Exception):
    """A refusal with a Kling error code; `rule` names the x-kling-rules entry that was broken."""

    __slots__ = ("code", "message", "rule")

    def __init__(self, code: int, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rule = rule

    @classmethod
    def rule_broken(cls, rule: str, message: str, code: int = INVALID_PARAMETER) -> ApiError:
        return cls(code, f"{message} (rule {rule})", rule)

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.message!r})"
