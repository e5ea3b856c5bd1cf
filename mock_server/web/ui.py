"""Pages for people: a landing page, the specs in Swagger UI, the dashboard under /__admin/ui."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..domain.models import JournalQuery, Task
from . import serialize
from .compose import Mock

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_ASSETS = "/__static/swagger-ui"
DASHBOARD_ASSETS = "/__admin/ui/static"
JOURNAL_SHOWN = 100
TASKS_SHOWN = 200
DELIVERIES_SHOWN = 200

# Swagger UI reads the spec from the mock itself and loads nothing from elsewhere: its assets
# are the files of the swagger-ui-bundle-v2 package, served below SWAGGER_ASSETS.
_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
  <style>body {{ margin: 0; }} .mock-nav {{ font: 14px sans-serif; padding: 8px 20px;
    background: #1b1b1b; color: #eee; }} .mock-nav a {{ color: #8fd3ff; margin-right: 16px; }}
  </style>
</head>
<body>
  <nav class="mock-nav"><a href="/">home</a><a href="/docs">API docs</a>
    <a href="/__admin/docs">control API docs</a><a href="/__admin/ui">dashboard</a></nav>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-ui-standalone-preset.js"></script>
  <script>
    // "Try it out" goes to the mock that serves this page, whatever its port.
    fetch("{spec_url}").then((r) => r.json()).then((spec) => {{
      const here = {{ url: window.location.origin, description: "This mock" }};
      spec.servers = [here, ...(spec.servers || []).filter((s) => s.url !== here.url)];
      window.ui = SwaggerUIBundle({{
        spec: spec,
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "BaseLayout",
        validatorUrl: null
      }});
    }});
  </script>
</body>
</html>
"""

_HOME_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Kling lip-sync mock</title>
<link rel="stylesheet" href="{assets}/dashboard.css">
<link rel="icon" type="image/png" href="{swagger}/favicon-32x32.png"></head>
<body class="home">
  <h1>Kling lip-sync mock</h1>
  <p>An offline, stateful stand-in for the Kling AI Advanced Lip-Sync API at
    <code>{base_url}</code>.</p>
  <ul>
    <li><a href="/docs">API docs</a> (Swagger UI of <a href="/openapi.json">/openapi.json</a>,
      <a href="/openapi.yaml">/openapi.yaml</a>)</li>
    <li><a href="/__admin/docs">Control API docs</a>
      (<a href="/__admin/openapi.json">/__admin/openapi.json</a>)</li>
    <li><a href="/__admin/ui">Dashboard</a>: tasks, callbacks, journal, faults, clock</li>
  </ul>
</body>
</html>
"""


def _swagger(title: str, spec_url: str) -> HTMLResponse:
    page = _SWAGGER_PAGE.format(title=title, assets=SWAGGER_ASSETS, spec_url=spec_url)
    return HTMLResponse(page)


async def home(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    page = _HOME_PAGE.format(
        assets=DASHBOARD_ASSETS, swagger=SWAGGER_ASSETS, base_url=html.escape(mock.base_url)
    )
    return HTMLResponse(page)


async def api_docs(request: Request) -> Response:
    return _swagger("Kling lip-sync API (mock)", "/openapi.json")


async def admin_docs(request: Request) -> Response:
    return _swagger("Kling lip-sync mock: control API", "/__admin/openapi.json")


async def admin_index(request: Request) -> Response:
    return RedirectResponse("/__admin/ui", status_code=307)


async def dashboard(request: Request) -> Response:
    return HTMLResponse((STATIC_DIR / "dashboard.html").read_text(encoding="utf-8"))


def _timeline(t: Task) -> list[dict[str, Any]]:
    """Each phase with its planned time and, once reached, when it was.

    A transition is stamped at its due time, so a reached phase's time is its planned one; the
    current phase's time is the task's `updated_at`.
    """
    processing_at = t.created_at_ms + t.outcome.submitted_ms
    planned = (t.created_at_ms, processing_at, processing_at + t.outcome.processing_ms)
    order = ["submitted", "processing", t.outcome.status.value]
    position = order.index(t.status.value) if t.status.value in order else len(order) - 1
    return [
        {
            "status": name,
            "planned_ms": at,
            "reached": i <= position,
            "at_ms": (t.updated_at_ms if i == position else at) if i <= position else None,
        }
        for i, (name, at) in enumerate(zip(order, planned, strict=True))
    ]


async def dashboard_state(request: Request) -> Response:
    """Everything the dashboard shows, in one poll."""
    mock: Mock = request.app.state.mock
    backend = mock.backend
    tasks = [
        {
            "account": t.account,
            **serialize.task(t, mock.base_url),
            "callback_url": t.callback_url,
            "timeline": _timeline(t),
        }
        for t in backend.list_lip_sync_tasks(None, 1, TASKS_SHOWN)
    ]
    clock = backend.clock_state()
    journal = backend.journal(
        JournalQuery(after_seq=max(0, backend.last_journal_seq() - JOURNAL_SHOWN))
    )
    deliveries = backend.last_deliveries(DELIVERIES_SHOWN)
    return JSONResponse(
        {
            "clock": {
                "now_ms": clock.now_ms,
                "mode": clock.mode.value,
                "speed": clock.speed,
                "next_due_ms": clock.next_due_ms,
            },
            "task_count": backend.stored_tasks(),
            "tasks": tasks,
            "deliveries": [dataclasses.asdict(d) for d in deliveries],
            "journal": [dataclasses.asdict(e) for e in journal],
            "faults": [f.to_dict() for f in backend.faults()],
            "chaos": mock.callbacks.chaos_state(),
        }
    )


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/docs", api_docs, methods=["GET"]),
        Route("/__admin", admin_index, methods=["GET"]),
        Route("/__admin/", admin_index, methods=["GET"]),
        Route("/__admin/docs", admin_docs, methods=["GET"]),
        Route("/__admin/ui", dashboard, methods=["GET"]),
        Route("/__admin/ui/state", dashboard_state, methods=["GET"]),
        Mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path)),
        Mount(DASHBOARD_ASSETS, StaticFiles(directory=STATIC_DIR)),
    ]
