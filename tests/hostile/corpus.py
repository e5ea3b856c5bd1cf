"""The corpus of bad requests: each case is one request and the Kling code it must get."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mock_server import media
from mock_server.config import DEFAULT_SECRET_KEY
from mock_server.spec import load_spec

from .harness import API_KEY, empty_wav

SESSION = "@SESSION@"  # replaced by a session identified on the server under test


@dataclass(frozen=True, slots=True)
class Env:
    """What a case may need from the running test: a real session and the media server."""

    session_id: str
    media_url: Callable[[str], str]


Body = bytes | Callable[[Env], bytes] | None


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    method: str
    path: str
    code: int
    body: Body = None
    content_type: str | None = "application/json"
    authorization: str | None = f"Bearer {API_KEY}"  # None: no Authorization header at all
    rule: str | None = None  # the x-kling-rules id the message must name

    def render_body(self, env: Env) -> bytes | None:
        raw = self.body(env) if callable(self.body) else self.body
        return None if raw is None else raw.replace(SESSION.encode(), env.session_id.encode())

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.content_type is not None:
            out["Content-Type"] = self.content_type
        if self.authorization is not None:
            out["Authorization"] = self.authorization
        return out


IDENTIFY = "/v1/videos/identify-face"
CREATE = "/v1/videos/advanced-lip-sync"
LIST = "/v1/videos/advanced-lip-sync"
TTS = "/v1/audio/tts"

BAD_REQUEST = 1200
BAD_PARAMETER = 1201
BAD_ROUTE = 1202
NO_TASK = 1203

# A valid body per operation, every optional field present, as the wrong-type cases' base.
VALID: dict[str, tuple[str, str, dict[str, Any]]] = {
    "identifyFace": (
        IDENTIFY,
        "IdentifyFaceRequest",
        {"video_id": "", "video_url": "https://example.com/hostile.mp4"},
    ),
    "createLipSyncTask": (
        CREATE,
        "CreateTaskRequest",
        {
            "session_id": SESSION,
            "face_choose": [
                {
                    "face_id": "0",
                    "audio_id": "",
                    "sound_file": "https://example.com/hostile.mp3",
                    "sound_start_time": 0,
                    "sound_end_time": 3000,
                    "sound_insert_time": 0,
                    "sound_volume": 1,
                    "original_audio_volume": 1,
                }
            ],
            "watermark_info": {"enabled": False},
            "external_task_id": "",
            "callback_url": "",
        },
    ),
    "createTts": (
        TTS,
        "TtsRequest",
        {"text": "hello", "voice_id": "oversea_male1", "voice_language": "en", "voice_speed": 1},
    ),
}

SAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "integer": 7,
    "number": 1.5,
    "string": "x",
    "array": [],
    "object": {},
}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def create_with(**fields: Any) -> bytes:
    body = copy.deepcopy(VALID["createLipSyncTask"][2])
    body["face_choose"][0].update(fields)
    return dumps(body)


# -- malformed bodies --------------------------------------------------------------------------


def _nested(depth: int, opener: str, closer: str, core: str = "") -> bytes:
    return (opener * depth + core + closer * depth).encode()


def malformed_cases() -> Iterator[Case]:
    valid = {op: dumps(body) for op, (_, _, body) in VALID.items()}
    bodies: dict[str, bytes] = {
        "empty": b"",
        "whitespace": b" \n\t ",
        "open-brace": b"{",
        "close-brace": b"}",
        "single-quotes": b"{'video_url': 'x'}",
        "trailing-comma": b'{"video_url": "x",}',
        "unquoted-key": b"{video_url: 1}",
        "comment": b'// hi\n{"video_url": "x"}',
        "two-documents": b'{"a": 1} {"b": 2}',
        "trailing-garbage": b'{"a": 1}garbage',
        "null": b"null",
        "array": b"[]",
        "string": b'"{}"',
        "number": b"42",
        "true": b"true",
        "nan-literal": b"NaN",
        "nan-value": b'{"sound_volume": NaN}',
        "infinity-value": b'{"sound_volume": Infinity}',
        "minus-infinity-value": b'{"sound_volume": -Infinity}',
        "invalid-utf8": b'{"video_url": "\xff\xfe"}',
        "utf16-bom-garbage": b"\xff\xfe\x00",
        "nul-bytes": b"\x00\x00\x00\x00",
        "lone-surrogate-escape": b'{"video_url": "\\ud800"}',
        "lone-low-surrogate": b'{"external_task_id": "x\\udc00y"}',
        "half-a-pair": b'{"text": "\\ud83d"}',
        "surrogate-in-key": b'{"\\udfff": 1}',
        "utf8-encoded-surrogate": b'{"video_url": "\xed\xa0\x80"}',
        "nested-arrays-100k": _nested(100_000, "[", "]"),
        "nested-objects-100k": _nested(100_000, '{"a":', "}", "1"),
        "nested-mixed-100k": _nested(50_000, '[{"a":', "}]", "1"),
        "big-int-5000-digits": b'{"video_url": ' + b"9" * 5000 + b"}",
    }
    for op, (path, _, _) in VALID.items():
        text = valid[op]
        cuts = {"truncated-half": text[: len(text) // 2], "truncated-last": text[:-1]}
        for name, body in {**cuts, **bodies}.items():
            yield Case(f"{op}:{name}", "POST", path, BAD_REQUEST, body, rule="body-json")
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            yield Case(f"{op}:content-type={ctype}", "POST", path, BAD_REQUEST, text, ctype)


# -- wrong JSON types, field by field ----------------------------------------------------------


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    doc = load_spec().document
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _types(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The JSON types a schema declares: `type: [string, "null"]` is two (optional fields)."""
    declared = schema["type"]
    return tuple(declared) if isinstance(declared, list) else (declared,)


