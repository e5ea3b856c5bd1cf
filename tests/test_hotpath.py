"""The per-request shortcuts answer exactly what the general code answers.

The scope-based path/query, the Authorization header scan, the envelope's headers, the cached
task JSON and the faster `codec.to_doc` each replace slower general code; every case here
compares the two on inputs that include the edge cases the shortcut hands back to the general
code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from mock_server.domain import codec
from mock_server.domain.models import (
    AccountId,
    JournalEntry,
    Outcome,
    ParentVideo,
    SessionId,
    SoundChoice,
    Task,
    TaskId,
    TaskStatus,
    VideoId,
)
from mock_server.web import journal, pipeline, responses, serialize


def scope(path: str, query: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path": path,
        "query_string": query,
        "headers": headers or [(b"host", b"127.0.0.1:8000")],
    }


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/videos/advanced-lip-sync/851027346193289226", b""),
        ("/v1/videos/advanced-lip-sync", b"pageNum=1&pageSize=30"),
        ("/a?b#c\\d", b"x=1#frag"),
        ("/tab\there/new\nline\r", b"q=\t1"),
        ("/caf\u00e9/\u0663", "p=\u00e9".encode()),
        ("//double", b"a=%20b&c"),
    ],
)
def test_url_path_and_query_match_starlettes_url(path: str, query: bytes) -> None:
    request = Request(scope(path, query))
    assert journal.url_path(request) == request.url.path
    assert journal.url_query(request) == request.url.query


def test_header_scan_matches_headers_get() -> None:
    headers = [(b"host", b"h"), (b"authorization", b"Bearer \xe9t"), (b"authorization", b"2nd")]
    request = Request(scope("/", b"", headers))
    assert pipeline.header(request, b"authorization") == request.headers.get("authorization")
    assert pipeline.header(request, b"x-missing") is None


@pytest.mark.parametrize(
    "headers",
    [None, {"x-mock-media-source": "synthetic"}, {"Retry-After": "1", "Content-Type": "a/b"}],
)
@pytest.mark.parametrize("status", [200, 400, 429])
def test_envelope_headers_match_starlettes(headers: dict[str, str] | None, status: int) -> None:
    class Plain(Response):
        media_type = "application/json"

    body = b'{"code":0}'
    fast, plain = responses.Envelope(body, status, headers), Plain(body, status, headers)
    assert fast.raw_headers == plain.raw_headers
    assert (fast.body, fast.status_code, fast.background) == (plain.body, status, None)


def make_task(task_id: str, status: TaskStatus) -> Task:
    return Task(
        task_id=TaskId(task_id),
        account=AccountId("acct"),
        external_task_id="ext-\u00e9",
        session_id=SessionId("s1"),
        face_id="0",
        parent=ParentVideo("", "https://example.com/v.mp4", 5000, 1280, 720),
        sound=SoundChoice(None, 3000, 0, 3000, 0, 1.0, 1.0),
        watermark=True,
        callback_url="",
        outcome=Outcome(1000, 3000),
        status=status,
        status_msg="",
        created_at_ms=1_722_769_557_708,
        updated_at_ms=1_722_769_557_708,
        result_video_id=None,
    )


def test_success_envelope_is_the_bytes_json_dumps_gives() -> None:
    task = make_task("900000000000000001", TaskStatus.SUBMITTED)
    for data in (serialize.task(task, "http://h"), [serialize.task(task, "http://h")], [], None):
        got = responses.success("rid-1", data).body
        want = responses.dumps(
            {"code": 0, "message": "SUCCEED", "request_id": "rid-1", "data": data}
        )
        assert got == want


def test_a_changed_task_is_never_answered_from_the_cache() -> None:
    base = "http://127.0.0.1:1"
    submitted = make_task("900000000000000002", TaskStatus.SUBMITTED)
    first = responses.success("r", serialize.task(submitted, base)).body
    assert responses.success("r", serialize.task(submitted, base)).body == first  # a hit
    done = dataclasses.replace(
        submitted,
        status=TaskStatus.SUCCEED,
        result_video_id=VideoId("v1"),
        updated_at_ms=1_722_769_569_708,
    )
    doc = serialize.task(done, base)
    answer = json.loads(bytes(responses.success("r", doc).body))["data"]
    assert answer["task_status"] == "succeed"
    assert answer["task_result"]["videos"][0]["url"] == f"{base}/files/videos/v1.mp4"
    # another base URL (another mock in the same process) is not served this one's document
    other = json.loads(bytes(responses.success("r", serialize.task(done, "http://other")).body))
    other = other["data"]
    assert other["task_result"]["videos"][0]["url"].startswith("http://other/")


def test_callback_payload_leaves_the_cached_document_whole() -> None:
    task = make_task("900000000000000003", TaskStatus.SUBMITTED)
    serialize.task(task, "http://h")
    payload = serialize.callback_payload(task, "http://h")
    assert "watermark_info" not in payload
    assert "watermark_info" in serialize.task(task, "http://h")


def test_the_cache_is_bounded() -> None:
    for i in range(serialize.TASK_DOC_CACHE + 100):
        serialize.task(make_task(f"91{i:016d}", TaskStatus.SUBMITTED), "http://h")
    assert len(serialize._task_docs) <= serialize.TASK_DOC_CACHE


def generic_to_doc(value: object) -> Any:
    """codec.to_doc as it was: reflection on every value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: generic_to_doc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [generic_to_doc(v) for v in value]
    if isinstance(value, dict):
        return {k: generic_to_doc(v) for k, v in value.items()}
    return value


