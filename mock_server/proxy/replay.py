"""Replay mode (`--replay FILE`): recorded answers, matched by operation and body, and each
recorded task's lifecycle (its polls and callbacks) played back on the mock's clock."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import Principal
from ..domain.errors import INVALID_REQUEST, ApiError
from ..spec import Spec
from ..web import responses
from ..web.pipeline import read_body
from .recording import RecordingError, operation_of, parse_json, read, redact_body

log = logging.getLogger("mock_server")

TICK_S = 0.02
MAX_SCHEDULED = 100_000


def _canonical(operation: str | None, method: str, path: str, query: str, body: Any) -> str:
    """The key a request is matched on: operation, path and query, and the body with the
    callback URL reduced to whether one is given (the client's receiver moves between runs)."""
    if isinstance(body, dict) and "callback_url" in body:
        body = {**body, "callback_url": bool(body["callback_url"])}
    return json.dumps([operation, method, path, query, body], sort_keys=True)


@dataclass(slots=True)
class _Life:
    """A recorded task: its poll answers and callbacks, each valid from an offset (ms) after
    the task's creation, taken from the task's own created_at/updated_at."""

    polls: list[tuple[int, Any, int]] = field(default_factory=list)  # offset, body, status
    callbacks: list[tuple[int, Any]] = field(default_factory=list)
    created: dict[str, Any] = field(default_factory=dict)  # the create answer's data

    def before_first_poll(self) -> tuple[Any, int]:
        """The task before its first recorded poll: that poll's answer in the status and at
        the time the create answer gave (the client polled late, e.g. on a loaded machine)."""
        offset, body, status = self.polls[0]
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not self.created or offset <= 0:
            return body, status
        early = {
            **data,
            "task_status": self.created.get("task_status", data.get("task_status")),
            "updated_at": self.created.get("updated_at", data.get("updated_at")),
            "task_result": {"videos": []},
        }
        return {**body, "data": early}, status


def _offset(task: Any, fallback: int) -> int:
    if isinstance(task, dict):
        created, updated = task.get("created_at"), task.get("updated_at")
        if isinstance(created, int) and isinstance(updated, int) and updated >= created:
            return updated - created
    return fallback


@dataclass(slots=True)
class Replayed:
    """What replay answered one request, and what the journal keeps of it."""

    response: Response
    operation: str | None
    request_id: str  # the one the client got: the recorded answer's, or replay-miss/-auth/-body
    principal: Principal | None = None  # who the mock's authenticator said sent it
    body: Any = None  # the request body as JSON (a short description when it is none)
    error: ApiError | None = None
    task_status: str | None = None  # what a query of one task answered


class Replay:
    """The recording, indexed; `now_ms` is the mock's clock."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        spec: Spec,
        now_ms: Callable[[], int],
        authenticate: Callable[[str | None], Principal] | None = None,
        body_limit: int = 10 * 1024 * 1024,
        body_timeout_s: float = 30.0,
    ):
        self.spec = spec
        self.now_ms = now_ms
        # A request body is read as the API's are: bounded in bytes and in time.
        self.body_limit, self.body_timeout_s = body_limit, body_timeout_s
        # The recording keeps no credentials: a request is checked against the mock's accounts.
        self.authenticate = authenticate
        self.answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.cursor: dict[str, int] = defaultdict(int)
        self.lives: dict[str, _Life] = {}
        self.started: dict[str, int] = {}
        self.due: list[tuple[int, str, Any]] = []  # mock ms, client URL, body
        self.http: httpx.AsyncClient | None = None
        self.ticker: asyncio.Task[None] | None = None
        created_at: dict[str, int] = {}
        for r in records:
            if r["kind"] != "exchange" or not r.get("response"):
                continue
            body = r["response"]["body"]
            data = body.get("data") if isinstance(body, dict) else None
            task_id = data.get("task_id") if isinstance(data, dict) else None
            if r.get("operation") == "createLipSyncTask" and isinstance(task_id, str):
                self.lives[task_id] = _Life(created=dict(data))  # type: ignore[arg-type]
                created_at[task_id] = r["at_ms"]
            if r.get("operation") == "getLipSyncTask" and task_id in self.lives:
                offset = _offset(data, r["at_ms"] - created_at[task_id])
                self.lives[task_id].polls.append((offset, body, r["response"]["status"]))
                continue
            request = r["request"]
            key = _canonical(
                r.get("operation"), r["method"], r["path"], r.get("query", ""), request["body"]
            )
            self.answers[key].append(r)
        for r in records:
            body = r.get("body")
            if (
                r["kind"] == "callback"
                and isinstance(body, dict)
                and body.get("task_id") in self.lives
            ):
                self.lives[body["task_id"]].callbacks.append((_offset(body, 0), body))
        for life in self.lives.values():
            life.polls.sort(key=lambda p: p[0])

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        spec: Spec,
        now_ms: Callable[[], int],
        authenticate: Callable[[str | None], Principal] | None = None,
        body_limit: int = 10 * 1024 * 1024,
        body_timeout_s: float = 30.0,
    ) -> Replay:
        records = read(path)
        if not any(r["kind"] == "exchange" for r in records):
            raise RecordingError(f"{path}: the recording holds no exchange to replay")
        return cls(records, spec, now_ms, authenticate, body_limit, body_timeout_s)

    def _miss(self, operation: str | None, method: str, path: str) -> tuple[Response, ApiError]:
        error = ApiError(
            INVALID_REQUEST,
            f"replay: no recorded interaction matches {method} {path} "
            f"({operation or 'no operation'}) with this body",
        )
        response = responses.failure(error, "replay-miss", self.spec.http_status)
        response.headers["x-mock-replay"] = "miss"
        return response, error

    @staticmethod
    def _answer(body: Any, status: int) -> Response:
        return Response(
            responses.dumps(body),
            status,
            media_type="application/json",
            headers={"x-mock-replay": "hit"},
        )

    def poll_answer(self, task_id: str) -> tuple[Any, int] | None:
        """The recorded answer (body, status) of a poll of `task_id` at this moment."""
        life = self.lives.get(task_id)
        if life is None or not life.polls:
            return None
        elapsed = self.now_ms() - self.started.setdefault(task_id, self.now_ms())
        chosen = None
        for poll in life.polls:
            if poll[0] <= elapsed:
                chosen = poll
        if chosen is None:
            return life.before_first_poll()
        return chosen[1], chosen[2]

    def created(self, task_id: Any, callback_url: Any) -> None:
        if not isinstance(task_id, str) or task_id not in self.lives:
            return
        start = self.started[task_id] = self.now_ms()
        if isinstance(callback_url, str) and callback_url and len(self.due) < MAX_SCHEDULED:
            for offset, body in self.lives[task_id].callbacks:
                self.due.append((start + offset, callback_url, body))
            self.due.sort(key=lambda d: d[0])
            if self.ticker is None:
                self.ticker = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        """Posts each scheduled callback once the mock's clock reaches it; one attempt each."""
        self.http = httpx.AsyncClient(timeout=5.0, trust_env=False, follow_redirects=False)
        while True:
            now = self.now_ms()
            while self.due and self.due[0][0] <= now:
                _, url, body = self.due.pop(0)
                try:
                    await self.http.post(
                        url,
                        content=responses.dumps(body),
                        headers={"content-type": "application/json"},
                    )
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    log.warning("replay: the callback to %s failed: %s", url, exc)
            await asyncio.sleep(TICK_S)

    async def answer(self, request: Request) -> Replayed:
        operation, params = operation_of(self.spec.document, request.method, request.url.path)
        principal: Principal | None = None
        if self.authenticate is not None:
            try:
                principal = self.authenticate(request.headers.get("authorization"))
            except ApiError as error:
                failed = responses.failure(error, "replay-auth", self.spec.http_status)
                return Replayed(failed, operation, "replay-auth", error=error)
        if operation == "getLipSyncTask":
            polled = self.poll_answer(params["id"])
            if polled is not None:
                return self._hit(polled[0], polled[1], operation, principal, None)
        try:
            raw = await read_body(request, self.body_limit, self.body_timeout_s)
        except ApiError as error:
            failed = responses.failure(error, "replay-body", self.spec.http_status)
            return Replayed(failed, operation, "replay-body", principal, error=error)
        parsed = parse_json(raw)
        body = redact_body(parsed)
        key = _canonical(operation, request.method, request.url.path, request.url.query, body)
        recorded = self.answers.get(key)
        if not recorded:
            missed, why = self._miss(operation, request.method, request.url.path)
            return Replayed(missed, operation, "replay-miss", principal, parsed, why)
        index = min(self.cursor[key], len(recorded) - 1)
        self.cursor[key] += 1
        exchange = recorded[index]
        answer = exchange["response"]["body"]
        if operation == "createLipSyncTask" and isinstance(answer, dict):
            data = answer.get("data")
            self.created(
                data.get("task_id") if isinstance(data, dict) else None,
                body.get("callback_url") if isinstance(body, Mapping) else None,
            )
        return self._hit(answer, exchange["response"]["status"], operation, principal, parsed)

    def _hit(
        self,
        answer: Any,
        status: int,
        operation: str | None,
        principal: Principal | None,
        body: Any,
    ) -> Replayed:
        rid = answer.get("request_id") if isinstance(answer, dict) else None
        data = answer.get("data") if isinstance(answer, dict) else None
        task_status = data.get("task_status") if isinstance(data, dict) else None
        return Replayed(
            self._answer(answer, status),
            operation,
            rid if isinstance(rid, str) else "",
            principal,
            body,
            task_status=task_status
            if operation == "getLipSyncTask" and isinstance(task_status, str)
            else None,
        )


def replay_routes(
    replay: Replay, answered: Callable[[Request, Replayed, float], None]
) -> list[Route]:
    """Routes in front of the mock's API: every /v1/ request is answered from the recording,
    and handed with what was answered to `answered` (the mock's journal and log line)."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        done = await replay.answer(request)
        answered(request, done, started)
        return done.response

    return [Route("/v1/{path:path}", endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
