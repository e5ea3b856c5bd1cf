"""Certify the example client (examples/kling_client.py) with the four tools of the contract kit.

(a) strategies: it sends only valid requests for generated inputs, and reads every payload a
conforming server may send; (b) scenarios: whatever the server does, it returns the video or
raises a typed error, in bounded time, never resending a non-retryable code; (c) check-client
finds nothing in the journal of a certification run (and does find a sloppy configuration);
(d) the `lipsync_mock` fixtures run all of it against a real mock on a manual clock.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from contracts import strategies
from contracts.check_client import Check, CheckOptions, TimeSource, check_journal, main
from contracts.scenarios import (
    CallbackChaos,
    InjectedError,
    Scenario,
    is_retryable,
    lipsync_scenarios,
)
from examples.kling_client import (
    AccountError,
    AuthError,
    CallbackReceiver,
    InvalidRequest,
    KlingClient,
    KlingError,
    PolicyError,
    RateLimited,
    RetryPolicy,
    ServerError,
    Sound,
    TaskFailed,
    TaskTimeout,
    Video,
    error_for,
)
from mock_server.admin_client import AdminClient
from mock_server.spec import load_spec
from mock_server.testing import MockServer

# The mock's default SecretKey is 15 bytes, under PyJWT's recommended 32: fine for a fake.

VIDEO = "https://example.com/certification/speaker.mp4"  # derived: 6-30 s, face "0" from 0 ms
SOUND = Sound(sound_file=strategies.DERIVED_SOUND_URL, start_ms=0, end_ms=3000, insert_ms=0)
CLOCK = CheckOptions(time_source=TimeSource.CLOCK)
RETRY = RetryPolicy(attempts=4, base_s=1.0, max_s=30.0)
RETRY_BUDGET_S = sum(RETRY.delay_s(n) for n in range(1, RETRY.attempts))
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class VirtualTime:
    """The client's clock and sleep: sleeping moves the mock's manual clock, nobody waits."""

    def __init__(self, admin: AdminClient, wait_callbacks: bool = True) -> None:
        self.admin = admin
        self.wait_callbacks = wait_callbacks
        self.now_s = 0.0

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds
        self.admin.advance(round(seconds * 1000), wait_callbacks=self.wait_callbacks)

    def monotonic(self) -> float:
        return self.now_s


def make_client(mock: MockServer, clock: VirtualTime, **overrides: Any) -> KlingClient:
    """The client as a user would configure it, on AK/SK credentials, with virtual time."""
    options: dict[str, Any] = {
        "poll_interval_s": 5.0,
        "max_poll_interval_s": 30.0,
        "task_timeout_s": 900.0,
        "retry": RETRY,
        "http_timeout_s": 10.0,
    }
    options.update(overrides)
    return KlingClient(
        mock.base_url,
        access_key=mock.account.access_key,
        secret_key=mock.account.secret_key,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        **options,
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    """The client's callback receiver, shared by the module (Hypothesis allows module scope)."""
    with CallbackReceiver() as rx:
        yield rx


# -- (d) the fixture ---------------------------------------------------------------------------