def _fields(
    schema: Mapping[str, Any], prefix: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], tuple[str, ...]]]:
    """(path, declared JSON types) of every property, descending into objects and arrays."""
    schema = _resolve(schema)
    for name, prop in schema.get("properties", {}).items():
        prop = _resolve(prop)
        path = (*prefix, name)
        yield path, _types(prop)
        if "object" in _types(prop):
            yield from _fields(prop, path)
        elif "array" in _types(prop):
            item = _resolve(prop["items"])
            yield (*path, 0), _types(item)
            yield from _fields(item, (*path, 0))


def _wrong_samples(declared: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    for name, value in SAMPLES.items():
        if name in declared or ("number" in declared and name == "integer"):
            continue
        yield name, value


def _set(body: Any, path: tuple[str | int, ...], value: Any) -> None:
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] = value


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def wrong_type_cases() -> Iterator[Case]:
    """Every field of every operation's body, set to each JSON type it does not declare."""
    for op, (path, schema_name, base) in VALID.items():
        schema = load_spec().document["components"]["schemas"][schema_name]
        for field, declared in _fields(schema):
            for type_name, value in _wrong_samples(declared):
                body = copy.deepcopy(base)
                _set(body, field, value)
                yield Case(
                    f"{op}:{_dotted(field)}={type_name}", "POST", path, BAD_PARAMETER, dumps(body)
                )


def bad_value_cases() -> Iterator[Case]:
    """Times and volumes outside their ranges, non-finite or fractional."""
    times = ("sound_start_time", "sound_end_time", "sound_insert_time")
    for name in times:
        for label, raw in (
            ("negative", b"-1"),
            ("very-negative", b"-9007199254740993"),
            ("fraction", b"1000.5"),
            ("over-2^53", b"9007199254740993"),
            ("1e400", b"1e400"),
            ("-1e400", b"-1e400"),
        ):
            body = create_with(**{name: 0}).replace(
                f'"{name}":0'.encode(), f'"{name}":'.encode() + raw
            )
            rule = "times-non-negative" if label in ("negative", "very-negative") else None
            yield Case(
                f"createLipSyncTask:{name}={label}", "POST", CREATE, BAD_PARAMETER, body, rule=rule
            )
        body = create_with(**{name: 0}).replace(f'"{name}":0'.encode(), f'"{name}":NaN'.encode())
        yield Case(
            f"createLipSyncTask:{name}=NaN", "POST", CREATE, BAD_REQUEST, body, rule="body-json"
        )
    for name in ("sound_volume", "original_audio_volume"):
        for label, value in (("negative", -0.001), ("over-2", 2.001), ("huge", 1e308)):
            body = create_with(**{name: value})
            yield Case(
                f"createLipSyncTask:{name}={label}",
                "POST",
                CREATE,
                BAD_PARAMETER,
                body,
                rule="volume-range",
            )
    yield Case(
        "createLipSyncTask:face_choose=two-faces",
        "POST",
        CREATE,
        BAD_PARAMETER,
        dumps({**VALID["createLipSyncTask"][2], "face_choose": [{}, {}]}),
    )
    yield Case(
        "createLipSyncTask:face_choose=empty",
        "POST",
        CREATE,
        BAD_PARAMETER,
        dumps({**VALID["createLipSyncTask"][2], "face_choose": []}),
        rule="face-choose-single",
    )
    yield Case(
        "createTts:text=1001-chars",
        "POST",
        TTS,
        BAD_PARAMETER,
        dumps({**VALID["createTts"][2], "text": "a" * 1001}),
        rule="tts-text-length",
    )


