"""Hostile input against a real server process: every bad request gets its documented envelope."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from mock_server import media

from .hostile.corpus import (
    CREATE,
    IDENTIFY,
    LIST,
    MEDIA_FILES,
    SESSION,
    TTS,
    Case,
    Env,
    all_cases,
    audio_cases,
    auth_cases,
    bad_value_cases,
    create_with,
    id_cases,
    malformed_cases,
    padded_mp3,
    query_cases,
    route_cases,
    url_cases,
    wrong_type_cases,
)
from .hostile.harness import AUTH, MediaServer, ServerProcess, assert_envelope

LIMIT = 10 * 1024 * 1024  # the body-size rule's boundary (x-kling-rules), the mock's default
MB = 1024 * 1024
JSON = {"Content-Type": "application/json", **AUTH}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One mock process for the module; its RSS is reported before and after the corpus."""
    with ServerProcess() as proc:
        before = proc.rss_kb()
        yield proc
        after = proc.rss_kb()
        print(
            f"\n[hostile] server RSS before {before / 1024:.1f} MB, after {after / 1024:.1f} MB "
            f"({(after - before) / 1024:+.1f} MB)"
        )
        assert proc.running, "the mock died"
        assert (after - before) / 1024 < 64, "the corpus left the server much bigger"
        assert "Traceback" not in proc.log_text(), proc.log_text()[-4000:]


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def media_server() -> Iterator[MediaServer]:
    files = {path: build() for path, build in MEDIA_FILES.items()}
    files["/honest.wav"] = media.make_audio(media.MediaFormat.WAV, 4000)
    with MediaServer(files) as served:
        yield served


@pytest.fixture(scope="module")
def env(http: httpx.Client, media_server: MediaServer) -> Env:
    r = http.post(IDENTIFY, json={"video_url": "https://example.com/hostile.mp4"}, headers=AUTH)
    assert r.status_code == 200, r.text
    return Env(session_id=r.json()["data"]["session_id"], media_url=media_server.url)


def assert_alive(server: ServerProcess, http: httpx.Client) -> None:
    assert server.running, "the mock process exited"
    r = http.get(LIST, params={"pageSize": 1}, headers=AUTH)
    assert r.status_code == 200 and r.json()["code"] == 0, r.text[:500]


def run_case(case: Case, server: ServerProcess, http: httpx.Client, env: Env) -> None:
    r = http.request(case.method, case.path, content=case.render_body(env), headers=case.headers())
    body = assert_envelope(r, case.code)
    if case.rule is not None:
        assert f"rule {case.rule}" in body["message"], body["message"]
    assert_alive(server, http)


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


MALFORMED = list(malformed_cases())
WRONG_TYPES = list(wrong_type_cases())
BAD_VALUES = list(bad_value_cases())
ODD_IDS = list(id_cases())
QUERIES = list(query_cases())
ROUTES = list(route_cases())
AUTHS = list(auth_cases())
AUDIO = list(audio_cases())
URLS = list(url_cases())


class TestCorpus:
    def test_sections_make_the_whole_corpus(self) -> None:
        """The sections below together are the whole corpus, each case once."""
        sections = [
            *(MALFORMED + WRONG_TYPES + BAD_VALUES + ODD_IDS),
            *(QUERIES + ROUTES + AUTHS + AUDIO + URLS),
        ]
        assert ids(sections) == ids(all_cases())
        print(f"\n[hostile] corpus: {len(sections)} cases")


