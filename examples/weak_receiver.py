"""A callback receiver with three classic flaws, each switchable, for `fuzz-callbacks` to catch.

* `trust_signatures`: verifies nothing, so a forged delivery is accepted (2xx);
* `last_write_wins`: stores whatever status arrives last, so a late `processing` overwrites
  `succeed`;
* `crash_on_bad_json`: parses without a guard, so a body that is not JSON answers 500 (and
  the real service retries it).

With every flag off it behaves like `examples.kling_client.CallbackReceiver`. It is an ASGI app
(Starlette): `POST /callback` receives, `GET /state` answers task_id -> status held::

    app = weak_receiver(secret="whsec_...", last_write_wins=True)
    report = fuzz_asgi(app, "/callback", FuzzOptions(secret="whsec_..."), state=app.state.held.copy)
"""

from __future__ import annotations

import json

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}


def weak_receiver(
    secret: str | None = None,
    *,
    trust_signatures: bool = False,
    last_write_wins: bool = False,
    crash_on_bad_json: bool = False,
) -> Starlette:
    """The receiver app; `app.state.held` is the dict task_id -> status it holds."""
    verifier = Webhook(secret) if secret and not trust_signatures else None
    held: dict[str, str] = {}

    async def callback(request: Request) -> Response:
        raw = await request.body()
        if verifier is not None:
            try:
                verifier.verify(raw, dict(request.headers), json_parse=False)
            except (WebhookVerificationError, ValueError):
                return Response(status_code=401)
        if crash_on_bad_json:
            payload = json.loads(raw)  # raises on bad JSON: Starlette answers 500
        else:
            try:
                payload = json.loads(raw)
            except ValueError:
                return Response(status_code=400)
        if not isinstance(payload, dict):
            return Response(status_code=400)
        task_id, status = payload.get("task_id"), payload.get("task_status")
        if not isinstance(task_id, str) or status not in RANK:
            return Response(status_code=400)
        current = held.get(task_id)
        if last_write_wins or current is None or RANK[status] > RANK[current]:
            held[task_id] = status
        return Response(status_code=204)

    async def state(request: Request) -> Response:
        return JSONResponse(held)

    app = Starlette(routes=[Route("/callback", callback, methods=["POST"]), Route("/state", state)])
    app.state.held = held
    return app