def test_to_doc_matches_the_generic_walk() -> None:
    entry = JournalEntry(
        seq=1, wall_ms=2, clock_ms=3, method="POST", path="/p", query="q", operation="op",
        account="a", auth="jwt", token_lifetime_s=1800,
        body={"face_choose": [{"face_id": "0", "n": 1.5, "t": True}], "none": None},
        http_status=200, code=0, request_id="r", latency_ms=0.25,
    )  # fmt: skip
    task = make_task("900000000000000004", TaskStatus.PROCESSING)
    for value in (entry, task, [task, (1, "x")], {"k": TaskStatus.SUCCEED}, JournalEntry):
        assert codec.to_doc(value) == generic_to_doc(value)
        assert json.dumps(codec.to_doc(value), default=str) == json.dumps(
            generic_to_doc(value), default=str
        )


def test_codec_dumps_is_the_document_to_doc_gives_and_reads_back() -> None:
    """orjson encodes the records itself; the JSON it writes is the same document."""
    task = make_task("900000000000000005", TaskStatus.SUCCEED)
    entry = JournalEntry(
        seq=1, wall_ms=2, clock_ms=3, method="POST", path="/caf\u00e9", query="q=\u0663",
        operation="op", account="a", auth="jwt", token_lifetime_s=1800,
        body={"face_choose": [{"face_id": "0", "n": 1.5e16, "t": True}], "none": None},
        http_status=200, code=0, request_id="r", latency_ms=0.25,
    )  # fmt: skip
    for value in (entry, task, [task, (1, "x")], {"k": TaskStatus.SUCCEED}):
        text = codec.dumps(value)
        assert json.loads(text) == json.loads(json.dumps(codec.to_doc(value)))
    assert codec.loads(JournalEntry, codec.dumps(entry)) == entry
    assert codec.loads(Task, codec.dumps(task)) == task


@pytest.mark.parametrize(
    "body",
    [{"s": "lone \ud800 surrogate"}, {"n": 2**70}, {"n": -(2**64)}],
    ids=["lone-surrogate", "int-past-64-bits", "negative-past-64-bits"],
)
def test_codec_dumps_takes_the_old_way_for_what_orjson_refuses(body: dict[str, Any]) -> None:
    entry = JournalEntry(
        seq=1, wall_ms=2, clock_ms=3, method="GET", path="/p", query="", operation=None,
        account=None, auth=None, token_lifetime_s=None, body=body, http_status=200, code=0,
        request_id="r", latency_ms=0.0,
    )  # fmt: skip
    text = codec.dumps(entry)
    assert text.isascii()  # json.dumps' escapes
    assert codec.loads(JournalEntry, text) == entry


@pytest.mark.parametrize("seed", [0, 1, 2**63])
def test_request_ids_are_the_uuid4_strings_of_the_seeded_bits(seed: int) -> None:
    import random
    import uuid

    from mock_server.domain.ids import IdSource

    ids, bits = IdSource(seed), random.Random(seed)
    for _ in range(5000):
        want = str(uuid.UUID(int=bits.getrandbits(128), version=4))
        assert ids.request_id() == want


def reference_summary(value: Any) -> Any:
    """journal.summarise as it was: one recursive call per value."""
    j = journal
    budget = [j.MAX_NODES]

    def walk(item: Any, depth: int) -> Any:
        budget[0] -= 1
        if not isinstance(item, dict | list):
            return j._scalar(item)
        if depth >= j.MAX_DEPTH:
            return f"<{type(item).__name__} nested deeper than {j.MAX_DEPTH} levels>"
        if budget[0] <= 0:
            return f"<{type(item).__name__} of {len(item)} items, not summarised>"
        if isinstance(item, dict):
            out: dict[str, Any] = {}
            for k, v in list(item.items())[: j.MAX_ITEMS]:
                if budget[0] <= 0:
                    break
                key = k if len(k) <= j.LONG_KEY else j.clip(k, j.LONG_KEY)
                out[key] = walk(v, depth + 1)
            if len(out) < len(item):
                out["..."] = f"<{len(item) - len(out)} more keys>"
            return out
        kept: list[Any] = []
        for v in item[: j.MAX_ITEMS]:
            if budget[0] <= 0:
                break
            kept.append(walk(v, depth + 1))
        if len(kept) < len(item):
            kept.append(f"<{len(item) - len(kept)} more items>")
        return kept

    return None if value is None else walk(value, 0)


