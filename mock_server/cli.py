"""`lipsync-mock` / `python -m mock_server`: options from flags or environment variables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .auth import make_token
from .config import DEFAULT_ACCESS_KEY, DEFAULT_API_KEY, DEFAULT_SECRET_KEY, Config
from .domain.clock import ClockMode
from .domain.models import Account, AccountId


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lipsync-mock",
        description="Offline stateful fake of the Kling Advanced Lip-Sync API. Every option "
        "can also be set with the environment variable shown in brackets.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = p.add_argument
    add(
        "--host",
        default=_env("LIPSYNC_MOCK_HOST", "127.0.0.1"),
        help="[LIPSYNC_MOCK_HOST] bind address",
    )
    add(
        "--port",
        type=int,
        default=int(_env("LIPSYNC_MOCK_PORT", "8000") or 8000),
        help="[LIPSYNC_MOCK_PORT] port; 0 picks a free one",
    )
    add(
        "--public-url",
        default=_env("LIPSYNC_MOCK_PUBLIC_URL"),
        help="[LIPSYNC_MOCK_PUBLIC_URL] base URL put in result links (default http://HOST:PORT)",
    )
    add(
        "--access-key",
        default=_env("KLING_ACCESS_KEY", DEFAULT_ACCESS_KEY),
        help="[KLING_ACCESS_KEY] AccessKey accepted as JWT iss",
    )
    add(
        "--secret-key",
        default=_env("KLING_SECRET_KEY", DEFAULT_SECRET_KEY),
        help="[KLING_SECRET_KEY] SecretKey that signs the JWTs",
    )
    add(
        "--api-key",
        default=_env("KLING_API_KEY", DEFAULT_API_KEY),
        help="[KLING_API_KEY] API key accepted as a bearer token",
    )
    add(
        "--account",
        action="append",
        default=[a for a in (_env("LIPSYNC_MOCK_ACCOUNTS") or "").split(",") if a],
        metavar="AK:SK[:APIKEY]",
        help="[LIPSYNC_MOCK_ACCOUNTS, comma-separated] another account; repeatable",
    )
    add(
        "--fixtures",
        default=_env("LIPSYNC_MOCK_FIXTURES"),
        metavar="FILE",
        help="[LIPSYNC_MOCK_FIXTURES] YAML file of videos, audios and task outcomes",
    )
    add(
        "--seed",
        type=int,
        default=int(s) if (s := _env("LIPSYNC_MOCK_SEED")) else None,
        help="[LIPSYNC_MOCK_SEED] seed of every id; with --clock manual responses are byte-identical",
    )
    add(
        "--clock",
        choices=[m.value for m in ClockMode],
        default=_env("LIPSYNC_MOCK_CLOCK", "real"),
        help="[LIPSYNC_MOCK_CLOCK] real time (scaled by --clock-speed) or manual (moved by the control API)",
    )
    add(
        "--clock-speed",
        type=float,
        default=float(_env("LIPSYNC_MOCK_CLOCK_SPEED", "1") or 1),
        help="[LIPSYNC_MOCK_CLOCK_SPEED] mock seconds per real second",
    )
    add(
        "--clock-start",
        type=int,
        default=int(s) if (s := _env("LIPSYNC_MOCK_CLOCK_START")) else None,
        metavar="MS",
        help="[LIPSYNC_MOCK_CLOCK_START] initial time, Unix ms (default: now)",
    )
    add(
        "--submit-delay",
        type=float,
        default=float(_env("LIPSYNC_MOCK_SUBMIT_DELAY", "1") or 1),
        metavar="S",
        help="[LIPSYNC_MOCK_SUBMIT_DELAY] seconds a task stays submitted",
    )
    add(
        "--processing-delay",
        type=float,
        default=float(_env("LIPSYNC_MOCK_PROCESSING_DELAY", "3") or 3),
        metavar="S",
        help="[LIPSYNC_MOCK_PROCESSING_DELAY] seconds a task stays processing",
    )
    add(
        "--allow-dir",
        action="append",
        default=[d for d in (_env("LIPSYNC_MOCK_ALLOW_DIRS") or "").split(os.pathsep) if d],
        metavar="DIR",
        help="[LIPSYNC_MOCK_ALLOW_DIRS, os.pathsep-separated] folder whose files file:// URLs may read; repeatable",
    )
    add(
        "--store",
        default=_env("LIPSYNC_MOCK_STORE", "memory"),
        metavar="memory|sqlite:PATH",
        help="[LIPSYNC_MOCK_STORE] memory, or one SQLite file that keeps tasks, sessions and fixtures across restarts",
    )
    add(
        "--max-body-mb",
        type=float,
        default=float(_env("LIPSYNC_MOCK_MAX_BODY_MB", "10") or 10),
        help="[LIPSYNC_MOCK_MAX_BODY_MB] request body limit",
    )
    add(
        "--journal-mb",
        type=float,
        default=float(_env("LIPSYNC_MOCK_JOURNAL_MB", "16") or 16),
        help="[LIPSYNC_MOCK_JOURNAL_MB] bytes kept by the request journal and by the callback "
        "delivery log, each; the oldest entries go first",
    )
    add(
        "--webhook-secret",
        default=_env("LIPSYNC_MOCK_WEBHOOK_SECRET"),
        metavar="whsec_...",
        help="[LIPSYNC_MOCK_WEBHOOK_SECRET] sign callbacks with Standard Webhooks",
    )
    add(
        "--callback-attempts",
        type=int,
        default=int(_env("LIPSYNC_MOCK_CALLBACK_ATTEMPTS", "5") or 5),
        help="[LIPSYNC_MOCK_CALLBACK_ATTEMPTS] deliveries tried per callback",
    )
    add(
        "--callback-timeout",
        type=float,
        default=float(_env("LIPSYNC_MOCK_CALLBACK_TIMEOUT", "5") or 5),
        metavar="S",
        help="[LIPSYNC_MOCK_CALLBACK_TIMEOUT] seconds per delivery attempt",
    )
    add(
        "--log-level",
        default=_env("LIPSYNC_MOCK_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="[LIPSYNC_MOCK_LOG_LEVEL] log level",
    )
    return p


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    args = parser().parse_args(argv)
    accounts = [
        Account(AccountId(args.access_key), args.access_key, args.secret_key, (args.api_key,))
    ]
    for spec in args.account:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise SystemExit(f"--account {spec!r}: expected AK:SK or AK:SK:APIKEY")
        accounts.append(Account(AccountId(parts[0]), parts[0], parts[1], tuple(parts[2:])))
    return Config(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        accounts=tuple(accounts),
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
        webhook_secret=args.webhook_secret,
        callback_attempts=args.callback_attempts,
        callback_timeout_s=args.callback_timeout,
        log_level=args.log_level,
    )


def banner(config: Config) -> str:
    account = config.accounts[0]
    token = make_token(account.access_key, account.secret_key)
    return "\n".join(
        [
            f"Kling lip-sync mock on {config.base_url}  (spec: {config.base_url}/openapi.yaml)",
            f"  AccessKey  {account.access_key}",
            f"  SecretKey  {account.secret_key}",
            f"  API key    {', '.join(account.api_keys)}",
            f"  token      {token}   (HS256, valid 30 min)",
            f"  clock      {config.clock_mode.value} x{config.clock_speed}; tasks: "
            f"{config.submit_delay_s:g} s submitted, {config.processing_delay_s:g} s processing",
            f"  try: curl -s {config.base_url}/v1/videos/identify-face "
            f"-H 'Authorization: Bearer {account.api_keys[0] if account.api_keys else token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"video_url": "https://example.com/speaker.mp4"}\'',
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    import socket

    import uvicorn

    from .web.app import create_app

    config = config_from_args(argv)
    sock = None
    if config.port == 0:  # pick the port first so that result URLs carry the real one
        # IPPROTO_TCP explicitly, or asyncio leaves Nagle on and keep-alive requests stall ~40 ms.
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((config.host, 0))
        import dataclasses

        config = dataclasses.replace(config, port=sock.getsockname()[1])
    try:
        app = create_app(config)
    except ValueError as exc:
        raise SystemExit(f"lipsync-mock: {exc}") from exc
    print(banner(config), file=sys.stderr, flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=config.log_level == "debug",
        )
    )
    server.run(sockets=[sock] if sock else None)
