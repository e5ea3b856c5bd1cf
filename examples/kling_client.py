"""A small lip-sync client for the Kling API: identify, create, poll with backoff, typed errors.

Written the way a careful integration would be, so it can be certified against the mock
(`tests/test_example_client.py`)::

    client = KlingClient("https://api-singapore.klingai.com", access_key=AK, secret_key=SK)
    video = client.lip_sync(
        "https://cdn.example.com/speaker.mp4",
        Sound(sound_file="https://cdn.example.com/voice.mp3", end_ms=6000),
    )
    print(video.url)

* Every failure is a `KlingError` subclass keyed by the documented code family: `AuthError`
  (1000-1004), `AccountError` (1100-1103), `InvalidRequest` (1200-1203), `PolicyError` (1300,
  1301, 1304), `RateLimited` (1302, 1303), `ServerError` (5000-5002 and answers that are not
  the envelope), `NetworkError`, `TaskFailed` and `TaskTimeout`.
* Only retryable failures (`RateLimited`, `ServerError`, `NetworkError`) are retried, with
  exponential backoff; a create is resent with the same `external_task_id`, so a create that
  did go through is refused as a duplicate instead of running twice.
* Polling starts at `poll_interval_s` and backs off to `max_poll_interval_s`; it never polls
  one task sooner than `poll_interval_s` after the previous query.
* `sleep` and `monotonic` are injectable: a test can move a mock's manual clock instead of
  sleeping.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

import httpx
import jwt
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOKEN_LIFETIME_S = 1800  # the documented sample: exp = now + 1800, nbf = now - 5
TOKEN_REFRESH_MARGIN_S = 300
MIN_OVERLAP_MS = 2000
STATUS_RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}


# -- errors ------------------------------------------------------------------------------------


class KlingError(Exception):
    """A failed call; `code` is Kling's code (None when the failure is not an API answer)."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        code: int | None = None,
        request_id: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if code is not None else message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status


class AuthError(KlingError):
    """1000-1004: the credentials are missing, wrong, not yet valid or expired."""


class AccountError(KlingError):
    """1100-1103: the account is in arrears, out of resources or not allowed."""


class InvalidRequest(KlingError):
    """1200-1203: the request itself is wrong; sending it again changes nothing."""


class PolicyError(KlingError):
    """1300, 1301, 1304: a platform, content or IP policy refused the request."""


class RateLimited(KlingError):
    """1302, 1303: too fast or too many tasks at once; retried with backoff."""

    retryable = True


class ServerError(KlingError):
    """5000-5002, or an answer that is not the envelope; retried with backoff."""

    retryable = True


class NetworkError(KlingError):
    """No answer (connection error or timeout); retried with backoff."""

    retryable = True


class TaskFailed(KlingError):
    """The task ended `failed`; `message` is its `task_status_msg`."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(f"task {task_id} failed: {message or 'no reason given'}")
        self.task_id = task_id
        self.reason = message


class TaskTimeout(KlingError):
    """The task did not finish within the client's `task_timeout_s`."""

    def __init__(self, task_id: str, status: str, waited_s: float) -> None:
        super().__init__(f"task {task_id} still {status} after {waited_s:.0f} s")
        self.task_id = task_id
        self.status = status


_FAMILIES: tuple[tuple[range, type[KlingError]], ...] = (
    (range(1000, 1100), AuthError),
    (range(1100, 1200), AccountError),
    (range(1200, 1300), InvalidRequest),
    (range(1302, 1304), RateLimited),
    (range(1300, 1400), PolicyError),
    (range(5000, 6000), ServerError),
)


def error_for(
    code: int, message: str, request_id: str = "", http_status: int | None = None
) -> KlingError:
    """The typed error of a Kling code (unknown codes: ServerError for 5xx, else KlingError)."""
    for codes, family in _FAMILIES:
        if code in codes:
            return family(message, code, request_id, http_status)
    family = ServerError if http_status is not None and http_status >= 500 else KlingError
    return family(message, code, request_id, http_status)


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Face:
    face_id: str
    start_ms: int
    end_ms: int

    def overlap_ms(self, start_ms: int, end_ms: int) -> int:
        return min(end_ms, self.end_ms) - max(start_ms, self.start_ms)


@dataclass(frozen=True, slots=True)
class FaceSession:
    session_id: str
    faces: tuple[Face, ...]


@dataclass(frozen=True, slots=True)
class Sound:
    """The audio to insert: a URL/base64 `sound_file` or a TTS `audio_id`; times in ms."""

    sound_file: str = ""
    audio_id: str = ""
    start_ms: int = 0
    end_ms: int = 0
    insert_ms: int = 0
    volume: float = 1.0
    original_volume: float = 1.0

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms

    def body(self, face_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "face_id": face_id,
            "sound_start_time": self.start_ms,
            "sound_end_time": self.end_ms,
            "sound_insert_time": self.insert_ms,
            "sound_volume": self.volume,
            "original_audio_volume": self.original_volume,
        }
        if self.audio_id:
            out["audio_id"] = self.audio_id
        else:
            out["sound_file"] = self.sound_file
        return out