class TestWithTheFixture:
    def test_lip_sync_returns_the_video(self, lipsync_mock: MockServer) -> None:
        """Identify, create and poll give the result video, every request answered 0."""
        clock = VirtualTime(lipsync_mock.admin)
        with make_client(lipsync_mock, clock) as client:
            video = client.lip_sync(VIDEO, SOUND)
        assert video.url.startswith(lipsync_mock.base_url + "/files/videos/")
        journal = lipsync_mock.admin.journal()
        assert [e["operation"] for e in journal][:2] == ["identifyFace", "createLipSyncTask"]
        assert {e["code"] for e in journal} == {0}
        assert {(e["auth"], e["token_lifetime_s"]) for e in journal} == {("jwt", 1805)}

    def test_failed_task_raises_task_failed(self, lipsync_mock: MockServer) -> None:
        """A task the server fails raises TaskFailed with its task_status_msg."""
        lipsync_mock.admin.add_fault("task_failure", message="Failure to pass the risk control")
        with (
            make_client(lipsync_mock, VirtualTime(lipsync_mock.admin)) as client,
            pytest.raises(TaskFailed) as failed,
        ):
            client.lip_sync(VIDEO, SOUND)
        assert failed.value.reason == "Failure to pass the risk control"

    @pytest.mark.lipsync_mock(processing_delay_s=60)
    def test_polls_back_off_from_the_interval(self, lipsync_mock: MockServer) -> None:
        """A one-minute task is polled 5 s, 7.5 s, 11.25 s... apart, never sooner than 5 s."""
        with make_client(lipsync_mock, VirtualTime(lipsync_mock.admin)) as client:
            client.lip_sync(VIDEO, SOUND)
        polls = [e["clock_ms"] for e in lipsync_mock.admin.journal(operation="getLipSyncTask")]
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert gaps[:3] == [5000, 7500, 11250]
        assert min(gaps) >= 5000 and max(gaps) <= 30_000

    def test_callbacks_are_deduplicated(
        self, lipsync_mock: MockServer, receiver: CallbackReceiver
    ) -> None:
        """With every callback sent twice, the receiver sees each status twice, keeps one state."""
        receiver.clear()
        lipsync_mock.admin.set_chaos(duplicate=True)
        with make_client(lipsync_mock, VirtualTime(lipsync_mock.admin)) as client:
            video = client.lip_sync(VIDEO, SOUND, callback=receiver)
        statuses = [p["task_status"] for p in receiver.received if p["task_id"] == video.task_id]
        assert sorted(statuses) == sorted(["submitted", "processing", "succeed"] * 2)
        assert receiver.status(video.task_id) == "succeed" and receiver.rejected == 0

    def test_transient_errors_are_retried(self, lipsync_mock: MockServer) -> None:
        """Two 5001 answers to task queries and a 1302 on create are retried through."""
        lipsync_mock.admin.add_fault("error", code=5001, times=2, operation="getLipSyncTask")
        lipsync_mock.admin.add_fault("error", code=1302, times=1, operation="createLipSyncTask")
        with make_client(lipsync_mock, VirtualTime(lipsync_mock.admin)) as client:
            assert client.lip_sync(VIDEO, SOUND).url
        codes = [e["code"] for e in lipsync_mock.admin.journal()]
        assert codes.count(5001) == 2 and codes.count(1302) == 1 and codes[-1] == 0


# -- (a) strategies ----------------------------------------------------------------------------

RESOLUTIONS = [(1280, 720), (1920, 1080), (720, 1280), (1080, 1920)]


@st.composite
def videos(draw: st.DrawFn) -> dict[str, Any]:
    """A video fixture: 4-60 s, 720p or 1080p, with one or two faces, one on screen >= 2 s."""
    duration = draw(st.integers(4_000, 60_000))
    start = draw(st.integers(0, duration - 2_000))
    end = draw(st.integers(start + 2_000, duration))
    faces = [{"face_id": "0", "start_time": start, "end_time": end}]
    if draw(st.booleans()):
        other_start = draw(st.integers(0, duration - 1))
        other_end = draw(st.integers(other_start + 1, duration))
        faces.append({"face_id": "1", "start_time": other_start, "end_time": other_end})
    width, height = draw(st.sampled_from(RESOLUTIONS))
    return {"duration_ms": duration, "width": width, "height": height, "faces": faces}


def sound_from(choice: dict[str, Any]) -> Sound:
    """The client's Sound for a generated face_choose item."""
    return Sound(
        sound_file=choice.get("sound_file", ""),
        audio_id=choice.get("audio_id", ""),
        start_ms=choice["sound_start_time"],
        end_ms=choice["sound_end_time"],
        insert_ms=choice["sound_insert_time"],
        volume=choice.get("sound_volume", 1.0),
        original_volume=choice.get("original_audio_volume", 1.0),
    )


