"""Start-up options of the mock, from the command line or the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from .domain.clock import ClockMode
from .domain.models import Account, AccountId

DEFAULT_ACCESS_KEY = "mock-access-key"
DEFAULT_SECRET_KEY = "mock-secret-key-for-local-testing"
DEFAULT_API_KEY = "mock-api-key"


def default_accounts() -> tuple[Account, ...]:
    return (
        Account(
            AccountId(DEFAULT_ACCESS_KEY),
            DEFAULT_ACCESS_KEY,
            DEFAULT_SECRET_KEY,
            (DEFAULT_API_KEY,),
        ),
    )


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    accounts: tuple[Account, ...] = field(default_factory=default_accounts)
    fixtures_file: str | None = None
    seed: int | None = None
    clock_mode: ClockMode = ClockMode.REAL
    clock_speed: float = 1.0
    clock_start_ms: int | None = None
    submit_delay_s: float = 1.0
    processing_delay_s: float = 3.0
    allow_dirs: tuple[str, ...] = ()
    store: str = "memory"
    max_body_bytes: int = 10 * 1024 * 1024
    max_admin_body_bytes: int = 1024 * 1024
    webhook_secret: str | None = None
    callback_attempts: int = 5
    callback_timeout_s: float = 5.0
    callback_backoff_s: float = 0.5
    journal_limit: int = 10_000
    max_tasks: int = 1_000_000  # tasks kept (all accounts); past it creates answer 1102
    max_sessions: int = 1_000_000  # identify-face sessions kept; past it identify answers 1102
    journal_bytes: int = 16 * 1024 * 1024  # the journal's (and the delivery log's) byte budget
    fixture_bytes: int = 16 * 1024 * 1024  # fixtures documents kept for a restart, in all
    log_level: str = "info"
    log_format: str = "text"
    # When set, every /__admin/ request must carry it in the X-Admin-Token header.
    admin_token: str | None = None
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0  # a body must arrive whole within this
    keep_alive_s: int = 5
    # Proxy mode (`--proxy-to`): the upstream, the recording and how requests are signed.
    proxy_to: str | None = None
    record_file: str | None = None
    record_max_bytes: int = 256 * 1024 * 1024  # the recording file's limit (--record-max-mb)
    proxy_auth: str = "passthrough"  # or "resign": a fresh JWT from the first account's AK/SK
    upstream_timeout_s: float = 60.0
    # Replay mode (`--replay`): recorded interactions answered on the mock's clock.
    replay_file: str | None = None
    # Distributions (domain/latency.py syntax) of the phase durations and of API latency.
    submit_delay_dist: str | None = None
    processing_delay_dist: str | None = None
    api_latency: str | None = None
    # Tests only: let callbacks and media fetches reach the mock's own address.
    allow_self_requests: bool = False

    @property
    def base_url(self) -> str:
        """Absolute URL the mock puts in results and TTS audio links."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"