class TestMalformedBodies:
    @pytest.mark.parametrize("case", MALFORMED, ids=ids(MALFORMED))
    def test_refused_with_1200(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """A body that is not one JSON object of Unicode text, or not labelled JSON, gets 1200."""
        run_case(case, server, http, env)


class TestWrongTypes:
    @pytest.mark.parametrize("case", WRONG_TYPES, ids=ids(WRONG_TYPES))
    def test_refused_with_1201(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """Each field of each operation set to a JSON type it does not declare gets 1201."""
        run_case(case, server, http, env)


class TestBadValues:
    @pytest.mark.parametrize("case", BAD_VALUES, ids=ids(BAD_VALUES))
    def test_refused(self, case: Case, server: ServerProcess, http: httpx.Client, env: Env) -> None:
        """Negative, fractional, non-finite and out-of-range times and volumes are refused."""
        run_case(case, server, http, env)


class TestOddIds:
    @pytest.mark.parametrize("case", ODD_IDS, ids=ids(ODD_IDS))
    def test_refused(self, case: Case, server: ServerProcess, http: httpx.Client, env: Env) -> None:
        """Ids with control, bidi, non-ASCII or oversized text are unknown, never a crash."""
        run_case(case, server, http, env)


class TestQueryStrings:
    @pytest.mark.parametrize("case", QUERIES, ids=ids(QUERIES))
    def test_refused_with_1201(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """pageNum and pageSize that are not plain in-range integers get 1201."""
        run_case(case, server, http, env)

    def test_empty_values_mean_the_defaults(self, http: httpx.Client) -> None:
        """`pageNum=&pageSize=` counts as not set, like empty strings in bodies."""
        r = http.get(LIST + "?pageNum=&pageSize=", headers=AUTH)
        assert r.status_code == 200 and r.json()["code"] == 0


class TestRoutes:
    @pytest.mark.parametrize("case", ROUTES, ids=ids(ROUTES))
    def test_refused_with_1202(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """A method a route does not have, or a route that does not exist, gets 1202."""
        run_case(case, server, http, env)


class TestAuth:
    @pytest.mark.parametrize("case", AUTHS, ids=ids(AUTHS))
    def test_refused_with_auth_code(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """Missing, garbage, unsigned, wrongly signed and expired credentials get 1000-1004."""
        run_case(case, server, http, env)


class TestAudio:
    @pytest.mark.parametrize("case", AUDIO, ids=ids(AUDIO))
    def test_refused_with_1201(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """Bad base64, lying file names, empty, silent, too short and too long audio get 1201."""
        run_case(case, server, http, env)

    def test_whitespace_padded_base64_is_accepted(self, http: httpx.Client, env: Env) -> None:
        """Base64 wrapped at 76 columns with surrounding whitespace (MIME style) is accepted."""
        encoded = base64.encodebytes(padded_mp3()).decode()
        body = create_with(sound_file=f"  {encoded}\n").replace(
            SESSION.encode(), env.session_id.encode()
        )
        r = http.post(CREATE, content=body, headers=JSON)
        assert r.status_code == 200 and r.json()["code"] == 0, r.text[:300]

    def test_honest_loopback_audio_is_accepted(
        self, http: httpx.Client, env: Env, media_server: MediaServer
    ) -> None:
        """The control case: the same WAV under its true name creates a task."""
        body = {
            "session_id": env.session_id,
            "face_choose": [
                {
                    "face_id": "0",
                    "sound_file": media_server.url("/honest.wav"),
                    "sound_start_time": 0,
                    "sound_end_time": 3000,
                    "sound_insert_time": 0,
                }
            ],
        }
        r = http.post(CREATE, json=body, headers=AUTH)
        assert r.status_code == 200 and r.json()["code"] == 0, r.text


class TestUrls:
    @pytest.mark.parametrize("case", URLS, ids=ids(URLS))
    def test_refused_with_1201(
        self, case: Case, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """video_url, sound_file and callback_url that cannot be parsed or sent get 1201."""
        run_case(case, server, http, env)


# -- bodies that are too big or lie about their size -------------------------------------------


def chunks(total: int, chunk: int = MB) -> Iterator[bytes]:
    """A JSON body of about `total` bytes, streamed: httpx sends it chunked, no Content-Length."""
    yield b'{"video_url": "https://example.com/a.mp4", "pad": "'
    sent = 0
    while sent < total:
        yield b"a" * chunk
        sent += chunk
    yield b'"}'


def raw_exchange(server: ServerProcess, head: bytes, body: bytes) -> httpx.Response:
    """Send bytes on a raw connection; the first HTTP/1.1 response that comes back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # the server may answer and hang up mid-body
            sock.sendall(body)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
                response = first_response(received)
                if response is not None:
                    return response
    response = first_response(received)
    assert response is not None, received[:500]
    return response


def first_response(raw: bytes) -> httpx.Response | None:
    """The first complete HTTP/1.1 response in `raw` (Content-Length framed), if any."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines[1:])]
    length = int(next(v for k, v in headers if k.lower() == "content-length"))
    if len(rest) < length:
        return None
    return httpx.Response(status, headers=headers, content=rest[:length])


class TestHugeBodies:
    def test_chunked_body_over_limit(self, server: ServerProcess, http: httpx.Client) -> None:
        """An 11 MB body streamed without Content-Length gets 1200 (rule body-size)."""
        r = http.post(IDENTIFY, content=chunks(11 * MB), headers=JSON)
        assert "content-length" not in r.request.headers
        assert "rule body-size" in assert_envelope(r, 1200)["message"]
        assert_alive(server, http)

    def test_declared_length_over_limit(self, server: ServerProcess, http: httpx.Client) -> None:
        """A body whose Content-Length says one byte over 10 MB gets 1200 (rule body-size)."""
        r = http.post(IDENTIFY, content=b" " * (LIMIT + 1), headers=JSON)
        assert "rule body-size" in assert_envelope(r, 1200)["message"]
        assert_alive(server, http)

    def test_body_at_limit_is_read(self, server: ServerProcess, http: httpx.Client) -> None:
        """A JSON body of exactly 10 MB is within the limit and served."""
        head = b'{"video_url": "https://example.com/a.mp4", "pad": "'
        body = head + b"a" * (LIMIT - len(head) - 2) + b'"}'
        assert len(body) == LIMIT
        r = http.post(IDENTIFY, content=body, headers=JSON)
        assert r.status_code == 200 and r.json()["code"] == 0, r.text[:300]
        assert_alive(server, http)

    def test_lying_small_content_length(self, server: ServerProcess, http: httpx.Client) -> None:
        """Content-Length 20 followed by 11 MB: the 20 bytes are a truncated body, 1200."""
        head = (
            b"POST /v1/videos/identify-face HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer mock-api-key\r\nContent-Type: application/json\r\n"
            b"Content-Length: 20\r\n\r\n"
        )
        response = raw_exchange(server, head, b'{"video_url": "' + b"a" * (11 * MB) + b'"}')
        body = assert_envelope(response, 1200)
        assert "rule body-json" in body["message"]
        assert_alive(server, http)

    def test_lying_content_length_over_limit(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """Content-Length of 100 GB with a tiny body is refused from the header alone."""
        head = (
            b"POST /v1/videos/identify-face HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer mock-api-key\r\nContent-Type: application/json\r\n"
            b"Content-Length: 107374182400\r\n\r\n"
        )
        response = raw_exchange(server, head, b"{}")
        assert "rule body-size" in assert_envelope(response, 1200)["message"]
        assert_alive(server, http)

    def test_unauthenticated_huge_body_is_refused_first(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """Without credentials an 11 MB streamed body gets 1001 before anything is read."""
        r = http.post(
            IDENTIFY, content=chunks(11 * MB), headers={"Content-Type": "application/json"}
        )
        assert_envelope(r, 1001)
        assert_alive(server, http)


@pytest.mark.slow
class TestMemory:
    def test_rss_stays_bounded_under_50mb_bodies(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """Six 50 MB streamed bodies (three at once) grow the server's RSS by under 30 MB."""
        warm = http.post(IDENTIFY, content=chunks(11 * MB), headers=JSON)  # one-time buffers
        assert_envelope(warm, 1200)
        before = server.rss_kb()
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.005):
                peak = max(peak, server.rss_kb())

        def send() -> httpx.Response:
            with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as own:
                return own.post(IDENTIFY, content=chunks(50 * MB), headers=JSON)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            for _ in range(3):
                assert_envelope(send(), 1200)
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                for response in pool.map(lambda _: send(), range(3)):
                    assert_envelope(response, 1200)
        finally:
            done.set()
            sampler.join()
        after = server.rss_kb()
        growth_mb = (after - before) / 1024
        print(
            f"\n[hostile] 6 x 50 MB streamed bodies: RSS {before / 1024:.1f} -> "
            f"{after / 1024:.1f} MB (growth {growth_mb:+.1f} MB, peak {peak / 1024:.1f} MB)"
        )
        assert growth_mb < 30
        assert (peak - before) / 1024 < 60  # never near the 300 MB that was sent
        assert_alive(server, http)


# -- regressions -------------------------------------------------------------------------------


class TestRegressions:
    def test_deep_unknown_key_is_ignored_and_journaled(
        self, server: ServerProcess, http: httpx.Client
    ) -> None:
        """A 600-deep array under an unknown key is ignored, and the journal still records it."""
        body = b'{"video_url": "https://example.com/deep.mp4", "x": ' + b"[" * 600 + b"]" * 600
        r = http.post(IDENTIFY, content=body + b"}", headers=JSON)
        assert r.status_code == 200 and r.json()["code"] == 0, r.text[:300]
        journal = http.get("/__admin/journal", params={"operation": "identifyFace"}).json()
        last = journal["data"][-1]
        assert last["request_id"] == r.json()["request_id"]
        assert "nested deeper than" in json.dumps(last["body"])
        assert_alive(server, http)

    def test_lone_surrogate_never_reaches_the_store(
        self, server: ServerProcess, http: httpx.Client, env: Env
    ) -> None:
        """A valid create whose external_task_id holds a lone surrogate gets 1200, no task."""
        count = len(http.get(LIST, params={"pageSize": 500}, headers=AUTH).json()["data"])
        body = (
            b'{"session_id": "' + env.session_id.encode() + b'", "face_choose": [{"face_id": "0",'
            b' "sound_file": "https://example.com/a.mp3", "sound_start_time": 0,'
            b' "sound_end_time": 3000, "sound_insert_time": 0}], "external_task_id": "x\\ud800"}'
        )
        r = http.post(CREATE, content=body, headers=JSON)
        assert "rule body-json" in assert_envelope(r, 1200)["message"]
        after = http.get(LIST, params={"pageSize": 500}, headers=AUTH)
        assert after.status_code == 200 and len(after.json()["data"]) == count
        assert http.get("/__admin/tasks").status_code == 200

    def test_journal_stays_strict_json(self, server: ServerProcess, http: httpx.Client) -> None:
        """A number that overflows to infinity (1e400) is journaled as text, not as Infinity."""
        body = b'{"text": "hi", "voice_id": "oversea_male1", "voice_language": "en", '
        r = http.post(TTS, content=body + b'"voice_speed": 1e400}', headers=JSON)
        assert r.status_code == 200 and r.json()["code"] == 0, r.text[:300]

        def refuse(constant: str) -> None:
            raise ValueError(f"{constant} is not JSON")

        raw = http.get("/__admin/journal", params={"operation": "createTts"}).content
        entries = json.loads(raw, parse_constant=refuse)["data"]
        assert entries[-1]["body"]["voice_speed"] == "<number inf>"
        assert_alive(server, http)

    def test_paired_surrogate_escapes_are_fine(self, http: httpx.Client, env: Env) -> None:
        """An emoji sent as an escaped surrogate pair is ordinary text and round-trips."""
        external = f"emoji-{threading.get_ident()}-{time.monotonic_ns()}-\U0001f600"
        body = {
            "session_id": env.session_id,
            "face_choose": [
                {
                    "face_id": "0",
                    "sound_file": "https://example.com/a.mp3",
                    "sound_start_time": 0,
                    "sound_end_time": 3000,
                    "sound_insert_time": 0,
                }
            ],
            "external_task_id": external,
        }
        r = http.post(CREATE, content=json.dumps(body).encode(), headers=JSON)  # ensure_ascii
        assert r.status_code == 200, r.text
        assert r.json()["data"]["task_info"]["external_task_id"] == external
