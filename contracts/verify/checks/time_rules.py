"""The rules broken only by time passing, checked by moving the mock's clock (run last).

The clock is held (manual mode) while verify moves it, so that a request 1 ms before each
boundary is checked as accepted and one at the boundary as refused; its mode is restored
afterwards. Time on the mock stays ahead by what verify moved it, and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from mock_server.admin_client import AdminError
from mock_server.spec import Rule

from ... import strategies
from ...report import CheckKind
from .base import CREATE, IDENTIFY, TTS, Context, Session
from .rules import TIME_RULES
from .session import create_body, plain_session, window_ms
from .units import ms

TTS_TEXT: Final = (
    "This sentence is spoken by the text to speech API so that its audio id can be used "
    "for a lip-sync task, for thirty days."
)
_WHERE = "1 ms before the boundary"

Check = Callable[[], None]


def time_rules(ctx: Context, session: Session | None) -> None:
    """Break session-valid, audio-id-recent and video-id-recent by moving the mock's clock."""
    clock = ctx.clock
    if clock is None:
        return
    rules = [ctx.spec.rules[r] for r in TIME_RULES if r in ctx.spec.rules]
    if session is None or session.video_ms is None:
        for rule in rules:
            ctx.skip_rule(rule.id, "no session: identify-face or the first task failed")
        return
    before = clock.admin.clock()
    held = before.get("mode") == "manual"
    restore = False
    if not held:
        try:
            clock.admin.set_clock(mode="manual")
            held = restore = True
        except AdminError:
            pass
    try:
        checks: list[tuple[int, Rule, Check, Check]] = []
        for rule in rules:
            prepared = _prepare(ctx, rule, session)
            if isinstance(prepared, str):
                ctx.skip_rule(rule.id, prepared)
            else:
                checks.append((prepared[0], rule, prepared[1], prepared[2]))
        for due, rule, keep, refuse in sorted(checks, key=lambda c: c[0]):
            now = clock.now()
            if held and due - 1 >= now:
                clock.advance(due - 1 - now)
                keep()
                clock.advance(1)
            else:
                clock.advance(max(0, due - now))
            refuse()
            name = f"rule:{rule.id}"
            ctx.progress(f"{name}: {ctx.report.check(name, CheckKind.RULE).cases} cases")
    finally:
        if restore:
            clock.admin.set_clock(mode=str(before["mode"]), speed=float(before["speed"]))
        note = clock.note()
        if note:
            ctx.report.notes.append(note)


def _prepare(ctx: Context, rule: Rule, session: Session) -> tuple[int, Check, Check] | str:
    """(when the rule's boundary is reached, the check before it, the check at it), or why
    the rule cannot be checked."""
    assert ctx.clock is not None
    boundary = int(rule.boundary)

    def create_check(body_of: Callable[[], dict[str, Any] | None], keep: bool) -> Check:
        def check() -> None:
            body = body_of()
            if body is None:
                return
            answer = ctx.t.send("createLipSyncTask", body=body)
            if keep:
                ctx.kept(rule, CREATE, body, answer, _WHERE)
            else:
                ctx.refused(rule, CREATE, body, answer)

        return check

    if rule.id == "session-valid":
        fresh = plain_session(ctx, session.video_url)
        body = None if fresh is None else create_body(ctx, fresh, {"sound_file": ctx.sound_file})
        if body is None:
            return "identify-face or a valid create-task body failed for a fresh session"
        due = ctx.clock.now() + boundary
        return due, create_check(lambda: body, True), create_check(lambda: body, False)
    if rule.id == "audio-id-recent":
        # A drawn voice, with a text long enough for a task's audio window (about 8 s).
        tts = ctx.draw(strategies.tts_requests(ctx.spec), 1)[0]
        tts["text"] = TTS_TEXT
        tts.pop("voice_speed", None)
        answer = ctx.t.send("createTts", body=tts)
        if not ctx.accepted("createTts", TTS, tts, answer):
            return "the TTS request was refused"
        due = ctx.clock.now() + boundary
        audios = ((answer.data or {}).get("task_result") or {}).get("audios") or [{}]
        audio_id, audio_ms = str(audios[0].get("id", "")), ms(audios[0].get("duration"))

        def body_of() -> dict[str, Any] | None:
            fresh = plain_session(ctx, session.video_url)
            if fresh is None:
                return None
            return create_body(ctx, fresh, {"audio_id": audio_id}, audio_ms)

        if not audio_id or audio_ms is None or audio_ms < window_ms(ctx):
            return "the TTS audio has no id or is too short for a task"
        return due, create_check(body_of, True), create_check(body_of, False)
    # video-id-recent: a result video of a task that succeeded
    found = _result_video(ctx, session)
    if found is None:
        return "no task succeeded, so there is no generated video_id"
    video_id, finished = found
    body = {"video_id": video_id}

    def keep() -> None:
        ctx.kept(rule, IDENTIFY, body, ctx.t.send("identifyFace", body=body), _WHERE)

    def refuse() -> None:
        ctx.refused(rule, IDENTIFY, body, ctx.t.send("identifyFace", body=body))

    return finished + boundary, keep, refuse


def _result_video(ctx: Context, session: Session) -> tuple[str, int] | None:
    """(video id, when its task ended) of a succeeded task: the first task, else the list's."""
    tasks: list[Any] = []
    if session.task_id:
        tasks.append(ctx.t.send("getLipSyncTask", path_parameters={"id": session.task_id}).data)
    answer = ctx.t.send("listLipSyncTasks", query={"pageNum": 1})
    tasks += answer.data if isinstance(answer.data, list) else []
    for task in tasks:
        if not isinstance(task, dict) or task.get("task_status") != "succeed":
            continue
        videos = (task.get("task_result") or {}).get("videos") or []
        ended = task.get("updated_at")
        if videos and isinstance(videos[0], dict) and isinstance(ended, int):
            return str(videos[0].get("id", "")), ended
    return None