@dataclass(frozen=True, slots=True)
class Video:
    id: str
    url: str
    duration_s: float
    task_id: str


@dataclass(frozen=True, slots=True)
class TaskState:
    task_id: str
    status: str  # submitted, processing, succeed, failed
    message: str
    videos: tuple[Video, ...]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` tries in all, waiting base, 2*base, 4*base, ... (capped) between them."""

    attempts: int = 4
    base_s: float = 1.0
    max_s: float = 30.0

    def delay_s(self, failed_attempt: int) -> float:
        return float(min(self.max_s, self.base_s * 2 ** (failed_attempt - 1)))


# -- the client --------------------------------------------------------------------------------


class KlingClient:
    """Calls the lip-sync API with an API key or an AccessKey/SecretKey pair (HS256 JWT)."""

    def __init__(
        self,
        base_url: str = "https://api-singapore.klingai.com",
        *,
        api_key: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        poll_interval_s: float = 5.0,
        max_poll_interval_s: float = 30.0,
        task_timeout_s: float = 900.0,
        retry: RetryPolicy | None = None,
        http_timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key and not (access_key and secret_key):
            raise ValueError("KlingClient needs api_key, or access_key and secret_key")
        if poll_interval_s <= 0 or max_poll_interval_s < poll_interval_s:
            raise ValueError("need 0 < poll_interval_s <= max_poll_interval_s")
        self._api_key = api_key
        self._access_key = access_key
        self._secret_key = secret_key
        self._token = ""
        self._token_expires = 0.0
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max_poll_interval_s
        self.task_timeout_s = task_timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._monotonic = monotonic
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=http_timeout_s,
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KlingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _authorization(self) -> str:
        if self._api_key:
            return f"Bearer {self._api_key}"
        now = time.time()  # tokens are checked against real time, never a test's clock
        if not self._token or now > self._token_expires - TOKEN_REFRESH_MARGIN_S:
            assert self._access_key and self._secret_key
            issued = int(now)
            self._token = jwt.encode(
                {"iss": self._access_key, "exp": issued + TOKEN_LIFETIME_S, "nbf": issued - 5},
                self._secret_key,
                algorithm="HS256",
                headers={"alg": "HS256", "typ": "JWT"},
            )
            self._token_expires = issued + TOKEN_LIFETIME_S
        return f"Bearer {self._token}"

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """`data` of a successful answer; retries retryable failures, raises the rest."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._call_once(method, path, body)
            except KlingError as error:
                if not error.retryable or attempt >= self.retry.attempts:
                    raise
                self._sleep(self.retry.delay_s(attempt))

    def _call_once(self, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        headers = {"Authorization": self._authorization()}
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise NetworkError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            envelope = response.json()
            code = envelope["code"]
        except (ValueError, KeyError, TypeError) as exc:
            family = ServerError if response.status_code >= 500 else KlingError
            raise family(
                f"{method} {path}: HTTP {response.status_code} without the Kling envelope",
                http_status=response.status_code,
            ) from exc
        if code == 0:
            return envelope.get("data")
        raise error_for(
            int(code),
            str(envelope.get("message", "")),
            str(envelope.get("request_id", "")),
            response.status_code,
        )

    # -- operations ------------------------------------------------------------------------

    def identify_face(self, *, video_url: str = "", video_id: str = "") -> FaceSession:
        if bool(video_url) == bool(video_id):
            raise ValueError("identify_face needs exactly one of video_url and video_id")
        body = {"video_url": video_url} if video_url else {"video_id": video_id}
        data = self._call("POST", "/v1/videos/identify-face", body)
        faces = tuple(
            Face(str(f["face_id"]), int(f["start_time"]), int(f["end_time"]))
            for f in data.get("face_data") or []
        )
        return FaceSession(str(data["session_id"]), faces)

    def create_task(
        self,
        session_id: str,
        face_id: str,
        sound: Sound,
        *,
        external_task_id: str | None = None,
        callback_url: str = "",
        watermark: bool = False,
    ) -> str:
        """Create a task and return its task_id; retries reuse one `external_task_id`."""
        if bool(sound.sound_file) == bool(sound.audio_id):
            raise ValueError("Sound needs exactly one of sound_file and audio_id")
        if sound.length_ms < MIN_OVERLAP_MS:
            raise ValueError(f"the sound lasts {sound.length_ms} ms; times are ms, at least 2000")
        body: dict[str, Any] = {
            "session_id": session_id,
            "face_choose": [sound.body(face_id)],
            "external_task_id": external_task_id or f"lipsync-{uuid.uuid4().hex}",
            "watermark_info": {"enabled": watermark},
        }
        if callback_url:
            body["callback_url"] = callback_url
        data = self._call("POST", "/v1/videos/advanced-lip-sync", body)
        return str(data["task_id"])

    def get_task(self, task_id: str) -> TaskState:
        data = self._call("GET", f"/v1/videos/advanced-lip-sync/{task_id}")
        videos = tuple(
            Video(str(v["id"]), str(v["url"]), float(v.get("duration") or 0), task_id)
            for v in (data.get("task_result") or {}).get("videos") or []
        )
        return TaskState(
            str(data["task_id"]),
            str(data["task_status"]),
            str(data.get("task_status_msg") or ""),
            videos,
        )

    def wait_for_video(self, task_id: str, receiver: CallbackReceiver | None = None) -> Video:
        """Poll until the task ends; a terminal callback shortens the wait, never the interval."""
        started = self._monotonic()
        interval = self.poll_interval_s
        while True:
            state = self.get_task(task_id)
            if state.status == "succeed":
                if not state.videos:
                    raise ServerError(f"task {task_id} succeeded without a video")
                return state.videos[0]
            if state.status == "failed":
                raise TaskFailed(task_id, state.message)
            waited = self._monotonic() - started
            if waited + interval > self.task_timeout_s:
                raise TaskTimeout(task_id, state.status, waited)
            told_done = receiver is not None and receiver.finished(task_id)
            self._sleep(self.poll_interval_s if told_done else interval)
            interval = min(interval * 1.5, self.max_poll_interval_s)

    def lip_sync(
        self,
        video_url: str,
        sound: Sound,
        *,
        external_task_id: str | None = None,
        callback: CallbackReceiver | None = None,
    ) -> Video:
        """Identify, pick the first face the sound overlaps by 2 s, create, wait for the video."""
        session = self.identify_face(video_url=video_url)
        end = sound.insert_ms + sound.length_ms
        face = next(
            (f for f in session.faces if f.overlap_ms(sound.insert_ms, end) >= MIN_OVERLAP_MS),
            None,
        )
        if face is None:
            raise ValueError(
                f"no face of the video is on screen for 2 s of [{sound.insert_ms}, {end}) ms"
            )
        task_id = self.create_task(
            session.session_id,
            face.face_id,
            sound,
            external_task_id=external_task_id,
            callback_url=callback.url if callback else "",
        )
        return self.wait_for_video(task_id, callback)


# -- callbacks ---------------------------------------------------------------------------------


class CallbackReceiver:
    """Receives task callbacks on 127.0.0.1: verifies, deduplicates, never goes backwards.

    Deliveries are at least once and may come out of order, so the receiver keeps, per task,
    the furthest status seen and ignores repeats. Polling stays the source of truth.
    """

    def __init__(self, webhook_secret: str | None = None, host: str = "127.0.0.1") -> None:
        self._verifier = Webhook(webhook_secret) if webhook_secret else None
        self._lock = threading.Lock()
        self._status: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/kling/callback"

    def start(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def status(self, task_id: str) -> str | None:
        with self._lock:
            return self._status.get(task_id)

    @property
    def state_url(self) -> str:
        """GET: a JSON object task_id -> status held (what `fuzz-callbacks --state-url` reads)."""
        return self.url.rsplit("/", 1)[0] + "/state"

    def statuses(self) -> dict[str, str]:
        with self._lock:
            return dict(self._status)

    def finished(self, task_id: str) -> bool:
        return self.status(task_id) in ("succeed", "failed")

    def clear(self) -> None:
        with self._lock:
            self._status.clear()
            self.received.clear()
            self.rejected = 0

    def accept(self, raw: bytes, headers: Mapping[str, str]) -> bool:
        """Record one delivery; False when its signature or body is unacceptable."""
        try:
            if self._verifier is not None:
                self._verifier.verify(raw, dict(headers), json_parse=False)
            payload = json.loads(raw)
            task_id, status = payload["task_id"], payload["task_status"]
            if not isinstance(task_id, str) or not task_id or not isinstance(status, str):
                raise TypeError("task_id and task_status are strings")
            rank = STATUS_RANK[status]
        except (WebhookVerificationError, ValueError, KeyError, TypeError):
            with self._lock:
                self.rejected += 1
            return False
        with self._lock:
            self.received.append(payload)
            current = self._status.get(task_id)
            if current is None or rank > STATUS_RANK[current]:
                self._status[task_id] = status
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the state the receiver holds, for the fuzzer
                body = json.dumps(receiver.statuses()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # http.server dispatches on this name
                length = int(self.headers.get("content-length") or 0)
                ok = receiver.accept(self.rfile.read(length), dict(self.headers.items()))
                self.send_response(200 if ok else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a callback per status change would flood the console

        return Handler
