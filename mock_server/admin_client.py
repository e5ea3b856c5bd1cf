"""A small synchronous client for the control API (`/__admin/`), used by tests and the plugin."""

from __future__ import annotations

from typing import Any

import httpx

from . import tls


class AdminError(Exception):
    """The control API refused a request; `code` and `message` come from its envelope."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AdminClient:
    """`AdminClient("http://127.0.0.1:8000").advance(4000)` and friends."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            trust_env=False,
            verify=tls.client_context(),
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
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

    def add_fault(self, kind: str, **options: Any) -> dict[str, Any]:
        """E.g. `add_fault("error", code=5001, times=2, operation="getLipSyncTask")`."""
        result: dict[str, Any] = self._call("POST", "/faults", {"kind": kind, **options})
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """Filters: method, path, operation, account, code, after, limit."""
        result: list[dict[str, Any]] = self._call("GET", "/journal", **filters)
        return result

    def callbacks(self, task_id: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/callbacks", task_id=task_id)
        return result

    def set_chaos(self, task: str | None = None, **chaos: Any) -> dict[str, Any]:
        """E.g. `set_chaos(duplicate=True)` or `set_chaos(task="order-1", drop=True)`."""
        body = {**chaos, **({"task": task} if task else {})}
        result: dict[str, Any] = self._call("POST", "/callbacks/chaos", body)
        return result

    def clear_chaos(self) -> None:
        self._call("DELETE", "/callbacks/chaos")

    def tasks(self, account: str | None = None, page_size: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/tasks", account=account, pageSize=page_size
        )
        return result