# -- ids with unicode and control characters ---------------------------------------------------

ODD_IDS: dict[str, str] = {
    "nul": "\x00",
    "crlf-header-injection": "\r\nX-Injected: 1",
    "tab": "\t",
    "del": "\x7f",
    "bidi-override": "\u202e851027346193289226",
    "zero-width-space": "851027346193289226\u200b",
    "emoji": "\U0001f600",
    "combining": "e\u0301",
    "fullwidth-digits": "\uff18\uff15\uff11",
    "arabic-digits": "\u0663\u0664",
    "percent": "%",
    "braces": "{}",
    "quote": '"',
    "backslash": "\\",
    "sql": "1' OR '1'='1",
    "long-129": "9" * 129,
    "long-5000": "x" * 5000,
}


def _quote_path(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def id_cases() -> Iterator[Case]:
    for label, odd in ODD_IDS.items():
        yield Case(
            f"getLipSyncTask:path-id={label}", "GET", f"{CREATE}/{_quote_path(odd)}", NO_TASK
        )
        yield Case(
            f"createLipSyncTask:session_id={label}",
            "POST",
            CREATE,
            BAD_PARAMETER,
            dumps({**VALID["createLipSyncTask"][2], "session_id": odd[:128]}),
            rule="session-known",
        )
        yield Case(
            f"createLipSyncTask:face_id={label}",
            "POST",
            CREATE,
            BAD_PARAMETER,
            create_with(face_id=odd[:64]),
            rule="face-known",
        )
        yield Case(
            f"createLipSyncTask:audio_id={label}",
            "POST",
            CREATE,
            BAD_PARAMETER,
            create_with(audio_id=odd[:128], sound_file=""),
            rule="audio-id-known",
        )
        yield Case(
            f"createTts:voice_id={label}",
            "POST",
            TTS,
            BAD_PARAMETER,
            dumps({**VALID["createTts"][2], "voice_id": odd[:128]}),
            rule="tts-voice-known",
        )
    yield Case("getLipSyncTask:path-id=invalid-utf8", "GET", f"{CREATE}/%ff%fe", NO_TASK)
    yield Case("getLipSyncTask:path-id=encoded-surrogate", "GET", f"{CREATE}/%ED%A0%80", NO_TASK)


# -- query strings -----------------------------------------------------------------------------

BAD_PAGE_VALUES: dict[str, str] = {
    "0": "0",
    "-1": "-1",
    "-0": "-0",
    "1e3": "1e3",
    "1.0": "1.0",
    "0x10": "0x10",
    "abc": "abc",
    "underscore": "1_0",
    "leading-space": "%201",
    "plus": "%2B1",
    "arabic-digit": "%D9%A3",
    "nul": "%00",
    "huge": "99999999999999999999999999999",
    "5000-digits": "9" * 5000,
    "nan": "NaN",
}


def query_cases() -> Iterator[Case]:
    for name, too_big in (("pageNum", "1001"), ("pageSize", "501")):
        rule = "page-num-range" if name == "pageNum" else "page-size-range"
        for label, value in {**BAD_PAGE_VALUES, "above-max": too_big}.items():
            yield Case(
                f"listLipSyncTasks:{name}={label}",
                "GET",
                f"{LIST}?{name}={value}",
                BAD_PARAMETER,
                content_type=None,
                rule=rule,
            )


# -- routes and methods ------------------------------------------------------------------------

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNKNOWN_ROUTES = (
    "/",
    "/v1",
    "/v1/videos",
    "/v1/videos/Identify-face",
    "/v1/videos/identify-face/",
    "/v1/videos/advanced-lip-sync/",
    "/v1/videos/advanced-lip-sync/1/2",
    "/v1/videos/advanced-lip-sync/%2F",
    "/v2/videos/advanced-lip-sync",
    "/v1/videos/lip-sync",
    "/v1/audio/tts/x",
    "/%00",
    "/" + "a" * 4000,
)

PAGES = {("GET", "/")}  # the landing page for people (web/ui.py); POST / is still unknown


def route_cases() -> Iterator[Case]:
    for path, item in load_spec().document["paths"].items():
        allowed = {m.upper() for m in item if m.upper() in METHODS}
        concrete = path.replace("{id}", "851027346193289226")
        for method in METHODS:
            if method not in allowed:
                yield Case(f"{method} {path}", method, concrete, BAD_ROUTE, content_type=None)
    for path in UNKNOWN_ROUTES:
        for method in ("GET", "POST"):
            if (method, path) in PAGES:
                continue
            yield Case(f"{method} {path[:40]}", method, path, BAD_ROUTE, b"{}")


# -- authentication ----------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(
    header: Any, claims: Any, key: bytes = DEFAULT_SECRET_KEY.encode(), alg: str = "sha256"
) -> str:
    return _jwt_raw(header, dumps(claims), key, alg)


