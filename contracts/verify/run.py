"""One verify run: the families of checks in order, against one base URL."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import httpx

from mock_server.admin_client import AdminClient, AdminError

from .. import strategies
from ..report import CheckKind
from .checks import callbacks, lifecycle, rules, session, time_rules, valid
from .checks.base import Context
from .checks.callbacks import CALLBACK_CHECKS
from .checks.units import UNIT_CHECKS
from .control import control_api
from .engine import run_schemathesis
from .options import VerifyOptions
from .report import VerifyReport
from .target import Target

Progress = Callable[[str], None]

KLING_CHECKS = (
    "kling_error_mapping",
    "kling_positive_refusal",
    "valid_requests_accepted",
    "task_lifecycle",
    *UNIT_CHECKS,
    *CALLBACK_CHECKS,
)
"""Our checks that are not tied to one rule."""


def verify(options: VerifyOptions, progress: Progress | None = None) -> VerifyReport:
    """Run every check against ``options.base_url`` and report.

    ``progress`` receives one line per step (``print`` to stderr is what the CLI does).

    >>> from contracts.verify import Credentials, VerifyOptions, verify
    >>> report = verify(VerifyOptions("http://127.0.0.1:8000",
    ...                               Credentials.mock_defaults(),
    ...                               max_examples=5))  # doctest: +SKIP
    >>> report.ok, report.failed_checks()  # doctest: +SKIP
    (True, [])
    """
    started = time.monotonic()
    say: Progress = progress or (lambda _line: None)
    spec = strategies.resolve_spec(options.spec)
    seed = options.seed if options.seed is not None else random.getrandbits(32)
    report = VerifyReport(options.base_url, seed)
    target = Target(options, spec, report)
    admin: AdminClient | None = None
    ctx: Context | None = None
    try:
        say(f"verify {options.base_url} (seed {seed})")
        admin, no_clock = control_api(options)
        ctx = Context(target, seed, say, admin, no_clock)
        target.observers.append(ctx.units.observe)
        first = session.open_session(ctx)
        if first is None:
            say("no session: identify-face refused every video")
        else:
            say(f"session {first.session_id}: video {first.video_ms} ms, faces {first.faces}")
            valid.valid_requests(ctx, first)
        rules.rules(ctx, first)
        lifecycle.lifecycle(ctx, first)
        callbacks.callbacks(ctx, first)
        for name in KLING_CHECKS:
            report.check(name, CheckKind.KLING)
        if options.schemathesis:
            run_schemathesis(options, spec, report, seed, say)
        time_rules.time_rules(ctx, first)
    except AdminError as exc:
        report.errors.append(f"the control API refused a request: {exc}")
    except httpx.TransportError as exc:
        report.errors.append(f"cannot reach {options.base_url}: {exc}")
    except OSError as exc:  # requests' connection errors are OSErrors
        report.errors.append(f"cannot reach {options.base_url}: {exc}")
    finally:
        if ctx is not None:
            ctx.close()
        if admin is not None:
            admin.close()
        target.close()
        report.elapsed_s = time.monotonic() - started
    return report
