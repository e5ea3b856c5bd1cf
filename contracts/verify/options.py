"""What verify checks and how hard: the credentials and the options of one run."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from mock_server.auth import make_token


@dataclass(frozen=True, slots=True)
class Credentials:
    """How verify authenticates: an AccessKey/SecretKey pair (a fresh HS256 JWT per request, as
    the documentation's sample builds it) or a console API key sent as is.

    >>> Credentials(api_key="mock-api-key").authorization()
    'Bearer mock-api-key'
    >>> Credentials.mock_defaults().authorization().count(".")
    2
    """

    access_key: str | None = None
    secret_key: str | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        if bool(self.access_key) != bool(self.secret_key):
            raise ValueError("give both the access key and the secret key, or neither")
        if not self.api_key and not self.access_key:
            raise ValueError("give an API key or an access key / secret key pair")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """Credentials from ``KLING_ACCESS_KEY`` / ``KLING_SECRET_KEY`` or ``KLING_API_KEY``.

        >>> Credentials.from_env({"KLING_API_KEY": "k"})
        Credentials(access_key=None, secret_key=None, api_key='k')
        >>> Credentials.from_env({}) is None
        True
        """
        env = os.environ if environ is None else environ
        access, secret, api = (
            env.get("KLING_ACCESS_KEY"),
            env.get("KLING_SECRET_KEY"),
            env.get("KLING_API_KEY"),
        )
        if access or secret:
            return cls(access_key=access, secret_key=secret)
        if api:
            return cls(api_key=api)
        return None

    @classmethod
    def mock_defaults(cls) -> Credentials:
        """The credentials a mock started without options accepts."""
        from mock_server.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

        return cls(access_key=DEFAULT_ACCESS_KEY, secret_key=DEFAULT_SECRET_KEY)

    def authorization(self) -> str:
        """The ``Authorization`` header value for one request (a new JWT every call)."""
        if self.access_key and self.secret_key:
            with warnings.catch_warnings():
                # The mock's default SecretKey is short; the token is still what the docs build.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                return f"Bearer {make_token(self.access_key, self.secret_key)}"
        return f"Bearer {self.api_key}"


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """What :func:`contracts.verify.verify` checks and how hard.

    >>> options = VerifyOptions("http://127.0.0.1:8000", Credentials(api_key="mock-api-key"),
    ...                         max_examples=10, seed=1)
    >>> options.rule_examples
    3

    Attributes:
        base_url: The server to check (the mock, or ``https://api-singapore.klingai.com``).
        credentials: How to authenticate.
        spec: Path to the spec; the one shipped with the mock by default.
        max_examples: Examples per operation and phase in schemathesis' phases, and valid
            create-task bodies in ``valid_requests_accepted``.
        rule_examples: Requests sent per rule (the first of them just past the rule's boundary
            when it has one).
        seed: Seed of every generator; random (and reported) by default.
        video_urls: Videos for identify-face; offline-derived URLs by default (mock only).
        sound_file: The audio of valid create-task bodies (URL or base64) with
            ``sound_duration_ms`` its exact duration; a generated MP3 by default.
        poll_timeout_s: How long ``task_lifecycle`` waits for a task to end.
        request_timeout_s: Timeout of each request.
        schemathesis: Run schemathesis' phases (``False`` runs only our checks).
        control_api: Use the mock's control API (``/__admin/clock``) to break the rules that
            need time to pass (sessions after 24 h, TTS audio and result videos after 30 days):
            ``None`` uses it when the base URL is on loopback. It moves the mock's clock forward,
            after every other check has run.
        callbacks: Create tasks with a callback URL and check the callbacks the server sends.
        webhook_secret: The account's Standard Webhooks secret (``whsec_...``): every callback
            must then carry a valid signature.
        callback_url: A public URL forwarded to verify's receiver (for a server that cannot
            reach 127.0.0.1); the receiver's own loopback URL by default.
        callback_port: The receiver's port on 127.0.0.1 (a free one by default).
        callback_timeout_s: How long to wait for a task's terminal callback once it ended.
    """

    base_url: str
    credentials: Credentials
    spec: str | None = None
    max_examples: int = 20
    rule_examples: int = 3
    seed: int | None = None
    video_urls: tuple[str, ...] = ()
    sound_file: str | None = None
    sound_duration_ms: int = 8000
    poll_timeout_s: float = 20.0
    poll_interval_s: float = 0.25
    request_timeout_s: float = 30.0
    schemathesis: bool = True
    control_api: bool | None = None
    callbacks: bool = True
    webhook_secret: str | None = None
    callback_url: str | None = None
    callback_port: int = 0
    callback_timeout_s: float = 10.0