def _jwt_raw(
    header: Any, payload: bytes, key: bytes = DEFAULT_SECRET_KEY.encode(), alg: str = "sha256"
) -> str:
    """A JWT over any payload bytes, signed like the real thing (HMAC with the SecretKey)."""
    signing_input = f"{_b64url(dumps(header))}.{_b64url(payload)}"
    mac = hmac.new(key, signing_input.encode(), getattr(hashlib, alg)).digest()
    return f"{signing_input}.{_b64url(mac)}"


def auth_headers() -> dict[str, tuple[str | None, int]]:
    """Authorization header (None: absent) -> the code it must get."""
    now = int(time.time())
    good = {"iss": "mock-access-key", "exp": now + 1800, "nbf": now - 5}
    hs256 = {"alg": "HS256", "typ": "JWT"}
    unsigned = f"{_b64url(dumps({'alg': 'none', 'typ': 'JWT'}))}.{_b64url(dumps(good))}."
    huge_exp = dumps(good).replace(b'"exp":', b'"exp":1e400,"was":')  # parses as infinity
    return {
        "missing": (None, 1001),
        "empty": ("", 1001),
        "scheme-only": ("Bearer", 1002),
        "basic": ("Basic bW9jazptb2Nr", 1002),
        "token-scheme": ("Token mock-api-key", 1002),
        "unknown-api-key": ("Bearer sk-not-a-key", 1000),
        "key-with-suffix": (f"Bearer {API_KEY} extra", 1000),
        "garbage-jwt": ("Bearer !!!.@@@.###", 1002),
        "jwt-header-not-json": (f"Bearer {_b64url(b'[1]')}.{_b64url(dumps(good))}.x", 1002),
        "jwt-payload-not-object": (f"Bearer {_b64url(dumps(hs256))}.{_b64url(b'42')}.x", 1002),
        "alg-none": (f"Bearer {unsigned}", 1002),
        "alg-none-signed": (f"Bearer {_jwt({'alg': 'none'}, good)}", 1002),
        "hs512": (f"Bearer {_jwt({'alg': 'HS512', 'typ': 'JWT'}, good, alg='sha512')}", 1002),
        "hs384": (f"Bearer {_jwt({'alg': 'HS384', 'typ': 'JWT'}, good, alg='sha384')}", 1002),
        "rs256-header": (f"Bearer {_jwt({'alg': 'RS256', 'typ': 'JWT'}, good)}", 1002),
        "expired": (f"Bearer {_jwt(hs256, {**good, 'exp': now - 60, 'nbf': now - 1900})}", 1004),
        "expired-long-ago": (f"Bearer {_jwt(hs256, {**good, 'exp': 1, 'nbf': 0})}", 1004),
        "not-yet-valid": (f"Bearer {_jwt(hs256, {**good, 'nbf': now + 3600})}", 1003),
        "missing-exp": (f"Bearer {_jwt(hs256, {'iss': 'mock-access-key', 'nbf': now})}", 1002),
        "string-exp": (f"Bearer {_jwt(hs256, {**good, 'exp': 'tomorrow'})}", 1002),
        "exp-1e400": (f"Bearer {_jwt_raw(hs256, huge_exp)}", 1002),
        "wrong-secret": (f"Bearer {_jwt(hs256, good, key=b'not-the-secret')}", 1000),
        "unknown-iss": (f"Bearer {_jwt(hs256, {**good, 'iss': 'someone-else'})}", 1000),
        "iss-not-string": (f"Bearer {_jwt(hs256, {**good, 'iss': ['mock-access-key']})}", 1000),
    }


