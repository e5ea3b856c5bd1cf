"""Wire shapes: the only place where Kling's field names meet the domain types."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..domain.backend import CreateTaskInput, FaceChooseInput, IdentifyFaceInput, TtsInput
from ..domain.models import Audio, Session, Task, TaskStatus, VideoMeta


def seconds(ms: int) -> str:
    """Kling writes durations as decimal seconds: 5200 -> "5.2", 6000 -> "6"."""
    text = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _str(body: dict[str, Any], key: str) -> str:
    """An optional string: absent, JSON null and "" all mean "not set"."""
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _number(body: dict[str, Any], key: str, default: float) -> float:
    """An optional number: absent and JSON null take the documented default."""
    value = body.get(key)
    return default if value is None else float(value)


def balance(units: str) -> dict[str, str]:
    """final_balance_deduction: the docs give its shape, not its prices; the mock prices one
    unit at one unit of balance, discounted (`quota`) and at list price alike (*inferred*)."""
    return {"quota": units, "list_price": units}


def media_source(v: VideoMeta) -> str:
    """The x-mock-media-source header: `probed; faces=derived` says which half was made up."""
    if v.faces_source is None or v.faces_source is v.source:
        return v.source.value
    return f"{v.source.value}; faces={v.faces_source.value}"


def identify_face_input(body: dict[str, Any]) -> IdentifyFaceInput:
    return IdentifyFaceInput(video_id=_str(body, "video_id"), video_url=_str(body, "video_url"))


def create_task_input(body: dict[str, Any]) -> CreateTaskInput:
    fc = body["face_choose"][0]
    watermark = body.get("watermark_info") or {}  # null: not set
    return CreateTaskInput(
        session_id=body["session_id"],
        face=FaceChooseInput(
            face_id=fc["face_id"],
            audio_id=_str(fc, "audio_id"),
            sound_file=_str(fc, "sound_file"),
            start_ms=int(fc["sound_start_time"]),
            end_ms=int(fc["sound_end_time"]),
            insert_ms=int(fc["sound_insert_time"]),
            sound_volume=_number(fc, "sound_volume", 1),
            original_volume=_number(fc, "original_audio_volume", 1),
        ),
        watermark=watermark.get("enabled") is True,
        external_task_id=_str(body, "external_task_id"),
        callback_url=_str(body, "callback_url"),
    )


def tts_input(body: dict[str, Any]) -> TtsInput:
    return TtsInput(
        text=body["text"],
        voice_id=body["voice_id"],
        voice_language=body.get("voice_language", "zh"),
        voice_speed=_number(body, "voice_speed", 1.0),
    )


def session(s: Session, base_url: str) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "final_unit_deduction": "1",
        "final_balance_deduction": balance("1"),
        "face_data": [
            {
                "face_id": f.face_id,
                "face_image": f"{base_url}/files/faces/{s.session_id}-{f.face_id}.png",
                "start_time": f.start_ms,
                "end_time": f.end_ms,
            }
            for f in s.video.faces
        ],
    }


def created_task(t: Task) -> dict[str, Any]:
    return {
        "task_id": t.task_id,
        "task_info": {"external_task_id": t.external_task_id},
        "task_status": t.status.value,
        "created_at": t.created_at_ms,
        "updated_at": t.updated_at_ms,
    }


def result_url(t: Task, base_url: str, watermark: bool = False) -> str:
    url = f"{base_url}/files/videos/{t.result_video_id}.mp4"
    # The watermarked link is "anti-hotlinking format": a signed query, like a CDN's.
    return url + f"?watermark=1&sign={t.task_id[-8:]}" if watermark else url


# The wire document (and its JSON, see `task_json`) of recently served tasks. A Task is frozen:
# any change to a task is a new object, so a hit is checked by identity and a changed task is
# serialised afresh. Callers must not mutate the document they get (callback_payload copies).
TASK_DOC_CACHE = 4096
_task_docs: OrderedDict[str, tuple[Task, str, dict[str, Any], list[bytes]]] = OrderedDict()


def task(t: Task, base_url: str) -> dict[str, Any]:
    hit = _task_docs.get(t.task_id)
    if hit is not None and hit[0] is t and hit[1] == base_url:
        return hit[2]
    doc = _task(t, base_url)
    _task_docs[t.task_id] = (t, base_url, doc, [])
    if len(_task_docs) > TASK_DOC_CACHE:
        _task_docs.popitem(last=False)
    return doc


def task_json(doc: dict[str, Any]) -> list[bytes] | None:
    """The JSON slot of a document `task` returned (empty until responses fills it), or None
    for any other value."""
    task_id = doc.get("task_id")
    hit = _task_docs.get(task_id) if isinstance(task_id, str) else None
    return hit[3] if hit is not None and hit[2] is doc else None


def _task(t: Task, base_url: str) -> dict[str, Any]:
    videos: list[dict[str, Any]] = []
    if t.status is TaskStatus.SUCCEED and t.result_video_id is not None:
        video: dict[str, Any] = {
            "id": t.result_video_id,
            "url": result_url(t, base_url),
            "duration": seconds(t.parent.duration_ms),
        }
        if t.watermark:
            video["watermark_url"] = result_url(t, base_url, watermark=True)
        videos.append(video)
    return {
        "task_id": t.task_id,
        "task_status": t.status.value,
        "task_status_msg": t.status_msg,
        "task_info": {
            "external_task_id": t.external_task_id,
            "parent_video": {
                "id": t.parent.video_id,
                "url": t.parent.url,
                "duration": seconds(t.parent.duration_ms),
            },
        },
        "task_result": {"videos": videos},
        "watermark_info": {"enabled": t.watermark},
        "final_unit_deduction": t.units,
        "final_balance_deduction": balance(t.units),
        "created_at": t.created_at_ms,
        "updated_at": t.updated_at_ms,
    }


def callback_payload(t: Task, base_url: str) -> dict[str, Any]:
    """The legacy callback body: the task itself, no envelope."""
    body = dict(task(t, base_url))
    del body["watermark_info"]
    return body


def tts(a: Audio, base_url: str) -> dict[str, Any]:
    return {
        "task_id": a.task_id or a.audio_id,  # audios stored before task ids had one id
        "task_status": TaskStatus.SUCCEED.value,
        "task_status_msg": "",
        "task_result": {
            "audios": [
                {
                    "id": a.audio_id,
                    "url": f"{base_url}/files/audio/{a.audio_id}.mp3",
                    "duration": seconds(a.meta.duration_ms),
                }
            ]
        },
        "final_unit_deduction": "1",
        "final_balance_deduction": balance("1"),
        "created_at": a.created_at_ms,
        "updated_at": a.created_at_ms,
    }
