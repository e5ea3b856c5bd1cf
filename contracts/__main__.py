"""`python -m contracts <command>`: the kit's command line (verify, check-client, coverage, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import check_client, coverage, drift, fuzz_callbacks, verify


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m contracts",
        description="Contract-testing kit for the Kling Advanced Lip-Sync API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify.add_arguments(
        commands.add_parser(
            "verify",
            help="check a server (the mock or the real service) against the spec",
            description=(verify.__doc__ or "").split("\n\n")[0],
        )
    )
    check_client.add_arguments(
        commands.add_parser(
            "check-client",
            help="report spec violations and bad client behaviour in the mock's journal",
            description=(check_client.__doc__ or "").split("\n\n")[0],
        )
    )
    coverage.add_arguments(
        commands.add_parser(
            "coverage",
            help="report what a client's test suite exercised and what never happened",
            description=(coverage.__doc__ or "").split("\n\n")[0],
        )
    )
    fuzz_callbacks.add_arguments(
        commands.add_parser(
            "fuzz-callbacks",
            help="send generated callback deliveries to a receiver and check its answers",
            description=(fuzz_callbacks.__doc__ or "").split("\n\n")[0],
        )
    )
    drift.add_arguments(
        commands.add_parser(
            "drift",
            help="compare a recording of the real service with the spec and with the mock",
            description=(drift.__doc__ or "").split("\n\n")[0],
        )
    )
    args = parser.parse_args(argv)
    if args.command == "verify":
        return verify.run_from_args(args)
    if args.command == "check-client":
        return check_client.run(args)
    if args.command == "coverage":
        return coverage.run(args)
    if args.command == "fuzz-callbacks":
        return fuzz_callbacks.run(args)
    if args.command == "drift":
        return drift.run(args)
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())
