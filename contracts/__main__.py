"""`python -m contracts <command>`: the kit's command line (verify, check-client, coverage, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from . import check_client, coverage, drift, fuzz_callbacks, verify

Run = Callable[[argparse.Namespace], int]

# name -> (module: its docstring's first paragraph is the description, and it adds the
# options), one-line help, the function that runs it
COMMANDS: dict[str, tuple[ModuleType, str, Run]] = {
    "verify": (
        verify,
        "check a server (the mock or the real service) against the spec",
        verify.run_from_args,
    ),
    "check-client": (
        check_client,
        "report spec violations and bad client behaviour in the mock's journal",
        check_client.run,
    ),
    "coverage": (
        coverage,
        "report what a client's test suite exercised and what never happened",
        coverage.run,
    ),
    "fuzz-callbacks": (
        fuzz_callbacks,
        "send generated callback deliveries to a receiver and check its answers",
        fuzz_callbacks.run,
    ),
    "drift": (
        drift,
        "compare a recording of the real service with the spec and with the mock",
        drift.run,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m contracts",
        description="Contract-testing kit for the Kling Advanced Lip-Sync API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text, _) in COMMANDS.items():
        description = (module.__doc__ or "").split("\n\n")[0]
        module.add_arguments(commands.add_parser(name, help=help_text, description=description))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
