"""`python -m contracts verify`: check a live server (the mock or the real one) against the spec.

Two families of checks run against one base URL:

* **schemathesis'** own, over every operation of the spec: examples, coverage, fuzzing (positive
  and negative data) and the stateful phase that follows the spec's OpenAPI ``links``
  (identify-face -> create -> query one -> query list; the last link is added in memory when the
  spec has none into the list). Checks: ``not_a_server_error``, ``status_code_conformance``,
  ``content_type_conformance``, ``response_schema_conformance``, ``negative_data_rejection``,
  ``positive_data_acceptance`` (which also accepts, for an operation, the HTTP statuses of its
  domain rules: the schema cannot express them). Positive identify-face cases use a readable
  video URL and stateful create-task cases a minimal valid face choice, so that the chain gets
  sessions and tasks to follow the links from.
* **ours** (kind ``kling`` and ``rule``), built on :mod:`contracts.strategies` against a real
  session (identify-face on an offline-derived video URL):

  - ``kling_error_mapping``: every response is the Kling envelope; ``code`` 0 comes with HTTP
    200, any other code is one of ``x-kling-errors`` and comes with the HTTP status listed there
    (also run inside schemathesis' phases);
  - ``kling_positive_refusal``: a schema-valid request may be refused only for a rule the schema
    cannot express (when the server names the rule, as the mock does);
  - ``valid_requests_accepted``: bodies valid by construction (identify-face, create-task, list,
    TTS) are accepted;
  - ``task_lifecycle``: a created task moves ``submitted -> processing -> succeed | failed``
    without going back, is found by ``external_task_id`` and exactly once in the list;
  - the units and formats of every answer verify reads (:mod:`.checks.units`):
    ``kling_timestamps`` (Unix milliseconds in a plausible range, ``updated_at >= created_at``,
    moving forward), ``kling_durations`` (decimal strings of seconds inside the media bounds),
    ``kling_ids`` (non-empty strings, numeric face ids unique per session, a new
    ``request_id`` per response), ``kling_face_intervals`` (milliseconds inside the video) and
    ``kling_task_fields`` (status words, ``task_status_msg``, ``final_unit_deduction`` "0" until
    success, result videos and ``watermark_url`` only when due, ``external_task_id`` and the
    parent video echoed, pages no longer than ``pageSize``);
  - the callbacks (:mod:`.checks.callbacks`), received on a loopback receiver verify starts
    (or behind ``--callback-url``): ``callback_schema``, ``callback_signature`` (with
    ``--webhook-secret``), ``callback_order`` and ``callback_announced``;
  - ``rule:<id>``, one per rule of ``x-kling-rules`` a request can break: a request breaking only
    that rule is refused with the rule's code and its documented HTTP status (and, when the server
    names the rule it applied, that rule).

    Three identify-face rules need real media behind a URL (a 61 s and a 1.5 s video, a
    640x360 one, a response of more than 100 MB): when the target is on loopback verify serves
    them itself from a small HTTP server on 127.0.0.1 (a free port), else they are reported
    not exercised. Three rules need time to pass (sessions expire after 24 h, TTS audio and
    result videos after 30 days): with ``--use-control-api`` (the default on loopback) and a
    target that answers the mock's ``GET /__admin/clock``, verify runs them last, holding the
    mock's clock and moving it with ``POST /__admin/clock/advance`` to 1 ms before each boundary
    (accepted) and to the boundary (refused). The mock's time stays that far ahead afterwards;
    the report says so in a note.

Against the mock::

    python -m mock_server --port 8000 --webhook-secret whsec_dGVzdHNlY3JldA== &
    python -m contracts verify --base-url http://127.0.0.1:8000 \\
        --webhook-secret whsec_dGVzdHNlY3JldA==

Against the real service (every accepted create-task is a billed task)::

    KLING_ACCESS_KEY=... KLING_SECRET_KEY=... python -m contracts verify \\
        --base-url https://api-singapore.klingai.com --video-url https://.../speaker.mp4 \\
        --sound-file https://.../speech.mp3 --sound-duration-ms 6000 --poll-timeout 900

The exit status is 0 only when every check holds, 1 when one fails, 2 when the run could not
start (bad options, server unreachable). ``--report json`` prints the :class:`VerifyReport` as
JSON; ``--junit-xml`` writes one test case per check.

The package, one module per concern: :mod:`.options`, :mod:`.target` (the HTTP client of the
base URL), :mod:`.media_server`, :mod:`.control` (the mock's control API), :mod:`.checks` (one
module per family), :mod:`.engine` (schemathesis), :mod:`.run` and :mod:`.cli`; the report is
the kit's :mod:`contracts.report`.
"""

from __future__ import annotations

# schemathesis is imported with this package, never lazily: a process that imports schemathesis
# modules for a while and then drops them (pytest's in-process runs restore sys.modules) would
# otherwise give the engine and verify two copies of its event classes and check registry.
import schemathesis  # noqa: F401
from schemathesis.engine import core as _engine_core  # noqa: F401

from ..report import CheckFailure, CheckKind, CheckSummary
from .cli import add_arguments, main, run_from_args
from .engine import SCHEMATHESIS_CHECKS
from .options import Credentials, VerifyOptions
from .report import VerifyReport
from .run import KLING_CHECKS, verify

__all__ = [
    "KLING_CHECKS",
    "SCHEMATHESIS_CHECKS",
    "CheckFailure",
    "CheckKind",
    "CheckSummary",
    "Credentials",
    "VerifyOptions",
    "VerifyReport",
    "add_arguments",
    "main",
    "run_from_args",
    "verify",
]