def _nested(depth: int) -> Any:
    doc: Any = "leaf"
    for i in range(depth):
        doc = {"k": doc} if i % 2 else [doc]
    return doc


@pytest.mark.parametrize(
    "body",
    [
        None,
        "x" * 300,
        2**70,
        float("inf"),
        {"face_choose": [{"face_id": "0", "sound_file": "A" * 5000, "sound_end_time": 3000}]},
        {"k" * 100: 1, "k" * 101: 2, "url": "https://h/" + "p" * 300},
        list(range(120)),
        {str(i): list(range(60)) for i in range(60)},
        [[list(range(30)) for _ in range(30)] for _ in range(3)],
        _nested(15),
        _nested(16),
        _nested(40),
        {"a": [True, False, None, 1.5, -(2**64)], "b": {}},
    ],
    ids=lambda b: type(b).__name__ + str(len(json.dumps(b, default=str)))[:6],
)
def test_summary_is_the_recursive_one(body: Any) -> None:
    assert journal.summarise(body) == reference_summary(body)


def test_summary_matches_on_random_bodies() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    leaves = (
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
        | st.integers(min_value=2**60, max_value=2**70)
    )  # fmt: skip
    trees = st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=70) | st.dictionaries(st.text(max_size=70), kids),
        max_leaves=500,
    )

    @given(trees)
    def same(body: Any) -> None:
        got, want = journal.summarise(body), reference_summary(body)
        assert json.dumps(got, default=str) == json.dumps(want, default=str)

    same()


def _json_loads(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=pipeline._reject_constant)


def _same_parse(raw: bytes) -> None:
    """pipeline._parse gives what json.loads gives, types included, or raises what it raises."""
    try:
        want: Any = ("value", repr(_json_loads(raw)))
    except (ValueError, RecursionError) as exc:
        want = ("error", type(exc).__name__, str(exc))
    try:
        got: Any = ("value", repr(pipeline._parse(raw)))
    except (ValueError, RecursionError) as exc:
        got = ("error", type(exc).__name__, str(exc))
    assert got == want


PAD = "p" * pipeline.ORJSON_MIN_BYTES  # every case below takes the orjson path first


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "pad": "%s"}',
        '{"big": 123456789012345678901234567890, "pad": "%s"}',
        '{"neg": -9223372036854775809, "pad": "%s"}',
        '{"u64": 18446744073709551615, "f": 1e19, "pad": "%s"}',
        '{"inf": 1e400, "pad": "%s"}',
        '{"nan": NaN, "pad": "%s"}',
        '{"lone": "\\ud800", "pad": "%s"}',
        '{"pair": "\\ud83d\\ude00", "pad": "%s"}',
        '{"ctl": "a\x01b", "pad": "%s"}',
        '{"dup": 1, "dup": 2.5, "pad": "%s"}',
        '{"f": [0.1, -0.0, 1.5e-7, 5e-324], "pad": "%s"}',
        '["%s", ' + "[" * 2000 + "]" * 2000 + "]",
        '{"pad": "%s"} trailing',
        '{"pad": "%s", "many": [' + ",".join(["1"] * 1500) + ", 1e30]}",
    ],
)
def test_the_body_parser_is_json_loads(text: str) -> None:
    raw = (text % PAD).encode() if "%s" in text else text.encode()
    _same_parse(raw)
    _same_parse(b"\xef\xbb\xbf" + raw)  # a UTF-8 BOM
    _same_parse(raw.decode().encode("utf-16"))


def test_the_body_parser_is_json_loads_on_random_documents() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    leaves = (
        st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers() | st.integers(min_value=2**62, max_value=2**80).map(lambda n: -n)
        | st.text()
    )  # fmt: skip
    docs = st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=8) | st.dictionaries(st.text(max_size=8), kids),
        max_leaves=60,
    )

    @given(docs, st.booleans())
    def same(doc: Any, ascii_only: bool) -> None:
        _same_parse(json.dumps({"pad": PAD, "doc": doc}, ensure_ascii=ascii_only).encode())

    same()


def test_stored_text_is_always_json() -> None:
    """json.dumps wrote Infinity and NaN, which no JSON reader takes; orjson writes null."""
    for value in ({"x": float("inf")}, [float("-inf"), float("nan")]):
        text = codec.dumps(value)
        assert "Infinity" not in text and "NaN" not in text
        assert None in (json.loads(text).values() if isinstance(value, dict) else json.loads(text))


def test_a_body_of_many_values_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXACT_CHECK_NODES commas the check would give up and json parse again: such a body
    goes to json alone (a 10 MB body of small values took 1.54x json's time parsed twice)."""
    raw = b"[" + b"1," * pipeline.EXACT_CHECK_NODES + b"1]"

    def refuse(data: bytes) -> Any:
        raise AssertionError("orjson was asked to parse a body json parses anyway")

    import orjson

    monkeypatch.setattr(orjson, "loads", refuse)
    assert pipeline._parse(raw) == [1] * (pipeline.EXACT_CHECK_NODES + 1)