class TestGeneratedInputs:
    @EXAMPLES
    @given(video=videos(), audio_ms=st.integers(2_000, 60_000), data=st.data())
    def test_client_sends_only_valid_requests(
        self,
        lipsync_mock_session: MockServer,
        video: dict[str, Any],
        audio_ms: int,
        data: st.DataObject,
    ) -> None:
        """For generated videos, audios and windows, every request is valid and accepted."""
        mock = lipsync_mock_session
        mock.admin.reset()
        video_url, audio_url = "https://example.com/gen/video.mp4", "https://example.com/gen/a.mp3"
        mock.admin.add_fixtures(
            {
                "videos": [{"url": video_url, **video}],
                "audios": [{"url": audio_url, "duration_ms": audio_ms}],
            }
        )
        with make_client(mock, VirtualTime(mock.admin)) as client:
            session = client.identify_face(video_url=video_url)
            faces = [strategies.Face(f.face_id, f.start_ms, f.end_ms) for f in session.faces]
            body = data.draw(
                strategies.create_task_requests(
                    session.session_id, faces, audio_ms, video["duration_ms"], sound_file=audio_url
                ),
                label="create body",
            )
            choice = body["face_choose"][0]
            task_id = client.create_task(
                session.session_id,
                choice["face_id"],
                sound_from(choice),
                external_task_id=body.get("external_task_id") or None,
                watermark=bool(body.get("watermark_info", {}).get("enabled", False)),
            )
            client.wait_for_video(task_id)
        journal = mock.admin.journal()
        assert {e["code"] for e in journal} == {0}, journal
        assert check_journal(journal, CLOCK) == []
        sent = next(e["body"] for e in journal if e["operation"] == "createLipSyncTask")
        sent_choice = sent["face_choose"][0]
        for key in ("face_id", "sound_start_time", "sound_end_time", "sound_insert_time"):
            assert sent_choice[key] == choice[key]

    @settings(max_examples=40, database=None)
    @given(task=strategies.tasks())
    def test_client_reads_every_conforming_task(self, task: dict[str, Any]) -> None:
        """Any task object a conforming server sends parses into a TaskState."""

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200, json={"code": 0, "message": "SUCCEED", "request_id": "r", "data": task}
            )

        client = KlingClient(
            "http://kling.test", api_key="k", transport=httpx.MockTransport(answer)
        )
        state = client.get_task(task["task_id"])
        assert (state.task_id, state.status) == (task["task_id"], task["task_status"])
        assert len(state.videos) == len(task["task_result"]["videos"])

    @settings(max_examples=40, database=None)
    @given(envelope=strategies.error_envelopes())
    def test_client_types_every_documented_error(self, envelope: dict[str, Any]) -> None:
        """Every documented error envelope raises its family's error, retried only if retryable."""
        status = load_spec().http_status[envelope["code"]]
        sent: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(status, json=envelope)

        client = KlingClient(
            "http://kling.test",
            api_key="k",
            retry=RETRY,
            sleep=lambda s: None,
            transport=httpx.MockTransport(answer),
        )
        with pytest.raises(KlingError) as raised:
            client.get_task("1")
        assert type(raised.value) is family_of(envelope["code"])
        assert raised.value.code == envelope["code"]
        assert len(sent) == (RETRY.attempts if is_retryable(envelope["code"]) else 1)


FAMILIES: dict[str, type[KlingError]] = {
    "Authentication failed": AuthError,
    "Account exception": AccountError,
    "Invalid request parameters": InvalidRequest,
    "Trigger strategy": PolicyError,
    "Internal error": ServerError,
}


def family_of(code: int) -> type[KlingError]:
    """The expected error class: the spec's `definition` of the code, limits split out."""
    if code in (1302, 1303):
        return RateLimited
    definition = next(
        e["definition"] for e in load_spec().document["x-kling-errors"] if e["code"] == code
    )
    return FAMILIES[definition]


