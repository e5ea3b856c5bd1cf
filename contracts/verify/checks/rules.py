"""``rule:<id>``: a request breaking only that rule is refused with the rule's code and status.

The rules broken by time passing are left to :mod:`.time_rules`; those broken by real media are
checked with files verify serves itself on 127.0.0.1 when the target is on loopback.
"""

from __future__ import annotations

import json
from typing import Final

from mock_server.spec import Rule
from mock_server.urls import is_loopback

from ... import strategies
from ...report import CheckKind
from .base import CREATE, IDENTIFY, LIST, QUERY, TTS, Context, Session
from .session import create_body, missing_rules

TIME_RULES: Final = ("session-valid", "audio-id-recent", "video-id-recent")
"""Rules broken only by time passing: checked through the mock's control API, after the rest."""
MEDIA_RULES: Final = ("video-size", "video-duration", "video-resolution")
"""Rules broken only by real media: checked with files verify serves on 127.0.0.1."""


def rules(ctx: Context, session: Session | None) -> None:
    """Every rule of the rule table, in its order."""
    n = max(ctx.options.rule_examples, 1)
    for rule in ctx.spec.rules.values():
        name = f"rule:{rule.id}"
        if rule.id in TIME_RULES:
            if ctx.clock is None:
                ctx.skip_rule(rule.id, ctx.no_clock)
            else:
                ctx.report.check(name, CheckKind.RULE)  # checked last: see time_rules
            continue
        if rule.id in MEDIA_RULES:
            _media_rule(ctx, rule)
        elif rule.id == "callback-url-not-self":
            _self_callback_rule(ctx, rule, session)
        elif rule.operation == "createLipSyncTask":
            _create_rule(ctx, rule, session, n)
        elif rule.operation == "identifyFace":
            if rule.id in strategies.UNEXPRESSIBLE_RULES:
                ctx.skip_rule(rule.id, strategies.UNEXPRESSIBLE_RULES[rule.id])
                continue
            invalid = strategies.invalid_identify_face_requests([rule.id], ctx.spec)
            for _, body in ctx.draw(invalid, n):
                ctx.refused(rule, IDENTIFY, body, ctx.t.send("identifyFace", body=body))
        elif rule.operation == "listLipSyncTasks":
            for _, query in ctx.draw(strategies.invalid_list_queries([rule.id], ctx.spec), n):
                ctx.refused(rule, LIST, query, ctx.t.send("listLipSyncTasks", query=query))
        elif rule.operation == "getLipSyncTask" and rule.id == "task-exists":
            for _, task_id in ctx.draw(strategies.invalid_task_ids(ctx.spec), n):
                answer = ctx.t.send("getLipSyncTask", path_parameters={"id": task_id})
                ctx.refused(rule, QUERY, task_id, answer)
        elif rule.operation == "createTts":
            for _, body in ctx.draw(strategies.invalid_tts_requests([rule.id], ctx.spec), n):
                ctx.refused(rule, TTS, body, ctx.t.send("createTts", body=body))
        elif rule.id == "body-json":
            _body_json(ctx, rule)
        elif rule.id == "body-size":
            _body_size(ctx, rule)
        else:
            ctx.skip_rule(rule.id, "no request breaks it")
        ctx.progress(f"{name}: {ctx.report.check(name, CheckKind.RULE).cases} cases")


def _create_rule(ctx: Context, rule: Rule, session: Session | None, n: int) -> None:
    if rule.id in strategies.UNEXPRESSIBLE_RULES:
        ctx.skip_rule(rule.id, strategies.UNEXPRESSIBLE_RULES[rule.id])
        return
    if session is None or session.video_ms is None:
        ctx.skip_rule(rule.id, "no session: identify-face or the first task failed")
        return
    missing = missing_rules(ctx, session)
    if missing is None:
        ctx.skip_rule(rule.id, "the session's faces leave no room for a valid create-task body")
        return
    if rule.id in missing:
        ctx.skip_rule(rule.id, missing[rule.id])
        return
    strategy = strategies.invalid_create_requests(
        session.session_id,
        session.faces,
        ctx.audio_ms,
        session.video_ms,
        sound_file=ctx.sound_file,
        taken_external_task_id=session.external_task_id,
        rules=[rule.id],
        spec=ctx.spec,
    )
    for _, body in ctx.draw(strategy, n):
        ctx.refused(rule, CREATE, body, ctx.t.send("createLipSyncTask", body=body))


def _self_callback_rule(ctx: Context, rule: Rule, session: Session | None) -> None:
    """A callback_url at the target's own address (a path that does nothing, should a broken
    target accept it and call itself)."""
    if ctx.clock is None:
        ctx.skip_rule(rule.id, "a rule of the mock: the target has no control API")
        return
    own = ctx.options.base_url.rstrip("/") + "/v1/no-such-route"
    sound = {"sound_file": ctx.sound_file}
    body = None if session is None else create_body(ctx, session, sound, callback_url=own)
    if body is None:
        ctx.skip_rule(rule.id, "no session with room for a valid create-task body")
        return
    ctx.refused(rule, CREATE, body, ctx.t.send("createLipSyncTask", body=body))


def _media_rule(ctx: Context, rule: Rule) -> None:
    """identify-face on real files verify serves itself (the target must reach 127.0.0.1)."""
    if not is_loopback(ctx.options.base_url):
        ctx.skip_rule(
            rule.id,
            "needs a real media file behind a URL: the target is not on loopback, so it "
            "cannot fetch the files verify would serve on 127.0.0.1",
        )
        return
    media = ctx.media_server()
    broken: list[str] = []
    allowed: list[tuple[str, str]] = []
    if rule.id == "video-size":
        broken.append(media.oversize(int(rule.boundary) + 1))
    elif rule.id == "video-duration":
        low, high = (int(b) for b in rule.boundary)
        broken += [media.video(high + 1000, 1280, 720), media.video(low - 500, 1280, 720)]
        allowed.append((media.video(low, 1280, 720), f"for a video of exactly {low} ms"))
    else:
        broken.append(media.video(3000, 640, 360))
    for url, where in allowed:
        body = {"video_url": url}
        ctx.kept(rule, IDENTIFY, body, ctx.t.send("identifyFace", body=body), where)
    for url in broken:
        body = {"video_url": url}
        ctx.refused(rule, IDENTIFY, body, ctx.t.send("identifyFace", body=body))


def _body_json(ctx: Context, rule: Rule) -> None:
    samples = [
        (b'{"video_url": "https://example.com/a.mp4"}', "text/plain"),
        (b'{"video_url": ', "application/json"),
        (b"[]", "application/json"),
    ]
    for content, content_type in samples:
        for path in ("/v1/videos/identify-face", "/v1/videos/advanced-lip-sync"):
            answer = ctx.t.send_raw(path, content, content_type)
            ctx.refused(rule, f"POST {path}", f"{content!r} as {content_type}", answer)


def _body_size(ctx: Context, rule: Rule) -> None:
    limit = int(rule.boundary)
    padding = "x" * (limit + 1 - len('{"video_url": ""}'))
    content = json.dumps({"video_url": padding}).encode()
    answer = ctx.t.send_raw("/v1/videos/identify-face", content, "application/json")
    ctx.refused(rule, IDENTIFY, f"{len(content)} bytes", answer)
