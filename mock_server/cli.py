"""`lipsync-mock` / `python -m mock_server`: options from flags or environment variables.

Every value, from a flag or from the environment, is checked before anything starts: a bad
one ends the process with one line on stderr that names the flag or the variable, status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import socket
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .auth import make_token
from .config import DEFAULT_ACCESS_KEY, DEFAULT_API_KEY, DEFAULT_SECRET_KEY, Config
from .domain.clock import ClockMode
from .domain.models import Account, AccountId
from .logs import LOG_FORMATS, logging_config

PROG = "lipsync-mock"
MAX_VALUE_CHARS = 4096  # one option's value; lists (accounts, folders) get MAX_LIST_CHARS
MAX_LIST_CHARS = 1024 * 1024
MAX_ACCOUNTS = 10_000
MAX_CLOCK_START_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_DELAY_S = 365 * 24 * 3600.0


class UsageError(Exception):
    """A bad option or environment value; the message is the one line the user sees."""


def _shown(raw: str) -> str:
    """`raw` as a message shows it: quoted, and cut so that a huge value stays one short line."""
    return repr(raw) if len(raw) <= 60 else repr(raw[:57]) + f"... ({len(raw)} chars)"


# -- value checks: each takes the raw text and returns the value or raises ValueError ---------


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not text.lstrip("+-").isdigit() or not text.isascii() or len(text) > 25:
            raise ValueError(f"expected an integer in [{low}, {high}]")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"expected an integer in [{low}, {high}]")
        return value

    parse.__name__ = "integer"
    return parse


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    opening = "(" if low_open else "["
    interval = f"{opening}{low:.10g}, {high:.10g}]"

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number in {interval}") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise ValueError(f"expected a finite number in {interval}")
        return value

    parse.__name__ = "number"
    return parse


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    if len(raw) > MAX_VALUE_CHARS:
        raise ValueError(f"is {len(raw)} characters long, at most {MAX_VALUE_CHARS}")
    return raw


def _folder(raw: str) -> str:
    """A folder that exists: a typo would otherwise refuse every file:// URL later, silently."""
    path = _text(raw)
    if not os.path.isdir(path):
        raise ValueError("is not an existing folder")
    return path


def _header_safe(raw: str) -> str:
    _text(raw)
    if not all(33 <= ord(c) <= 126 for c in raw):
        raise ValueError("expected visible ASCII characters only (it travels in an HTTP header)")
    return raw


def _store(raw: str) -> str:
    kind, _, path = raw.partition(":")
    if raw == "memory" or (kind == "sqlite" and path.strip()):
        return _text(raw)
    raise ValueError("expected 'memory' or 'sqlite:PATH' (e.g. sqlite:./mock.db)")


def _url(raw: str) -> str:
    _text(raw)
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError("expected an http:// or https:// base URL such as http://mock.test:8000")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("its port is not a number in [0, 65535]") from None
    return raw


def _account(raw: str) -> Account:
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise ValueError("expected AK:SK or AK:SK:APIKEY")
    for part in parts:
        _header_safe(part)
    return Account(AccountId(parts[0]), parts[0], parts[1], tuple(parts[2:]))


def _distribution(phase: str) -> Callable[[str], str]:
    """A distribution's text, checked (a recorded one is read) and kept as given."""

    def parse(raw: str) -> str:
        from .domain import latency
        from .web.compose import recorded_durations

        latency.parse(_text(raw), recorded_durations(phase))
        return raw

    parse.__name__ = "distribution"
    return parse


def _webhook_secret(raw: str) -> str:
    from .web.callbacks import secret_key

    secret_key(_text(raw))
    return raw


# -- the option table ----------------------------------------------------------------------