class TestErrorFamilies:
    @pytest.mark.parametrize("code", [1000, 1004, 1101, 1103, 1201, 1203, 1301, 1302, 1303, 5002])
    def test_error_for_picks_the_family(self, code: int) -> None:
        """error_for maps each documented code to its family; retryable iff the spec says so."""
        error = error_for(code, "m", "r", 400)
        assert type(error) is family_of(code)
        assert error.retryable == is_retryable(code)


# -- (b) scenarios -----------------------------------------------------------------------------


def run_scenario(
    mock: MockServer, receiver: CallbackReceiver, scenario: Scenario
) -> tuple[Video | KlingError, VirtualTime, float]:
    """Reset the mock, play the scenario and run the client; the outcome is never raised."""
    mock.admin.reset()
    receiver.clear()
    scenario.play(mock.admin)
    # Reordered statuses are held until the terminal one; waiting for them would stall.
    clock = VirtualTime(mock.admin, wait_callbacks=not scenario.callbacks.reorder)
    started = time.monotonic()
    outcome: Video | KlingError
    with make_client(mock, clock) as client:
        try:
            outcome = client.lip_sync(VIDEO, SOUND, callback=receiver)
        except KlingError as error:
            outcome = error
    return outcome, clock, time.monotonic() - started


SCENARIOS = lipsync_scenarios()


class TestScenarios:
    @EXAMPLES
    @given(scenario=SCENARIOS)
    def test_video_or_typed_error_never_hangs_never_retries_wrongly(
        self, lipsync_mock_session: MockServer, receiver: CallbackReceiver, scenario: Scenario
    ) -> None:
        """Any server behaviour gives the video or a typed error, in bounded time, no bad retry."""
        mock = lipsync_mock_session
        outcome, clock, elapsed_s = run_scenario(mock, receiver, scenario)
        journal = mock.admin.journal()

        assert elapsed_s < 10, f"took {elapsed_s:.1f} s of real time"
        assert clock.now_s <= 900 + 3 * RETRY_BUDGET_S
        bad_retries = [f for f in check_journal(journal) if f.check is Check.RETRIED_NON_RETRYABLE]
        assert bad_retries == []

        if scenario.is_default:
            assert isinstance(outcome, Video)
        if isinstance(outcome, Video):
            assert outcome.url.startswith(mock.base_url)
            chaos = scenario.callbacks
            if not chaos.drop and not chaos.reorder:
                assert receiver.status(outcome.task_id) == "succeed"
        elif isinstance(outcome, TaskFailed):
            assert outcome.reason == scenario.failure
        elif isinstance(outcome, TaskTimeout):
            assert (scenario.submitted_ms or 0) + (scenario.processing_ms or 0) > 800_000
        else:
            # An API error: the answer to the last request, and one the scenario caused.
            assert outcome.code == journal[-1]["code"]
            assert outcome.code in scenario.injected_codes | {1302, 1303}
            if outcome.retryable:  # given up only after every attempt of one request
                tries = journal[-RETRY.attempts :]
                assert all(is_retryable(e["code"]) for e in tries)
                assert len({(e["method"], e["path"]) for e in tries}) == 1
        assert receiver.rejected == 0

    def test_zero_ms_processing_finishes(
        self, lipsync_mock_session: MockServer, receiver: CallbackReceiver
    ) -> None:
        """A task whose processing takes 0 ms still succeeds (found by the scenario search)."""
        outcome, _, _ = run_scenario(lipsync_mock_session, receiver, Scenario(processing_ms=0))
        assert isinstance(outcome, Video), outcome

    def test_reordered_callbacks_never_move_the_state_back(
        self, lipsync_mock_session: MockServer, receiver: CallbackReceiver
    ) -> None:
        """Statuses delivered newest first leave the receiver at the terminal status."""
        scenario = Scenario(callbacks=CallbackChaos(reorder=True))
        outcome, _, _ = run_scenario(lipsync_mock_session, receiver, scenario)
        assert isinstance(outcome, Video)
        deadline = time.monotonic() + 5
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [p["task_status"] for p in receiver.received] == [
            "succeed",
            "processing",
            "submitted",
        ]
        assert receiver.status(outcome.task_id) == "succeed"


