"""The mock's control API as verify uses it: whether it may, and moving the mock's clock."""

from __future__ import annotations

import httpx

from mock_server.admin_client import AdminClient, AdminError
from mock_server.urls import is_loopback

from .options import VerifyOptions

DAY_MS = 86_400_000


def control_api(options: VerifyOptions) -> tuple[AdminClient | None, str]:
    """A client of the target's control API when verify may and can use it, else why not."""
    wanted = options.control_api
    if wanted is None:
        wanted = is_loopback(options.base_url)
        if not wanted:
            return None, (
                "needs time to pass on the server: the target is not on loopback "
                "(pass --use-control-api if it is the mock)"
            )
    if not wanted:
        return None, "needs time to pass on the server (--no-control-api was given)"
    admin = AdminClient(options.base_url, timeout_s=options.request_timeout_s)
    try:
        clock = admin.clock()
        if not isinstance(clock, dict) or not isinstance(clock.get("now_ms"), int):
            raise ValueError("no clock")
    except (AdminError, httpx.HTTPError, ValueError, AttributeError):
        admin.close()
        return None, (
            "needs time to pass on the server: it has no control API "
            "(GET /__admin/clock did not answer code 0)"
        )
    return admin, ""


class ClockMover:
    """Reads and moves the mock's clock, counting how far verify moved it."""

    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin
        self.moved_ms = 0

    def now(self) -> int:
        return int(self.admin.clock()["now_ms"])

    def advance(self, ms: int) -> None:
        if ms > 0:
            self.admin.advance(ms, wait_callbacks=False)
            self.moved_ms += ms

    def note(self) -> str | None:
        """What the report says about the clock, once verify moved it."""
        if not self.moved_ms:
            return None
        return (
            f"verify moved the mock's clock forward by {self.moved_ms} ms "
            f"({self.moved_ms / DAY_MS:.2f} days) with POST /__admin/clock/advance, "
            "after every other check: the mock's time stays that far ahead"
        )