def auth_cases() -> Iterator[Case]:
    targets = (
        ("identifyFace", "POST", IDENTIFY, dumps(VALID["identifyFace"][2])),
        ("createLipSyncTask", "POST", CREATE, dumps(VALID["createLipSyncTask"][2])),
        ("listLipSyncTasks", "GET", LIST, None),
        ("getLipSyncTask", "GET", f"{CREATE}/851027346193289226", None),
        ("createTts", "POST", TTS, dumps(VALID["createTts"][2])),
    )
    for label, (header, code) in auth_headers().items():
        for op, method, path, body in targets:
            yield Case(f"{op}:auth={label}", method, path, code, body, authorization=header)


# -- audio: base64, lying names, lengths -------------------------------------------------------


@functools.cache
def audio(fmt: media.MediaFormat, ms: int) -> bytes:
    return media.make_audio(fmt, ms)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sound(value: Callable[[Env], str]) -> Callable[[Env], bytes]:
    return lambda env: create_with(sound_file=value(env))


MEDIA_FILES: dict[str, Callable[[], bytes]] = {
    "/wav-named.mp3": lambda: audio(media.MediaFormat.WAV, 4000),
    "/mp3-named.wav": lambda: audio(media.MediaFormat.MP3, 4000),
    "/mp3-named.m4a": lambda: audio(media.MediaFormat.MP3, 4000),
    "/empty.mp3": lambda: b"",
    "/no-samples.wav": empty_wav,
    "/text.mp3": lambda: b"this is not audio at all\n" * 40,
    "/sixty-one-seconds.mp3": lambda: audio(media.MediaFormat.MP3, 61_000),
    "/one-second.wav": lambda: audio(media.MediaFormat.WAV, 1000),
    "/video-no-audio.mp3": lambda: media.make_video(3000, 64, 64, with_audio=False),
}


def padded_mp3() -> bytes:
    """A 4 s MP3 whose length is 1 mod 3, so that its base64 ends in "=="."""
    data = audio(media.MediaFormat.MP3, 4000)
    return data + b"\x00" * ((1 - len(data)) % 3)


