"""The composition root: one running mock's parts, built from a Config and wired together."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from .. import fixtures_file, tls
from ..auth import Authenticator
from ..config import Config
from ..domain import latency
from ..domain.backend import Limits, LipSyncBackend, Phases, StartState
from ..domain.clock import Clock
from ..domain.faults import FaultRegistry
from ..domain.fixtures import FixtureSet
from ..domain.ids import IdSource
from ..domain.resolver import FetchError, FetchTooLarge, MediaResolver
from ..domain.rules import RuleBook
from ..domain.sqlite_store import SqliteStore
from ..domain.store import MemoryStore, Store
from ..spec import Spec, load_spec
from ..urls import host_address, port_of, split_url
from .callbacks import CallbackDispatcher
from .files import FileStore
from .journal import Journal


@dataclass(slots=True)
class Mock:
    """Everything one running mock holds; lives on app.state.mock."""

    config: Config
    spec: Spec
    backend: LipSyncBackend
    auth: Authenticator
    files: FileStore
    http: httpx.AsyncClient
    journal: Journal
    callbacks: CallbackDispatcher

    base_url: str = ""  # config.base_url, computed once: every task serialised needs it
    api_latency: Callable[[], int] | None = None  # ms before each /v1/ answer (--api-latency)

    def __post_init__(self) -> None:
        self.base_url = self.config.base_url


async def _fetch(http: httpx.AsyncClient, url: str, limit: int) -> bytes:
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FetchTooLarge(f"more than {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchTooLarge(f"more than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
        raise FetchError(str(exc) or type(exc).__name__) from exc


def open_store(config: Config) -> Store:
    """The store `config.store` names: `memory` or `sqlite:PATH`."""
    kind, _, path = config.store.partition(":")
    budgets = {
        "journal_limit": config.journal_limit,
        "journal_bytes": config.journal_bytes,
        "fixture_bytes": config.fixture_bytes,
    }
    if config.store == "memory":
        return MemoryStore(**budgets)
    if kind == "sqlite" and path:
        return SqliteStore(path, **budgets)
    raise ValueError(
        f"store {config.store!r}: expected 'memory' or 'sqlite:PATH' (e.g. sqlite:./mock.db)"
    )


_SELF_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def own_address_check(config: Config) -> Callable[[str], bool]:
    """Whether a URL reaches this mock's own listening socket, by any alias of it.

    The mock's port on loopback (127.0.0.0/8, ::1), the unspecified addresses (0.0.0.0, ::),
    the address it is bound to, the machine's host name, and the public base URL.
    """
    names = set(_SELF_NAMES) | {socket.gethostname().lower()}
    bound = host_address(config.host)
    public = split_url(config.base_url)
    public_host = (public.hostname or "").lower()
    public_port = port_of(public)

    def check(url: str) -> bool:
        parts = split_url(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            return False
        port = port_of(parts)
        if host == public_host and port == public_port:
            return True
        if port != config.port:
            return False
        if host in names or host.endswith(".localhost"):
            return True
        ip = host_address(host)
        if ip is None:
            return False
        return ip.is_loopback or ip.is_unspecified or ip == bound

    return check


def resolved_self_check(
    config: Config, by_name: Callable[[str], bool]
) -> Callable[[str], Awaitable[bool]]:
    """`by_name`, then, for a URL on the mock's port, what its host name resolves to: a name
    that /etc/hosts or DNS maps onto this machine is the mock too."""
    bound = host_address(config.host)

    async def check(url: str) -> bool:
        if by_name(url):
            return True
        parts = split_url(url)
        port = port_of(parts)
        if port != config.port or not parts.hostname:
            return False
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            return False  # unresolvable: the send fails on its own
        for info in infos:
            ip = host_address(str(info[4][0]))
            if ip is not None and (ip.is_loopback or ip.is_unspecified or ip == bound):
                return True
        return False

    return check


def build_mock(config: Config, store: Store | None = None, spec: Spec | None = None) -> Mock:
    spec = spec or load_spec()
    store = store or open_store(config)
    fixtures = FixtureSet()
    # Only loopback URLs are fetched; a redirect could lead anywhere, so none is followed.
    http = httpx.AsyncClient(
        timeout=10.0, follow_redirects=False, trust_env=False, verify=tls.client_context()
    )
    never_self = config.allow_self_requests
    by_name = (lambda url: False) if never_self else own_address_check(config)

    async def own_files(url: str) -> bytes | None:
        return await files.by_url(url)

    resolver = MediaResolver(
        fixtures,
        fetch=lambda url, limit: _fetch(http, url, limit),
        own_files=own_files,
        own_address=by_name,
        allowed_dirs=config.allow_dirs,
    )

    def load_fixtures(into: FixtureSet, faults: FaultRegistry) -> None:
        """The --fixtures file (media, outcomes, faults), then documents registered through
        the control API before a restart."""
        if config.fixtures_file:
            doc = fixtures_file.read(config.fixtures_file)
            fixtures_file.apply(doc, into)
            for fault in fixtures_file.faults(doc):
                faults.add(fault)
        for kept in store.fixture_docs():
            fixtures_file.apply(dict(kept), into)

    clock = Clock(config.clock_mode, config.clock_speed, config.clock_start_ms)
    saved_clock = store.load_clock()  # a durable store reopened: its timeline goes on
    if saved_clock is not None:
        clock.restore(saved_clock)
    clock.listeners.append(store.save_clock)
    backend = LipSyncBackend(
        store=store,
        clock=clock,
        ids=IdSource(config.seed),
        resolver=resolver,
        fixtures=fixtures,
        rules=RuleBook(spec.rules.values()),
        phases=Phases(
            int(config.submit_delay_s * 1000),
            int(config.processing_delay_s * 1000),
            draw_submitted=_sampler(config.submit_delay_dist, config.seed, "submitted"),
            draw_processing=_sampler(config.processing_delay_dist, config.seed, "processing"),
        ),
        voices=spec.voices,
        start=StartState(config.clock_mode, config.clock_speed, config.clock_start_ms, config.seed),
        load_fixtures=load_fixtures,
        limits=Limits(config.max_tasks, config.max_sessions),
    )
    files = FileStore(backend, config.base_url)
    journal = Journal(store, backend.now_ms)
    callbacks = CallbackDispatcher(
        store,
        config.base_url,
        secret=config.webhook_secret,
        attempts=config.callback_attempts,
        timeout_s=config.callback_timeout_s,
        backoff_base_s=config.callback_backoff_s,
        reaches_self=None if never_self else resolved_self_check(config, by_name),
    )
    backend.on_event(callbacks.on_event)
    backend.on_reset(journal.reset)
    backend.on_reset(callbacks.reset)
    backend.on_reset(files.clear)
    mock = Mock(
        config, spec, backend, Authenticator(config.accounts), files, http, journal, callbacks
    )
    mock.api_latency = _sampler(config.api_latency, config.seed, "api")
    return mock


def recorded_durations(phase: str) -> Callable[[str], list[int]]:
    """The `phase` durations of a recording (`recorded:FILE`)."""

    def load(path: str) -> list[int]:
        from ..proxy.recording import phase_samples, read

        return phase_samples(read(path))[phase]

    return load


def _sampler(text: str | None, seed: int | None, phase: str) -> Callable[[], int] | None:
    if not text:
        return None
    return latency.parse(text, recorded_durations(phase)).sampler(seed, phase)
