"""``python -m contracts verify``: the options, the run, the report on stdout or in files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .options import Credentials, VerifyOptions
from .run import Progress, verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m contracts verify``."""
    add = parser.add_argument
    add("--base-url", required=True, help="server to check, e.g. http://127.0.0.1:8000")
    add("--access-key", default=None, help="AccessKey (or KLING_ACCESS_KEY); a JWT per request")
    add("--secret-key", default=None, help="SecretKey (or KLING_SECRET_KEY)")
    add("--api-key", default=None, help="console API key (or KLING_API_KEY)")
    add("--spec", default=None, help="OpenAPI spec (default: the one shipped with the mock)")
    add("--max-examples", type=int, default=20, help="examples per operation and phase (20)")
    add("--rule-examples", type=int, default=3, help="requests per rule (3)")
    add("--seed", type=int, default=None, help="seed of every generator (default: random)")
    add("--video-url", action="append", default=[], help="video for identify-face; repeatable")
    add("--sound-file", default=None, help="audio URL or base64 for valid create-task bodies")
    add("--sound-duration-ms", type=int, default=8000, help="exact duration of --sound-file (8000)")
    add("--poll-timeout", type=float, default=20.0, help="seconds to wait for a task to end (20)")
    add("--request-timeout", type=float, default=30.0, help="seconds per request (30)")
    add("--no-schemathesis", action="store_true", help="run only our checks")
    control = parser.add_mutually_exclusive_group()
    control.add_argument(
        "--use-control-api",
        dest="control_api",
        action="store_true",
        default=None,
        help="move the mock's clock (/__admin/clock/advance) to break the time rules, last "
        "(default: on when --base-url is loopback)",
    )
    control.add_argument(
        "--no-control-api",
        dest="control_api",
        action="store_false",
        help="never use the control API: the time rules are not exercised",
    )
    add("--no-callbacks", action="store_true", help="do not check the callbacks the server sends")
    add("--webhook-secret", default=None, help="whsec_... secret: check every callback's signature")
    add("--callback-url", default=None, help="public URL forwarded to verify's callback receiver")
    add("--callback-port", type=int, default=0, help="port of the receiver on 127.0.0.1 (free)")
    add("--callback-timeout", type=float, default=10.0, help="seconds to wait for a callback (10)")
    add("--junit-xml", default=None, metavar="FILE", help="write a JUnit XML report")
    add("--report", choices=["text", "json"], default="text", help="output format")
    add("--report-file", default=None, metavar="FILE", help="write the report here, not stdout")
    add("--quiet", action="store_true", help="no progress lines on stderr")


def _credentials(args: argparse.Namespace, say: Progress) -> Credentials:
    if args.access_key or args.secret_key:
        return Credentials(access_key=args.access_key, secret_key=args.secret_key)
    if args.api_key:
        return Credentials(api_key=args.api_key)
    from_env = Credentials.from_env()
    if from_env is not None:
        return from_env
    say("no credentials given: using the mock's default AccessKey/SecretKey")
    return Credentials.mock_defaults()


def options_from_args(args: argparse.Namespace, say: Progress) -> VerifyOptions:
    """The :class:`VerifyOptions` of parsed :func:`add_arguments` options (ValueError if bad)."""
    return VerifyOptions(
        base_url=args.base_url,
        credentials=_credentials(args, say),
        spec=args.spec,
        max_examples=args.max_examples,
        rule_examples=args.rule_examples,
        seed=args.seed,
        video_urls=tuple(args.video_url),
        sound_file=args.sound_file,
        sound_duration_ms=args.sound_duration_ms,
        poll_timeout_s=args.poll_timeout,
        request_timeout_s=args.request_timeout,
        schemathesis=not args.no_schemathesis,
        control_api=args.control_api,
        callbacks=not args.no_callbacks,
        webhook_secret=args.webhook_secret,
        callback_url=args.callback_url,
        callback_port=args.callback_port,
        callback_timeout_s=args.callback_timeout,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run verify for parsed :func:`add_arguments` options; the exit status."""

    def say(line: str) -> None:
        if not args.quiet:
            print(f"[verify] {line}", file=sys.stderr, flush=True)

    try:
        options = options_from_args(args, say)
    except ValueError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    report = verify(options, say)
    text = report.to_json() if args.report == "json" else report.summary_table()
    if args.report_file:
        with open(args.report_file, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        if args.report == "json":
            print(report.summary_table(), file=sys.stderr)
    else:
        print(text)
        if args.report == "json" and not args.quiet:
            print(report.summary_table(), file=sys.stderr)
    if args.junit_xml:
        with open(args.junit_xml, "w", encoding="utf-8") as out:
            out.write(report.junit_xml())
    if report.errors and not report.cases:
        return 2
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m contracts verify ...`` without the dispatcher."""
    parser = argparse.ArgumentParser(prog="python -m contracts verify")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