def audio_cases() -> Iterator[Case]:

    def mp3() -> bytes:
        return audio(media.MediaFormat.MP3, 4000)

    sound_cases: dict[str, tuple[Callable[[Env], str], str]] = {
        "base64-garbage": (lambda env: "not base64 at all!!", "sound-content"),
        "base64-short-padding": (lambda env: _b64(padded_mp3())[:-1], "sound-content"),
        "base64-no-padding": (lambda env: _b64(padded_mp3()).rstrip("="), "sound-content"),
        "base64-excess-padding": (lambda env: _b64(padded_mp3()) + "==", "sound-content"),
        "base64-padding-then-data": (lambda env: _b64(padded_mp3()) + "QUJD", "sound-content"),
        "base64-inner-padding": (lambda env: "QUJD=REVG" + _b64(mp3()), "sound-content"),
        "base64-urlsafe-alphabet": (
            lambda env: _b64(b"\xfb\xff" * 3000).replace("+", "-").replace("/", "_"),
            "sound-content",
        ),
        "base64-random-bytes": (lambda env: _b64(bytes(range(256)) * 40), "sound-content"),
        "base64-data-uri-garbage": (lambda env: "data:audio/mp3;base64,@@@@", "sound-content"),
        "base64-empty-wav": (lambda env: _b64(empty_wav()), "sound-content"),
        "base64-61s-mp3": (
            lambda env: _b64(audio(media.MediaFormat.MP3, 61_000)),
            "sound-duration",
        ),
        "base64-1s-wav": (lambda env: _b64(audio(media.MediaFormat.WAV, 1000)), "sound-duration"),
        "base64-over-5mb": (lambda env: _b64(b"\x00" * (5 * 1024 * 1024 + 10)), "sound-size"),
        "loopback-wav-named-mp3": (lambda env: env.media_url("/wav-named.mp3"), "sound-format"),
        "loopback-mp3-named-wav": (lambda env: env.media_url("/mp3-named.wav"), "sound-format"),
        "loopback-mp3-named-m4a": (lambda env: env.media_url("/mp3-named.m4a"), "sound-format"),
        "loopback-zero-bytes": (lambda env: env.media_url("/empty.mp3"), "sound-content"),
        "loopback-no-samples": (lambda env: env.media_url("/no-samples.wav"), "sound-content"),
        "loopback-text-named-mp3": (lambda env: env.media_url("/text.mp3"), "sound-content"),
        "loopback-silent-video-named-mp3": (
            lambda env: env.media_url("/video-no-audio.mp3"),
            "sound-content",
        ),
        "loopback-61s": (lambda env: env.media_url("/sixty-one-seconds.mp3"), "sound-duration"),
        "loopback-1s": (lambda env: env.media_url("/one-second.wav"), "sound-duration"),
        "loopback-404": (lambda env: env.media_url("/missing.mp3"), "sound-url-reachable"),
        "loopback-closed-port": (lambda env: "http://127.0.0.1:9/a.mp3", "sound-url-reachable"),
        "ftp-url": (lambda env: "ftp://127.0.0.1/a.mp3", "sound-content"),
        "derived-url-ogg": (lambda env: "https://example.com/a.ogg", "sound-format"),
    }
    for label, (value, rule) in sound_cases.items():
        yield Case(
            f"createLipSyncTask:sound_file={label}",
            "POST",
            CREATE,
            BAD_PARAMETER,
            _sound(value),
            rule=rule,
        )
    yield Case(
        "createLipSyncTask:audio-and-sound",
        "POST",
        CREATE,
        BAD_PARAMETER,
        create_with(audio_id="870000000000000001"),
        rule="audio-source-xor",
    )
    yield Case(
        "createLipSyncTask:neither-audio-nor-sound",
        "POST",
        CREATE,
        BAD_PARAMETER,
        create_with(sound_file=""),
        rule="audio-source-xor",
    )


# -- URLs that do not parse, or that httpx refuses to send -------------------------------------

BAD_URLS: dict[str, str] = {
    "unclosed-ipv6": "http://[::1",
    "bracket-garbage": "https://]x[/a",
    "port-out-of-range": "http://127.0.0.1:99999/a",
    "port-negative": "http://127.0.0.1:-1/a",
    "port-not-a-number": "http://127.0.0.1:abc/a",
    "loopback-crlf": "http://127.0.0.1:9/a?\r\nX-Injected: 1",
    "loopback-nul": "http://127.0.0.1:9/a\x00b",
}


def url_cases() -> Iterator[Case]:
    """Each URL field given a URL that cannot be parsed or sent; none may reach a 5000."""
    for label, url in BAD_URLS.items():
        yield Case(
            f"identifyFace:video_url={label}",
            "POST",
            IDENTIFY,
            BAD_PARAMETER,
            dumps({"video_url": url + ".mp4"}),
            rule="video-url-reachable",
        )
        fetched = url.startswith("http://127.0.0.1:9/")
        yield Case(
            f"createLipSyncTask:sound_file={label}",
            "POST",
            CREATE,
            BAD_PARAMETER,
            create_with(sound_file=url + ".mp3"),
            rule="sound-url-reachable" if fetched else "sound-content",
        )
    for label, url in {
        **{k: v for k, v in BAD_URLS.items() if not k.startswith("loopback")},
        "no-host": "http:///callback",
        "ftp": "ftp://127.0.0.1/callback",
        "javascript": "javascript:alert(1)",
        "relative": "/callback",
    }.items():
        yield Case(
            f"createLipSyncTask:callback_url={label}",
            "POST",
            CREATE,
            BAD_PARAMETER,
            dumps({**VALID["createLipSyncTask"][2], "callback_url": url}),
            rule="callback-url-http",
        )


def all_cases() -> list[Case]:
    cases = [
        *malformed_cases(),
        *wrong_type_cases(),
        *bad_value_cases(),
        *id_cases(),
        *query_cases(),
        *route_cases(),
        *auth_cases(),
        *audio_cases(),
        *url_cases(),
    ]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases
