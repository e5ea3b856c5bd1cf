"""The Kling API's routes: one handler per operationId, over the backend."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..domain.errors import NOT_FOUND, ApiError
from . import responses, serialize
from .compose import Mock
from .files import MEDIA_TYPES, face_png, usable_range
from .pipeline import Call, Endpoint


async def identify_face(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = call.mock
    inp = serialize.identify_face_input(call.body)
    session = await mock.backend.identify_face(call.principal.account, inp)
    data = serialize.session(session, mock.base_url)
    return data, {"x-mock-media-source": serialize.media_source(session.video)}


async def create_lip_sync_task(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = call.mock
    task = await mock.backend.create_lip_sync_task(
        call.principal.account, serialize.create_task_input(call.body)
    )
    return serialize.created_task(task), None


async def get_lip_sync_task(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = call.mock
    task = mock.backend.get_lip_sync_task(call.principal.account, call.request.path_params["id"])
    return serialize.task(task, mock.base_url), None


def _page_param(mock: Mock, request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    # int() alone would also take " 7", "+7", "1_0" and non-ASCII digits such as "\u0663".
    value: Any = raw
    if re.fullmatch(r"-?[0-9]+", raw, re.ASCII):
        with contextlib.suppress(ValueError):  # more digits than int() converts
            value = int(raw)
    mock.spec.validate_param("listLipSyncTasks", name, value)
    assert isinstance(value, int)
    return value


async def list_lip_sync_tasks(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = call.mock
    page_num = _page_param(mock, call.request, "pageNum", 1)
    page_size = _page_param(mock, call.request, "pageSize", 30)
    external_id = call.request.query_params.get("external_task_id", "")
    tasks = mock.backend.list_lip_sync_tasks(
        call.principal.account, page_num, page_size, external_id
    )
    return [serialize.task(t, mock.base_url) for t in tasks], None


async def create_tts(call: Call) -> tuple[Any, dict[str, str] | None]:
    mock = call.mock
    audio = mock.backend.create_tts(call.principal.account, serialize.tts_input(call.body))
    return serialize.tts(audio, mock.base_url), None


# -- files, spec and errors ------------------------------------------------------------------


async def serve_file(request: Request) -> Response:
    """GET /files/{kind}/{name}: 200, 206 for a byte range, 416 past the end, 1203 unknown.

    Face crops (a few hundred bytes) are answered whole."""
    mock: Mock = request.app.state.mock
    kind, name = request.path_params["kind"], request.path_params["name"]
    stem, _, ext = name.partition(".")
    if (kind, ext) == ("faces", "png"):
        return Response(face_png(stem), media_type=MEDIA_TYPES[(kind, ext)])
    path = await mock.files.path(kind, name)
    stat = None
    if path is not None:
        try:
            stat = await asyncio.to_thread(os.stat, path)
        except OSError:  # evicted between lookup and stat: make it again
            path = await mock.files.path(kind, name)
            stat = await asyncio.to_thread(os.stat, path) if path is not None else None
    if path is None or stat is None:
        error = ApiError(NOT_FOUND, f"file not found or expired: {request.url.path}")
        return responses.failure(error, mock.backend.request_id(), mock.spec.http_status)
    if not usable_range(request.headers.get("range", "bytes=0-")):
        request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"range"]
    return FileResponse(path, media_type=MEDIA_TYPES[(kind, ext)], stat_result=stat)


async def openapi_yaml(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    return Response(mock.spec.yaml_text, media_type="application/yaml")


async def openapi_json(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    return Response(mock.spec.json_text, media_type="application/json")


def api_routes(mock: Mock) -> list[Route]:
    return [
        Route(
            "/v1/videos/identify-face",
            Endpoint(mock, "identifyFace", identify_face, "IdentifyFaceRequest"),
            methods=["POST"],
        ),
        Route(
            "/v1/videos/advanced-lip-sync",
            Endpoint(mock, "createLipSyncTask", create_lip_sync_task, "CreateTaskRequest"),
            methods=["POST"],
        ),
        Route(
            "/v1/videos/advanced-lip-sync",
            Endpoint(mock, "listLipSyncTasks", list_lip_sync_tasks),
            methods=["GET"],
        ),
        Route(
            "/v1/videos/advanced-lip-sync/{id}",
            Endpoint(mock, "getLipSyncTask", get_lip_sync_task),
            methods=["GET"],
        ),
        Route(
            "/v1/audio/tts", Endpoint(mock, "createTts", create_tts, "TtsRequest"), methods=["POST"]
        ),
        Route("/files/{kind}/{name}", serve_file, methods=["GET"]),
        Route("/openapi.yaml", openapi_yaml, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