def _env(name: str, parse: Callable[[str], Any], default: Any = None) -> Any:
    """The variable's value checked by `parse`, or `default` when it is unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > MAX_VALUE_CHARS:
        raise UsageError(f"{name} is {len(raw)} characters long, at most {MAX_VALUE_CHARS}")
    try:
        return parse(raw)
    except ValueError as exc:
        raise UsageError(f"{name}={_shown(raw)}: {exc}") from None


def _env_list(name: str, sep: str, parse: Callable[[str], Any]) -> list[Any]:
    raw = os.environ.get(name) or ""
    if len(raw) > MAX_LIST_CHARS:
        raise UsageError(f"{name} is {len(raw)} characters long, at most {MAX_LIST_CHARS}")
    items = [item for item in raw.split(sep) if item]
    if len(items) > MAX_ACCOUNTS:
        raise UsageError(f"{name} lists {len(items)} entries, at most {MAX_ACCOUNTS}")
    values = []
    for item in items:
        try:
            values.append(parse(item))
        except ValueError as exc:
            raise UsageError(f"{name}: entry {_shown(item)}: {exc}") from None
    return values


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` as an argparse type: its message, not argparse's 'invalid value', is shown."""

    def check(raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{_shown(raw)}: {exc}") from None

    check.__name__ = parse.__name__
    return check


def _version() -> str:
    try:
        return metadata.version("kling-lipsync-mock")
    except metadata.PackageNotFoundError:
        return "unknown"


def parser() -> argparse.ArgumentParser:
    """The options; their defaults are read from the environment (UsageError on a bad value)."""
    p = _Parser(
        prog=PROG,
        description="Offline stateful fake of the Kling Advanced Lip-Sync API. Every option "
        "can also be set with the environment variable shown in brackets.",
    )
    add = p.add_argument
    add("--version", action="version", version=f"{PROG} {_version()}")
    add(
        "--host",
        type=_checked(_text),
        default=_env("LIPSYNC_MOCK_HOST", _text, "127.0.0.1"),
        help="[LIPSYNC_MOCK_HOST] bind address (default: 127.0.0.1); any other than a loopback "
        "address needs --admin-token",
    )
    port = _integer(0, 65535)
    add(
        "--port",
        type=_checked(port),
        default=_env("LIPSYNC_MOCK_PORT", port, 8000),
        help="[LIPSYNC_MOCK_PORT] port; 0 picks a free one (default: 8000)",
    )
    add(
        "--public-url",
        type=_checked(_url),
        default=_env("LIPSYNC_MOCK_PUBLIC_URL", _url),
        metavar="URL",
        help="[LIPSYNC_MOCK_PUBLIC_URL] base URL put in result links (default: http://HOST:PORT)",
    )
    add(
        "--access-key",
        type=_checked(_header_safe),
        default=_env("KLING_ACCESS_KEY", _header_safe, DEFAULT_ACCESS_KEY),
        help=f"[KLING_ACCESS_KEY] AccessKey accepted as JWT iss (default: {DEFAULT_ACCESS_KEY})",
    )
    add(
        "--secret-key",
        type=_checked(_text),
        default=_env("KLING_SECRET_KEY", _text, DEFAULT_SECRET_KEY),
        help="[KLING_SECRET_KEY] SecretKey that signs the JWTs (default: a fixed test key)",
    )
    add(
        "--api-key",
        type=_checked(_header_safe),
        default=_env("KLING_API_KEY", _header_safe, DEFAULT_API_KEY),
        help=f"[KLING_API_KEY] API key accepted as a bearer token (default: {DEFAULT_API_KEY})",
    )
    add(
        "--account",
        action="append",
        type=_checked(_account),
        default=_env_list("LIPSYNC_MOCK_ACCOUNTS", ",", _account),
        metavar="AK:SK[:APIKEY]",
        help="[LIPSYNC_MOCK_ACCOUNTS, comma-separated] another account; repeatable",
    )
    add(
        "--fixtures",
        type=_checked(_text),
        default=_env("LIPSYNC_MOCK_FIXTURES", _text),
        metavar="FILE",
        help="[LIPSYNC_MOCK_FIXTURES] YAML file of videos, audios and task outcomes",
    )
    seed = _integer(0, 2**64 - 1)
    add(
        "--seed",
        type=_checked(seed),
        default=_env("LIPSYNC_MOCK_SEED", seed),
        help="[LIPSYNC_MOCK_SEED] seed of every id; with --clock manual responses are byte-identical",
    )
    clock_modes = [m.value for m in ClockMode]
    add(
        "--clock",
        choices=clock_modes,
        default=_env("LIPSYNC_MOCK_CLOCK", _choice("clock", clock_modes), "real"),
        help="[LIPSYNC_MOCK_CLOCK] real time (scaled by --clock-speed) or manual (moved by the "
        "control API) (default: real)",
    )
    speed = _number(0, 1e6, low_open=True)
    add(
        "--clock-speed",
        type=_checked(speed),
        default=_env("LIPSYNC_MOCK_CLOCK_SPEED", speed, 1.0),
        metavar="X",
        help="[LIPSYNC_MOCK_CLOCK_SPEED] mock seconds per real second (default: 1)",
    )
    start = _integer(0, MAX_CLOCK_START_MS)
    add(
        "--clock-start",
        type=_checked(start),
        default=_env("LIPSYNC_MOCK_CLOCK_START", start),
        metavar="MS",
        help="[LIPSYNC_MOCK_CLOCK_START] initial time, Unix ms (default: now)",
    )
    delay = _number(0, MAX_DELAY_S)
    add(
        "--submit-delay",
        type=_checked(delay),
        default=_env("LIPSYNC_MOCK_SUBMIT_DELAY", delay, 1.0),
        metavar="S",
        help="[LIPSYNC_MOCK_SUBMIT_DELAY] seconds a task stays submitted (default: 1)",
    )
    add(
        "--processing-delay",
        type=_checked(delay),
        default=_env("LIPSYNC_MOCK_PROCESSING_DELAY", delay, 3.0),
        metavar="S",
        help="[LIPSYNC_MOCK_PROCESSING_DELAY] seconds a task stays processing (default: 3)",
    )
    for flag, env, phase, what in (
        ("--submit-delay-dist", "LIPSYNC_MOCK_SUBMIT_DELAY_DIST", "submitted", "each task's time in submitted"),
        ("--processing-delay-dist", "LIPSYNC_MOCK_PROCESSING_DELAY_DIST", "processing", "each task's time in processing"),
        ("--api-latency", "LIPSYNC_MOCK_API_LATENCY", "api", "the wait before each /v1/ answer"),
    ):
        add(
            flag,
            type=_checked(_distribution(phase)),
            default=_env(env, _distribution(phase)),
            metavar="DIST",
            help=f"[{env}] {what}, drawn with --seed from fixed:S, uniform:LOW:HIGH, "
            "lognormal:MEDIAN:SIGMA (seconds) or recorded:FILE (a --record file)",
        )
    add(
        "--allow-dir",
        action="append",
        type=_checked(_folder),
        default=_env_list("LIPSYNC_MOCK_ALLOW_DIRS", os.pathsep, _folder),
        metavar="DIR",
        help="[LIPSYNC_MOCK_ALLOW_DIRS, os.pathsep-separated] folder whose files file:// URLs "
        "may read; repeatable",
    )
    add(
        "--store",
        type=_checked(_store),
        default=_env("LIPSYNC_MOCK_STORE", _store, "memory"),
        metavar="memory|sqlite:PATH",
        help="[LIPSYNC_MOCK_STORE] memory, or one SQLite file that keeps tasks, sessions and "
        "fixtures across restarts (default: memory)",
    )
    body_mb = _number(0, 1024, low_open=True)
    add(
        "--max-body-mb",
        type=_checked(body_mb),
        default=_env("LIPSYNC_MOCK_MAX_BODY_MB", body_mb, 10.0),
        metavar="MB",
        help="[LIPSYNC_MOCK_MAX_BODY_MB] request body limit (default: 10)",
    )
    journal_mb = _number(0, 4096, low_open=True)
    add(
        "--journal-mb",
        type=_checked(journal_mb),
        default=_env("LIPSYNC_MOCK_JOURNAL_MB", journal_mb, 16.0),
        metavar="MB",
        help="[LIPSYNC_MOCK_JOURNAL_MB] bytes kept by the request journal and by the callback "
        "delivery log, each; the oldest entries go first (default: 16)",
    )
    count = _integer(1, 100_000_000)
    add(
        "--max-tasks",
        type=_checked(count),
        default=_env("LIPSYNC_MOCK_MAX_TASKS", count, 1_000_000),
        metavar="N",
        help="[LIPSYNC_MOCK_MAX_TASKS] tasks kept, every account together (about 1 KB each); "
        "past it a create answers 1102 until a reset (default: 1000000)",
    )
    add(
        "--max-sessions",
        type=_checked(count),
        default=_env("LIPSYNC_MOCK_MAX_SESSIONS", count, 1_000_000),
        metavar="N",
        help="[LIPSYNC_MOCK_MAX_SESSIONS] identify-face sessions kept; past it identify-face "
        "answers 1102 until a reset (default: 1000000)",
    )
    add(
        "--webhook-secret",
        type=_checked(_webhook_secret),
        default=_env("LIPSYNC_MOCK_WEBHOOK_SECRET", _webhook_secret),
        metavar="whsec_...",
        help="[LIPSYNC_MOCK_WEBHOOK_SECRET] sign callbacks with Standard Webhooks",
    )
    attempts = _integer(1, 100)
    add(
        "--callback-attempts",
        type=_checked(attempts),
        default=_env("LIPSYNC_MOCK_CALLBACK_ATTEMPTS", attempts, 5),
        metavar="N",
        help="[LIPSYNC_MOCK_CALLBACK_ATTEMPTS] deliveries tried per callback (default: 5)",
    )
    seconds = _number(0, 3600, low_open=True)
    add(
        "--callback-timeout",
        type=_checked(seconds),
        default=_env("LIPSYNC_MOCK_CALLBACK_TIMEOUT", seconds, 5.0),
        metavar="S",
        help="[LIPSYNC_MOCK_CALLBACK_TIMEOUT] seconds per delivery attempt (default: 5)",
    )
    add(
        "--admin-token",
        type=_checked(_header_safe),
        default=_env("LIPSYNC_MOCK_ADMIN_TOKEN", _header_safe),
        metavar="TOKEN",
        help="[LIPSYNC_MOCK_ADMIN_TOKEN] require this token in the X-Admin-Token header of "
        "every /__admin/ request (default: none; needed when --host is not loopback)",
    )
    add(
        "--header-timeout",
        type=_checked(seconds),
        default=_env("LIPSYNC_MOCK_HEADER_TIMEOUT", seconds, 10.0),
        metavar="S",
        help="[LIPSYNC_MOCK_HEADER_TIMEOUT] a connection that has not sent a whole request head "
        "within S seconds (of opening, or of its last answer) is closed (default: 10)",
    )
    add(
        "--body-timeout",
        type=_checked(seconds),
        default=_env("LIPSYNC_MOCK_BODY_TIMEOUT", seconds, 30.0),
        metavar="S",
        help="[LIPSYNC_MOCK_BODY_TIMEOUT] a request body not received whole within S seconds "
        "is refused with 1200 (default: 30)",
    )
    keep_alive = _integer(1, 3600)
    add(
        "--keep-alive",
        type=_checked(keep_alive),
        default=_env("LIPSYNC_MOCK_KEEP_ALIVE", keep_alive, 5),
        metavar="S",
        help="[LIPSYNC_MOCK_KEEP_ALIVE] seconds an idle keep-alive connection is kept (default: 5)",
    )
    add(
        "--proxy-to",
        type=_checked(_url),
        default=_env("LIPSYNC_MOCK_PROXY_TO", _url),
        metavar="URL",
        help="[LIPSYNC_MOCK_PROXY_TO] proxy mode: send every request to this upstream (e.g. "
        "https://api-singapore.klingai.com) and check its answers against the spec",
    )
    add(
        "--record",
        type=_checked(_text),
        default=_env("LIPSYNC_MOCK_RECORD", _text),
        metavar="FILE",
        help="[LIPSYNC_MOCK_RECORD] with --proxy-to: append every interaction to FILE (JSON "
        "lines, secrets redacted)",
    )
    record_mb = _number(0, 1024 * 1024, low_open=True)
    add(
        "--record-max-mb",
        type=_checked(record_mb),
        default=_env("LIPSYNC_MOCK_RECORD_MAX_MB", record_mb, 256.0),
        metavar="MB",
        help="[LIPSYNC_MOCK_RECORD_MAX_MB] with --record: the file's limit; past it one "
        "'truncated' record is written and later ones are not (default: 256)",
    )
    proxy_auths = ["passthrough", "resign"]
    add(
        "--proxy-auth",
        choices=proxy_auths,
        default=_env("LIPSYNC_MOCK_PROXY_AUTH", _choice("proxy auth", proxy_auths), "passthrough"),
        help="[LIPSYNC_MOCK_PROXY_AUTH] passthrough sends the client's Authorization; resign "
        "signs a fresh JWT from KLING_ACCESS_KEY/KLING_SECRET_KEY (default: passthrough)",
    )
    upstream_timeout = _number(0, 600, low_open=True)
    add(
        "--upstream-timeout",
        type=_checked(upstream_timeout),
        default=_env("LIPSYNC_MOCK_UPSTREAM_TIMEOUT", upstream_timeout, 60.0),
        metavar="S",
        help="[LIPSYNC_MOCK_UPSTREAM_TIMEOUT] seconds an upstream answer may take (default: 60)",
    )
    add(
        "--replay",
        type=_checked(_text),
        default=_env("LIPSYNC_MOCK_REPLAY", _text),
        metavar="FILE",
        help="[LIPSYNC_MOCK_REPLAY] answer the interactions recorded in FILE and play their "
        "task lifecycles on the mock's clock",
    )
    levels = ["debug", "info", "warning", "error"]
    add(
        "--log-level",
        choices=levels,
        default=_env("LIPSYNC_MOCK_LOG_LEVEL", _choice("log level", levels), "info"),
        help="[LIPSYNC_MOCK_LOG_LEVEL] info logs one line per API request (default: info)",
    )
    add(
        "--log-format",
        choices=list(LOG_FORMATS),
        default=_env("LIPSYNC_MOCK_LOG_FORMAT", _choice("log format", LOG_FORMATS), "text"),
        help="[LIPSYNC_MOCK_LOG_FORMAT] text for people, json for one JSON object per line "
        "(default: text)",
    )
    return p


def _choice(what: str, choices: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return raw

    return parse


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _accounts(args: argparse.Namespace) -> tuple[Account, ...]:
    first = Account(AccountId(args.access_key), args.access_key, args.secret_key, (args.api_key,))
    accounts = [first, *args.account]
    access_keys: set[str] = set()
    api_keys: set[str] = set()
    for account in accounts:
        if account.access_key in access_keys:
            raise UsageError(f"--account: AccessKey {_shown(account.access_key)} is given twice")
        access_keys.add(account.access_key)
        for key in account.api_keys:
            if key in api_keys:
                raise UsageError(f"--account: API key {_shown(key)} belongs to two accounts")
            api_keys.add(key)
    if len(accounts) > MAX_ACCOUNTS:
        raise UsageError(f"--account: {len(accounts)} accounts, at most {MAX_ACCOUNTS}")
    return tuple(accounts)


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    """The Config the options describe; UsageError names a bad flag or variable."""
    args = parser().parse_args(argv)
    config = Config(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        accounts=_accounts(args),
        fixtures_file=args.fixtures,
        seed=args.seed,
        clock_mode=ClockMode(args.clock),
        clock_speed=args.clock_speed,
        clock_start_ms=args.clock_start,
        submit_delay_s=args.submit_delay,
        processing_delay_s=args.processing_delay,
        allow_dirs=tuple(args.allow_dir),
        store=args.store,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        journal_bytes=int(args.journal_mb * 1024 * 1024),
        max_tasks=args.max_tasks,
        max_sessions=args.max_sessions,
        webhook_secret=args.webhook_secret,
        callback_attempts=args.callback_attempts,
        callback_timeout_s=args.callback_timeout,
        log_level=args.log_level,
        log_format=args.log_format,
        admin_token=args.admin_token,
        proxy_to=args.proxy_to,
        record_file=args.record,
        record_max_bytes=int(args.record_max_mb * 1024 * 1024),
        proxy_auth=args.proxy_auth,
        upstream_timeout_s=args.upstream_timeout,
        replay_file=args.replay,
        submit_delay_dist=args.submit_delay_dist,
        processing_delay_dist=args.processing_delay_dist,
        api_latency=args.api_latency,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        keep_alive_s=args.keep_alive,
    )
    if config.record_file and not config.proxy_to:
        raise UsageError("--record FILE needs --proxy-to URL: only the proxy records")
    if config.proxy_to and config.replay_file:
        raise UsageError("--proxy-to and --replay exclude each other: record first, then replay")
    if config.admin_token is None and not is_loopback(config.host):
        raise UsageError(
            f"--host {_shown(config.host)} is not a loopback address: set --admin-token "
            "(LIPSYNC_MOCK_ADMIN_TOKEN) so that the control API /__admin/ is not open to "
            "the network"
        )
    return config


def banner(config: Config) -> str:
    account = config.accounts[0]
    if config.proxy_to:
        return "\n".join(
            [
                f"Kling lip-sync proxy on {config.base_url} -> {config.proxy_to}",
                f"  auth       {config.proxy_auth}",
                f"  recording  {config.record_file or 'off (--record FILE)'}",
            ]
        )
    token = make_token(account.access_key, account.secret_key)
    admin = "X-Admin-Token required" if config.admin_token else "open (loopback only)"
    return "\n".join(
        [
            f"Kling lip-sync mock on {config.base_url}  (spec: {config.base_url}/openapi.yaml)",
            f"  AccessKey  {account.access_key}",
            f"  SecretKey  {account.secret_key}",
            f"  API key    {', '.join(account.api_keys)}",
            f"  token      {token}   (HS256, valid 30 min)",
            f"  clock      {config.clock_mode.value} x{config.clock_speed:g}; tasks: "
            f"{config.submit_delay_dist or f'{config.submit_delay_s:g} s'} submitted, "
            f"{config.processing_delay_dist or f'{config.processing_delay_s:g} s'} processing"
            + (f"; API latency {config.api_latency}" if config.api_latency else ""),
            f"  control    {config.base_url}/__admin/  {admin}",
            f"  try: curl -s {config.base_url}/v1/videos/identify-face "
            f"-H 'Authorization: Bearer {account.api_keys[0] if account.api_keys else token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"video_url": "https://example.com/speaker.mp4"}\'',
        ]
    )


def banner_fields(config: Config) -> dict[str, object]:
    """The banner as one JSON log object (`--log-format json`)."""
    account = config.accounts[0]
    return {
        "level": "info",
        "logger": "mock_server",
        "message": f"Kling lip-sync mock on {config.base_url}",
        "base_url": config.base_url,
        "access_key": account.access_key,
        "api_keys": list(account.api_keys),
        "token": make_token(account.access_key, account.secret_key),
        "clock": config.clock_mode.value,
        "admin_token_required": config.admin_token is not None,
    }


class CliExit(SystemExit):
    """SystemExit with the status; its str() is the line printed on stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _fail(message: str, status: int) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    raise CliExit(status, message)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse, bind, build the app, print the banner, serve until SIGINT/SIGTERM (status 0)."""
    try:
        _serve(argv)
    except UsageError as exc:
        _fail(str(exc), 2)
    except KeyboardInterrupt:  # Ctrl-C before the server took over the signals
        raise SystemExit(130) from None


def _serve(argv: Sequence[str] | None) -> None:
    import dataclasses
    import logging.config

    config = config_from_args(argv)
    from . import serving

    try:
        sock = serving.bind_socket(config.host, config.port)
    except OSError as exc:
        _fail(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", 1)
    except UnicodeError as exc:
        _fail(f"cannot listen on {_shown(config.host)}: {exc}", 1)
    if config.port == 0:  # the real port, so that result URLs carry it
        config = dataclasses.replace(config, port=sock.getsockname()[1])
    from .web.app import create_app

    try:
        app = create_app(config)
    except Exception as exc:  # a fixtures file, a store path: one line, not a traceback
        sock.close()
        _fail(str(exc) or type(exc).__name__, 2)
    logging.config.dictConfig(logging_config(config.log_level, config.log_format))
    if config.log_format == "json":  # stderr stays one JSON object per line
        print(json.dumps(banner_fields(config)), file=sys.stderr, flush=True)
    else:
        print(banner(config), file=sys.stderr, flush=True)
    server = serving.Server(
        serving.server_config(
            app,
            header_timeout_s=config.header_timeout_s,
            keep_alive_s=config.keep_alive_s,
            log_level=config.log_level,
            log_config=logging_config(config.log_level, config.log_format),
        )
    )
    server.run(sockets=[sock])
    if not server.started:  # the lifespan failed; uvicorn logged why
        raise SystemExit(3)
