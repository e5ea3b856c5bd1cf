"""Equivalent stubs for the peers, built from the bare app's documents (bench/bare_app.py).

Every peer answers the same five workloads with the same JSON the bare Starlette app answers: the
spec's examples, a list page of 30 copies of the example task. WireMock gets one mapping file
per route (`--root-dir`), Mockoon one environment file (`--data`); Prism serves the spec's own
examples and needs no stub. None of them checks auth, validates, probes media or stores: they
answer fixed stubs, which is what the mock is measured against.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bare_app

TASKS = "/v1/videos/advanced-lip-sync"
LIST_PAGE_SIZE = 30


def _envelope(data: Any) -> dict[str, Any]:
    return {
        "code": 0,
        "message": "SUCCEED",
        "request_id": "0f4b1a22-8d9e-4c1b-a3a0-77c2e5d9b311",
        "data": data,
    }


def routes() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path pattern, body); the path pattern is a regex over the path and query."""
    return [
        ("POST", "/v1/videos/identify-face", bare_app.IDENTIFY_FACE),
        ("POST", TASKS, bare_app.CREATED),
        ("GET", TASKS + r"\?.*", _envelope([bare_app.TASK] * LIST_PAGE_SIZE)),
        ("GET", TASKS + "/[0-9]+", _envelope(bare_app.TASK)),
    ]


def write_wiremock(root: Path) -> Path:
    mappings = root / "mappings"
    mappings.mkdir(parents=True, exist_ok=True)
    (root / "__files").mkdir(exist_ok=True)
    for old in mappings.glob("*.json"):
        old.unlink()
    for i, (method, pattern, body) in enumerate(routes()):
        stub = {
            "request": {"method": method, "urlPattern": pattern},
            "response": {
                "status": 200,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(body, separators=(",", ":")),
            },
        }
        (mappings / f"{i}-{method.lower()}.json").write_text(json.dumps(stub, indent=1))
    return root


def write_mockoon(path: Path, port: int) -> Path:
    """A Mockoon environment (data format 33, as @mockoon/cli 9 writes it); templating off."""
    route_list = []
    for method, pattern, body in routes():
        # Mockoon matches the path only (the query is not part of it) and takes `:id` params.
        endpoint = pattern.split("\\?")[0].replace("/[0-9]+", "/:id").lstrip("/")
        route_list.append(
            {
                "uuid": str(uuid.uuid4()),
                "type": "http",
                "documentation": "",
                "method": method.lower(),
                "endpoint": endpoint,
                "responses": [
                    {
                        "uuid": str(uuid.uuid4()),
                        "body": json.dumps(body, separators=(",", ":")),
                        "latency": 0,
                        "statusCode": 200,
                        "label": "",
                        "headers": [{"key": "Content-Type", "value": "application/json"}],
                        "bodyType": "INLINE",
                        "filePath": "",
                        "databucketID": "",
                        "sendFileAsBody": False,
                        "rules": [],
                        "rulesOperator": "OR",
                        "disableTemplating": True,
                        "fallbackTo404": False,
                        "default": True,
                        "crudKey": "id",
                        "callbacks": [],
                    }
                ],
                "responseMode": None,
                "streamingMode": None,
                "streamingInterval": 0,
            }
        )
    env = {
        "uuid": str(uuid.uuid4()),
        "lastMigration": 33,
        "name": "kling-lipsync-bench",
        "endpointPrefix": "",
        "latency": 0,
        "port": port,
        "hostname": "127.0.0.1",
        "folders": [],
        "routes": route_list,
        "rootChildren": [{"type": "route", "uuid": r["uuid"]} for r in route_list],
        "proxyMode": False,
        "proxyHost": "",
        "proxyRemovePrefix": False,
        "tlsOptions": {
            "enabled": False,
            "type": "CERT",
            "pfxPath": "",
            "certPath": "",
            "keyPath": "",
            "caPath": "",
            "passphrase": "",
        },
        "cors": False,
        "headers": [],
        "proxyReqHeaders": [],
        "proxyResHeaders": [],
        "data": [],
        "callbacks": [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(env, indent=1))
    return path
