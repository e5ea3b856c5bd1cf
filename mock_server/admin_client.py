"""A small synchronous client for the control API (`/__admin/`), used by tests and the plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from . import tls


class AdminError(Exception):
    """The control API refused a request; `code` and `message` come from its envelope."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


ADMIN_TOKEN_HEADER = "X-Admin-Token"


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class AdminClient:
    """`AdminClient("http://127.0.0.1:8000").advance(4000)` and friends.

    `admin_token` is sent as the X-Admin-Token header: a mock started with `--admin-token`
    refuses control requests without it (HTTP 401, code 1001 or 1000).
    """

    def __init__(
        self, base_url: str, timeout_s: float = 30.0, admin_token: str | None = None
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            trust_env=False,
            verify=tls.client_context(),
            headers={ADMIN_TOKEN_HEADER: admin_token} if admin_token else None,
        )

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        query = _present(params or {})
        response = self._http.request(method, "/__admin" + path, json=json, params=query)
        body = response.json()
        if body.get("code") != 0:
            raise AdminError(body.get("code", -1), body.get("message", response.text))
        return body.get("data")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def clock(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/clock")
        return result

    def advance(self, ms: int, wait_callbacks: bool = True) -> dict[str, Any]:
        """Move the mock's time forward; returns the clock and the transitions that fired."""
        result: dict[str, Any] = self._call(
            "POST", "/clock/advance", {"ms": ms, "wait_callbacks": wait_callbacks}
        )
        return result

    def set_clock(
        self, mode: str | None = None, speed: float | None = None, now_ms: int | None = None
    ) -> dict[str, Any]:
        body = {
            k: v
            for k, v in {"mode": mode, "speed": speed, "now_ms": now_ms}.items()
            if v is not None
        }
        result: dict[str, Any] = self._call("POST", "/clock", body)
        return result

    def add_fixtures(self, fixtures: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/fixtures", fixtures)
        return result

    def fixtures(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/fixtures")
        return result

    def clear_fixtures(self) -> None:
        self._call("DELETE", "/fixtures")

    def add_fault(
        self,
        kind: str,
        *,
        operation: str | None = None,
        path: str | None = None,
        account: str | None = None,
        external_task_id: str | None = None,
        times: int | None = None,
        code: int | None = None,
        message: str | None = None,
        latency_ms: int | None = None,
        rate_per_s: float | None = None,
        max_in_flight: int | None = None,
        submitted_ms: int | None = None,
        processing_ms: int | None = None,
    ) -> dict[str, Any]:
        """E.g. `add_fault("error", code=5001, times=2, operation="getLipSyncTask")`.

        The options are those of `POST /__admin/faults`; left out (None) means the default.
        """
        body = _present(
            {
                "kind": kind,
                "operation": operation,
                "path": path,
                "account": account,
                "external_task_id": external_task_id,
                "times": times,
                "code": code,
                "message": message,
                "latency_ms": latency_ms,
                "rate_per_s": rate_per_s,
                "max_in_flight": max_in_flight,
                "submitted_ms": submitted_ms,
                "processing_ms": processing_ms,
            }
        )
        return self.post_fault(body)

    def post_fault(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`POST /__admin/faults` with `body` as is (to send what `add_fault` cannot)."""
        result: dict[str, Any] = self._call("POST", "/faults", dict(body))
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def journal(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        operation: str | None = None,
        account: str | None = None,
        code: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded requests in arrival order; each filter left out (None) matches all."""
        params = {
            "method": method,
            "path": path,
            "operation": operation,
            "account": account,
            "code": code,
            "after": after,
            "limit": limit,
        }
        result: list[dict[str, Any]] = self._call("GET", "/journal", params=params)
        return result

    def callbacks(self, task_id: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/callbacks", params={"task_id": task_id}
        )
        return result

    def set_chaos(
        self,
        task: str | None = None,
        *,
        duplicate: bool | None = None,
        reorder: bool | None = None,
        drop: bool | None = None,
        delay_ms: int | None = None,
        max_hold_ms: int | None = None,
    ) -> dict[str, Any]:
        """E.g. `set_chaos(duplicate=True)` or `set_chaos(task="order-1", drop=True)`."""
        body = _present(
            {
                "duplicate": duplicate,
                "reorder": reorder,
                "drop": drop,
                "delay_ms": delay_ms,
                "max_hold_ms": max_hold_ms,
                "task": task or None,
            }
        )
        result: dict[str, Any] = self._call("POST", "/callbacks/chaos", body)
        return result

    def clear_chaos(self) -> None:
        self._call("DELETE", "/callbacks/chaos")

    def tasks(self, account: str | None = None, page_size: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/tasks", params={"account": account, "pageSize": page_size}
        )
        return result
