"""The setup every family starts from: a session on a video and a first task on it."""

from __future__ import annotations

import uuid
from typing import Any

from ... import strategies
from .base import CREATE, IDENTIFY, Context, Session
from .units import ms


def open_session(ctx: Context) -> Session | None:
    """identify-face on candidate videos; keep the one that lets the most rules be broken."""
    urls = list(ctx.options.video_urls) or [
        f"https://example.com/contracts/speaker-{i}.mp4" for i in range(8)
    ]
    best: tuple[int, Session] | None = None
    for url in urls:
        session = plain_session(ctx, url)
        if session is None:
            continue
        first_task(ctx, session)
        missing = missing_rules(ctx, session)
        score = len(missing) if missing is not None else 99
        if best is None or score < best[0]:
            best = (score, session)
        if score == 0:
            break
    return None if best is None else best[1]


def plain_session(ctx: Context, url: str) -> Session | None:
    """identify-face on a video, without the first task."""
    body = {"video_url": url}
    answer = ctx.t.send("identifyFace", body=body)
    if not ctx.accepted("identifyFace", IDENTIFY, body, answer):
        return None
    data = answer.data if isinstance(answer.data, dict) else {}
    faces = [f for f in data.get("face_data") or [] if isinstance(f, dict)]
    return Session(str(data.get("session_id", "")), faces, url)


def first_task(ctx: Context, session: Session) -> None:
    """Create one task on the longest face to learn the video's duration from it."""
    external = f"contracts-{ctx.run_id}-{len(session.faces)}-{uuid.uuid4().hex[:8]}"
    body = create_body(ctx, session, {"sound_file": ctx.sound_file})
    if body is None:
        return
    body["external_task_id"] = external
    answer = ctx.t.send("createLipSyncTask", body=body)
    if not ctx.accepted("createLipSyncTask", CREATE, body, answer):
        return
    task_id = str((answer.data or {}).get("task_id", ""))
    session.task_id, session.external_task_id = task_id, external
    got = ctx.t.send("getLipSyncTask", path_parameters={"id": task_id})
    data = got.data if isinstance(got.data, dict) else {}
    parent = (data.get("task_info") or {}).get("parent_video") or {}
    session.video_ms = ms(parent.get("duration"))


def window_ms(ctx: Context) -> int:
    """The shortest audio window a task may use (crop and face-overlap minimums)."""
    return max(
        int(ctx.spec.rules["crop-min-length"].boundary),
        int(ctx.spec.rules["insert-face-overlap"].boundary),
    )


def usable_faces(session: Session) -> list[dict[str, Any]]:
    return [
        f
        for f in session.faces
        if isinstance(f.get("start_time"), int) and isinstance(f.get("end_time"), int)
    ]


def create_body(
    ctx: Context,
    session: Session,
    audio: dict[str, Any],
    audio_ms: int | None = None,
    callback_url: str | None = None,
) -> dict[str, Any] | None:
    """A minimal valid create-task body: the shortest window allowed on the longest face."""
    usable = usable_faces(session)
    length = window_ms(ctx)
    if not usable or (audio_ms if audio_ms is not None else ctx.audio_ms) < length:
        return None
    face = max(usable, key=lambda f: f["end_time"] - f["start_time"])
    choice = {
        "face_id": face["face_id"],
        **audio,
        "sound_start_time": 0,
        "sound_end_time": length,
        "sound_insert_time": face["start_time"],
    }
    body: dict[str, Any] = {"session_id": session.session_id, "face_choose": [choice]}
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def missing_rules(ctx: Context, session: Session) -> dict[str, str] | None:
    """The rules no request on this session can break, with why (None: not known yet)."""
    if session.video_ms is None:
        return None
    try:
        rules = strategies.expressible_create_rules(
            session.session_id,
            session.faces,
            ctx.audio_ms,
            session.video_ms,
            sound_file=ctx.sound_file,
            taken_external_task_id=session.external_task_id,
            spec=ctx.spec,
        )
    except ValueError:
        return None
    return {
        rule: reason
        for rule, reason in rules.items()
        if reason is not None and rule not in strategies.UNEXPRESSIBLE_RULES
    }
