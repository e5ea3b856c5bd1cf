"""``valid_requests_accepted``: bodies valid by construction are accepted."""

from __future__ import annotations

from ... import strategies
from .base import CREATE, IDENTIFY, LIST, TTS, Context, Session


def valid_requests(ctx: Context, session: Session) -> None:
    """identify-face, list and TTS requests drawn valid, then valid create-task bodies."""
    n = max(ctx.options.rule_examples, 1)
    for body in ctx.draw(
        strategies.identify_face_requests(ctx.options.video_urls or None, ctx.spec), n
    ):
        ctx.accepted("identifyFace", IDENTIFY, body, ctx.t.send("identifyFace", body=body))
    for query in ctx.draw(strategies.list_queries(ctx.spec), n):
        answer = ctx.t.send("listLipSyncTasks", query=query)
        ctx.accepted("listLipSyncTasks", LIST, query, answer)
    for body in ctx.draw(strategies.tts_requests(ctx.spec), 1):
        ctx.accepted("createTts", TTS, body, ctx.t.send("createTts", body=body))
    if session.video_ms is None:
        return
    try:
        strategy = strategies.create_task_requests(
            session.session_id,
            session.faces,
            ctx.audio_ms,
            session.video_ms,
            sound_file=ctx.sound_file,
            external_task_id_prefix=f"contracts-{ctx.run_id}-",
            spec=ctx.spec,
        )
    except ValueError as exc:  # the server's faces leave no room (kling_face_intervals says why)
        ctx.progress(f"no valid create-task body for session {session.session_id}: {exc}")
        return
    count = max(ctx.options.max_examples // 2, n)
    for body in ctx.draw(strategy, count):
        answer = ctx.t.send("createLipSyncTask", body=body)
        ctx.accepted("createLipSyncTask", CREATE, body, answer)
