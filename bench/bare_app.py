"""The reference: a bare Starlette app answering the spec's example JSON on the mock's routes.

No auth, no validation, no state: it reads the body and answers a fixed document, so it costs
what uvicorn, Starlette routing and JSON serialisation cost. Served exactly like the mock:
`uvicorn --factory --app-dir bench bare_app:create_app --workers 1 --no-access-log`.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Copied from the examples in openapi/lipsync.yaml (TTS has none; its body follows the schema).
IDENTIFY_FACE: dict[str, Any] = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "6b0d4f1e-5c1a-4b8e-9a51-0d1f3c2b7a10",
    "data": {
        "session_id": "850508686686064678",
        "final_unit_deduction": "1",
        "face_data": [
            {
                "face_id": "0",
                "face_image": "http://127.0.0.1:8000/files/faces/850508686686064678-0.png",
                "start_time": 0,
                "end_time": 5200,
            },
            {
                "face_id": "1",
                "face_image": "http://127.0.0.1:8000/files/faces/850508686686064678-1.png",
                "start_time": 6300,
                "end_time": 9800,
            },
        ],
    },
}

CREATED: dict[str, Any] = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "1c8e2a7d-33f0-4c55-b0a4-5e2a9c1d7f42",
    "data": {
        "task_id": "851027346193289226",
        "task_info": {"external_task_id": "order-42"},
        "task_status": "submitted",
        "created_at": 1722769557708,
        "updated_at": 1722769557708,
    },
}

TASK: dict[str, Any] = {
    "task_id": "851027346193289226",
    "task_status": "succeed",
    "task_status_msg": "",
    "task_info": {
        "external_task_id": "order-42",
        "parent_video": {
            "id": "",
            "url": "https://example.com/videos/speaker.mp4",
            "duration": "9.8",
        },
    },
    "task_result": {
        "videos": [
            {
                "id": "851027346193289227",
                "url": "http://127.0.0.1:8000/files/videos/851027346193289227.mp4",
                "duration": "9.8",
            }
        ]
    },
    "watermark_info": {"enabled": False},
    "final_unit_deduction": "1",
    "created_at": 1722769557708,
    "updated_at": 1722769569708,
}

TTS: dict[str, Any] = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "3e9b7c1d-2a4f-4e6b-8c0d-1f2e3a4b5c6d",
    "data": {
        "task_id": "851027346193289300",
        "task_status": "succeed",
        "task_status_msg": "",
        "task_result": {
            "audios": [
                {
                    "id": "851027346193289301",
                    "url": "http://127.0.0.1:8000/files/audio/851027346193289301.mp3",
                    "duration": "2.4",
                }
            ]
        },
        "final_unit_deduction": "1",
        "created_at": 1722769557708,
        "updated_at": 1722769557708,
    },
}


def _envelope(data: Any, request_id: str) -> dict[str, Any]:
    return {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data}


async def identify_face(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(IDENTIFY_FACE)


async def create_lip_sync_task(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(CREATED)


async def list_lip_sync_tasks(request: Request) -> JSONResponse:
    # As many copies of the example task as the page asks for, so the bytes match the mock's.
    raw = request.query_params.get("pageSize", "")
    size = min(max(int(raw), 1), 500) if raw.isdigit() else 30
    return JSONResponse(_envelope([TASK] * size, "0f4b1a22-8d9e-4c1b-a3a0-77c2e5d9b311"))


async def get_lip_sync_task(request: Request) -> JSONResponse:
    return JSONResponse(_envelope(TASK, "0f4b1a22-8d9e-4c1b-a3a0-77c2e5d9b311"))


async def create_tts(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(TTS)


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/videos/identify-face", identify_face, methods=["POST"]),
            Route("/v1/videos/advanced-lip-sync", create_lip_sync_task, methods=["POST"]),
            Route("/v1/videos/advanced-lip-sync", list_lip_sync_tasks, methods=["GET"]),
            Route("/v1/videos/advanced-lip-sync/{id}", get_lip_sync_task, methods=["GET"]),
            Route("/v1/audio/tts", create_tts, methods=["POST"]),
        ]
    )