class NaiveClient:
    """A client that retries every error: what the scenario property exists to catch."""

    def __init__(self, mock: MockServer) -> None:
        self.http = httpx.Client(base_url=mock.base_url, headers=mock.headers, trust_env=False)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        for _ in range(3):
            answer = self.http.request(method, path, json=body).json()
            if answer["code"] == 0:
                return answer["data"]
        raise RuntimeError(answer["message"])

    def run(self) -> None:
        session = self.call("POST", "/v1/videos/identify-face", {"video_url": VIDEO})
        self.call(
            "POST",
            "/v1/videos/advanced-lip-sync",
            {"session_id": session["session_id"], "face_choose": [SOUND.body("0")]},
        )


class TestShrinking:
    @pytest.mark.slow
    def test_a_retry_bug_shrinks_to_one_non_retryable_error(
        self, lipsync_mock_session: MockServer, request: pytest.FixtureRequest
    ) -> None:
        """The minimal scenario that exposes a retry-everything client is one 1100, once."""
        mock = lipsync_mock_session
        naive = NaiveClient(mock)
        request.addfinalizer(naive.http.close)

        def retries_wrongly(scenario: Scenario) -> bool:
            mock.admin.reset()
            scenario.play(mock.admin)
            with contextlib.suppress(RuntimeError):
                naive.run()
            findings = check_journal(mock.admin.journal())
            return any(f.check is Check.RETRIED_NON_RETRYABLE for f in findings)

        found = find(
            lipsync_scenarios(callbacks=False, timings=False, failures=False),
            retries_wrongly,
            settings=settings(
                database=None, max_examples=200, phases=[Phase.generate, Phase.shrink]
            ),
        )
        assert found == Scenario(errors=(InjectedError(1100),))


# -- (c) check-client ----------------------------------------------------------------------------


CERTIFICATION = [
    Scenario(),
    Scenario(errors=(InjectedError(5001, "getLipSyncTask", times=2), InjectedError(1302))),
    Scenario(processing_ms=120_000, callbacks=CallbackChaos(duplicate=True)),
    Scenario(failure="Failure to pass the risk control system"),
]


class TestCheckClient:
    def certification_journal(
        self,
        mock: MockServer,
        receiver: CallbackReceiver,
        scenarios: list[Scenario] = CERTIFICATION,
        **overrides: Any,
    ) -> list[dict[str, Any]]:
        """One journal of the client through the certification scenarios."""
        mock.admin.reset()
        for scenario in scenarios:
            scenario.play(mock.admin)
            client = make_client(mock, VirtualTime(mock.admin), **overrides)
            with client, contextlib.suppress(TaskFailed):
                client.lip_sync(VIDEO, SOUND, callback=receiver)
        return mock.admin.journal()

    def test_certification_run_is_clean(
        self,
        lipsync_mock_session: MockServer,
        receiver: CallbackReceiver,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """check-client over a saved certification journal exits 0 with no finding."""
        journal = self.certification_journal(lipsync_mock_session, receiver)
        assert check_journal(journal, CLOCK) == []
        saved = tmp_path / "journal.json"
        saved.write_text(json.dumps(journal))
        junit = tmp_path / "check-client.xml"
        argv = ["--journal", str(saved), "--time-source", "clock", "--junit-xml", str(junit)]
        assert main(argv) == 0
        assert capsys.readouterr().out.endswith(" 0 errors, 0 warnings\n")
        assert "<failure" not in junit.read_text()

    def test_a_sloppy_configuration_is_caught(
        self, lipsync_mock_session: MockServer, receiver: CallbackReceiver
    ) -> None:
        """The same run polling every 0.25 s is reported as polling too fast."""
        journal = self.certification_journal(
            lipsync_mock_session,
            receiver,
            CERTIFICATION[:2],
            poll_interval_s=0.25,
            max_poll_interval_s=0.25,
        )
        checks = {f.check for f in check_journal(journal, CLOCK)}
        assert checks == {Check.POLL_TOO_FAST}
