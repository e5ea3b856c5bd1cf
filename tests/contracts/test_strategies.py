"""Tests for contracts.strategies against the in-process mock and the spec's schemas."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import contracts.report
import contracts.strategies
import contracts.verify
from contracts.strategies import (
    UNEXPRESSIBLE_RULES,
    Face,
    audio_base64,
    callback_payloads,
    create_task_requests,
    error_envelopes,
    expressible_create_rules,
    identify_face_requests,
    invalid_create_requests,
    invalid_identify_face_requests,
    invalid_list_queries,
    invalid_task_ids,
    invalid_tts_requests,
    list_queries,
    resolve_spec,
    tasks,
    tts_requests,
)
from mock_server.spec import SPEC_FILE, spec_dir

SPEC = resolve_spec()
AUDIO_MS = 8000
AUDIO = audio_base64(AUDIO_MS)
FEW = settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RULE_NAMED = re.compile(r"\(rule ([a-z0-9-]+)\)")


def rules_of(operation: str) -> list[str]:
    return [r.id for r in SPEC.rules.values() if r.operation == operation]


@dataclass(frozen=True, slots=True)
class Session:
    """A session of the in-process mock, the video's duration and an external id already used."""

    session_id: str
    faces: list[dict[str, Any]]
    video_ms: int
    taken_external_id: str


def open_session(client: TestClient) -> Session:
    """identify-face on derived videos until one lets every expressible rule be broken."""
    for i in range(16):
        r = client.post(
            "/v1/videos/identify-face", json={"video_url": f"https://example.com/s/{i}.mp4"}
        )
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        face = data["face_data"][0]
        external = f"taken-{i}"
        body = {
            "session_id": data["session_id"],
            "external_task_id": external,
            "face_choose": [
                {
                    "face_id": face["face_id"],
                    "sound_file": AUDIO,
                    "sound_start_time": 0,
                    "sound_end_time": 2000,
                    "sound_insert_time": face["start_time"],
                }
            ],
        }
        created = client.post("/v1/videos/advanced-lip-sync", json=body)
        assert created.status_code == 200, created.text
        task = client.get(f"/v1/videos/advanced-lip-sync/{external}").json()["data"]
        video_ms = int(Decimal(task["task_info"]["parent_video"]["duration"]) * 1000)
        session = Session(data["session_id"], data["face_data"], video_ms, external)
        reasons = expressible_create_rules(
            session.session_id,
            session.faces,
            AUDIO_MS,
            video_ms,
            sound_file=AUDIO,
            taken_external_task_id=external,
        )
        if all(reason is None or rule in UNEXPRESSIBLE_RULES for rule, reason in reasons.items()):
            return session
    raise AssertionError("no derived video lets every rule be broken")


@pytest.fixture
def mock(make_client: Callable[..., TestClient]) -> TestClient:
    """An in-process mock on a manual clock (tasks stay submitted)."""
    return make_client()


@pytest.fixture
def session(mock: TestClient) -> Session:
    """A session whose faces let every expressible create rule be broken."""
    return open_session(mock)


def assert_refused(rule_id: str, http_status: int, body: dict[str, Any]) -> None:
    rule = SPEC.rules[rule_id]
    assert http_status == SPEC.http_status[rule.code], body
    assert body["code"] == rule.code, body
    assert RULE_NAMED.findall(body["message"]) == [rule_id], body["message"]


class TestValidRequests:
    def test_identify_face_requests_are_accepted(self, mock: TestClient) -> None:
        """Every generated identify-face body gets a session."""

        @FEW
        @given(identify_face_requests())
        def check(body: dict[str, Any]) -> None:
            r = mock.post("/v1/videos/identify-face", json=body)
            assert r.status_code == 200, (body, r.text)
            assert r.json()["data"]["session_id"]

        check()

    def test_create_task_requests_are_accepted(self, mock: TestClient, session: Session) -> None:
        """Every generated create-task body for a real session and audio creates a task."""

        @settings(FEW, max_examples=25)
        @given(
            create_task_requests(
                session.session_id,
                session.faces,
                AUDIO_MS,
                session.video_ms,
                sound_file=AUDIO,
                external_task_id_prefix="valid-",
            )
        )
        def check(body: dict[str, Any]) -> None:
            r = mock.post("/v1/videos/advanced-lip-sync", json=body)
            assert r.status_code == 200, (body["face_choose"][0].keys(), r.text)
            assert r.json()["data"]["task_status"] == "submitted"

        check()

    def test_create_task_requests_with_a_tts_audio_are_accepted(
        self, mock: TestClient, session: Session
    ) -> None:
        """Bodies that reference a TTS audio_id of known duration are accepted."""
        tts = mock.post(
            "/v1/audio/tts",
            json={
                "text": "Hello there, welcome to the show." * 3,
                "voice_id": "oversea_male1",
                "voice_language": "en",
            },
        )
        audio = tts.json()["data"]["task_result"]["audios"][0]
        duration = int(Decimal(audio["duration"]) * 1000)

        @FEW
        @given(
            create_task_requests(
                session.session_id, session.faces, duration, session.video_ms, audio_id=audio["id"]
            )
        )
        def check(body: dict[str, Any]) -> None:
            r = mock.post("/v1/videos/advanced-lip-sync", json=body)
            assert r.status_code == 200, r.text

        check()

    def test_list_queries_are_accepted(self, mock: TestClient) -> None:
        """Page parameters within their schemas list tasks."""

        @FEW
        @given(list_queries())
        def check(query: dict[str, int]) -> None:
            r = mock.get("/v1/videos/advanced-lip-sync", params=query)
            assert r.status_code == 200, r.text
            assert isinstance(r.json()["data"], list)

        check()

    def test_tts_requests_are_accepted(self, mock: TestClient) -> None:
        """An official voice with its own language produces speech."""

        @FEW
        @given(tts_requests())
        def check(body: dict[str, Any]) -> None:
            r = mock.post("/v1/audio/tts", json=body)
            assert r.status_code == 200, (body, r.text)

        check()

    def test_tts_speaks_a_letter_with_a_two_character_lowercase(self, mock: TestClient) -> None:
        """A text with "İ" (whose lowercase is two code points) is spoken, not answered 5000."""
        body = {"text": "İstanbul", "voice_id": "oversea_male1", "voice_language": "en"}
        assert mock.post("/v1/audio/tts", json=body).status_code == 200

    def test_impossible_inputs_are_refused_up_front(self) -> None:
        """A session without a long enough face, or an audio out of range, raises ValueError."""
        short_face = [Face("0", 0, 1500)]
        with pytest.raises(ValueError, match="no face"):
            create_task_requests("s", short_face, AUDIO_MS, 9000)
        with pytest.raises(ValueError, match="outside the documented"):
            create_task_requests("s", [Face("0", 0, 5000)], 1000, 9000)
        with pytest.raises(ValueError, match="not both"):
            create_task_requests(
                "s", [Face("0", 0, 5000)], AUDIO_MS, 9000, sound_file="x", audio_id="y"
            )


class TestInvalidRequests:
    @pytest.mark.parametrize(
        "rule_id", [r for r in rules_of("createLipSyncTask") if r not in UNEXPRESSIBLE_RULES]
    )
    def test_create_body_is_refused_for_its_rule(
        self, mock: TestClient, session: Session, rule_id: str
    ) -> None:
        """A body breaking one create rule is refused with that rule's code, naming the rule."""
        strategy = invalid_create_requests(
            session.session_id,
            session.faces,
            AUDIO_MS,
            session.video_ms,
            sound_file=AUDIO,
            taken_external_task_id=session.taken_external_id,
            rules=[rule_id],
        )

        @settings(FEW, max_examples=4)
        @given(strategy)
        def check(pair: tuple[str, dict[str, Any]]) -> None:
            rule, body = pair
            r = mock.post("/v1/videos/advanced-lip-sync", json=body)
            assert rule == rule_id
            assert_refused(rule, r.status_code, r.json())

        check()

    def test_only_rules_needing_time_or_files_are_unexpressible(self, session: Session) -> None:
        """Every create rule has a branch for a suitable session, except the documented ones."""
        reasons = expressible_create_rules(
            session.session_id,
            session.faces,
            AUDIO_MS,
            session.video_ms,
            sound_file=AUDIO,
            taken_external_task_id=session.taken_external_id,
        )
        assert set(reasons) == set(rules_of("createLipSyncTask"))
        assert {rule for rule, reason in reasons.items() if reason} == {
            r for r in rules_of("createLipSyncTask") if r in UNEXPRESSIBLE_RULES
        }

    def test_a_rule_that_cannot_be_broken_raises(self, session: Session) -> None:
        """Asking for an unexpressible rule names the reason instead of drawing nothing."""
        with pytest.raises(ValueError, match="24 hours"):
            invalid_create_requests(
                session.session_id,
                session.faces,
                AUDIO_MS,
                session.video_ms,
                rules=["session-valid"],
            )

    @pytest.mark.parametrize("rule_id", ["video-source-xor", "video-url-reachable", "video-format"])
    def test_identify_face_body_is_refused_for_its_rule(
        self, mock: TestClient, rule_id: str
    ) -> None:
        """A body breaking one identify-face rule is refused with that rule's code."""

        @FEW
        @given(invalid_identify_face_requests([rule_id]))
        def check(pair: tuple[str, dict[str, Any]]) -> None:
            r = mock.post("/v1/videos/identify-face", json=pair[1])
            assert_refused(pair[0], r.status_code, r.json())

        check()

    @pytest.mark.parametrize("rule_id", rules_of("listLipSyncTasks"))
    def test_list_query_is_refused_for_its_rule(self, mock: TestClient, rule_id: str) -> None:
        """A page parameter out of range is refused with its rule's code."""

        @FEW
        @given(invalid_list_queries([rule_id]))
        def check(pair: tuple[str, dict[str, Any]]) -> None:
            r = mock.get("/v1/videos/advanced-lip-sync", params=pair[1])
            assert_refused(pair[0], r.status_code, r.json())

        check()

    def test_unknown_task_is_not_found(self, mock: TestClient) -> None:
        """A task id no account has is refused with task-exists' code (1203, HTTP 404)."""

        @FEW
        @given(invalid_task_ids())
        def check(pair: tuple[str, str]) -> None:
            r = mock.get(f"/v1/videos/advanced-lip-sync/{pair[1]}")
            assert_refused(pair[0], r.status_code, r.json())

        check()

    @pytest.mark.parametrize("rule_id", rules_of("createTts"))
    def test_tts_body_is_refused_for_its_rule(self, mock: TestClient, rule_id: str) -> None:
        """A too long text or a voice of another language is refused with its rule's code."""

        @FEW
        @given(invalid_tts_requests([rule_id]))
        def check(pair: tuple[str, dict[str, Any]]) -> None:
            r = mock.post("/v1/audio/tts", json=pair[1])
            assert_refused(pair[0], r.status_code, r.json())

        check()


class TestServerPayloads:
    @pytest.mark.parametrize(
        "status", [None, *SPEC.document["components"]["schemas"]["TaskStatus"]["enum"]]
    )
    def test_tasks_conform_to_the_task_schema(self, status: str | None) -> None:
        """Generated tasks of every status validate against the Task schema."""
        validator = SPEC.validator("Task")

        @FEW
        @given(tasks(status))
        def check(task: dict[str, Any]) -> None:
            validator.validate(task)
            assert status is None or task["task_status"] == status
            assert task["updated_at"] >= task["created_at"]

        check()

    def test_callback_payloads_conform_to_their_schema(self) -> None:
        """Generated callback bodies validate against CallbackPayload and carry no envelope."""
        validator = SPEC.validator("CallbackPayload")

        @FEW
        @given(callback_payloads())
        def check(payload: dict[str, Any]) -> None:
            validator.validate(payload)
            assert "code" not in payload

        check()

    @pytest.mark.parametrize("code", sorted(SPEC.http_status))
    def test_error_envelopes_conform_for_every_code(self, code: int) -> None:
        """Every documented error code yields envelopes valid against ErrorEnvelope."""
        validator = SPEC.validator("ErrorEnvelope")

        @settings(FEW, max_examples=3)
        @given(error_envelopes(code))
        def check(envelope: dict[str, Any]) -> None:
            validator.validate(envelope)
            assert envelope["code"] == code

        check()

    def test_undocumented_error_code_raises(self) -> None:
        """Asking for a code outside x-kling-errors is a usage error."""
        with pytest.raises(ValueError, match="not a documented error code"):
            error_envelopes(4242)


class TestSpecDriven:
    def test_bounds_are_read_from_the_given_spec(self, tmp_path: Path) -> None:
        """A spec with a 3 s crop minimum and a 1.5 volume maximum yields bodies that obey it."""
        document = yaml.safe_load((spec_dir() / SPEC_FILE).read_text(encoding="utf-8"))
        for rule in document["x-kling-rules"]:
            if rule["id"] == "crop-min-length":
                rule["boundary"] = 3000
        document["components"]["schemas"]["Volume"]["maximum"] = 1.5
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(document))
        faces = [Face("0", 0, 9000)]

        @FEW
        @given(create_task_requests("s", faces, AUDIO_MS, 9000, spec=path))
        def check(body: dict[str, Any]) -> None:
            fc = body["face_choose"][0]
            assert fc["sound_end_time"] - fc["sound_start_time"] >= 3000
            assert all(fc.get(k, 1) <= 1.5 for k in ("sound_volume", "original_audio_volume"))

        check()

    def test_volume_rule_is_broken_just_past_the_spec_boundary(self) -> None:
        """The first volume tried is the float right after the schema's maximum."""
        values: list[float] = []

        @settings(FEW, max_examples=30)
        @given(
            invalid_create_requests(
                "s", [Face("0", 0, 9000)], AUDIO_MS, 9000, rules=["volume-range"]
            ),
            st.just(None),
        )
        def check(pair: tuple[str, dict[str, Any]], _: None) -> None:
            fc = pair[1]["face_choose"][0]
            values.extend(fc[k] for k in ("sound_volume", "original_audio_volume") if k in fc)

        check()
        assert any(2 < v < 2.0001 for v in values)


class TestDocumentation:
    @pytest.mark.parametrize(
        "module",
        [
            contracts.strategies,
            contracts.report,
            *(
                importlib.import_module(m.name)
                for m in pkgutil.walk_packages(contracts.verify.__path__, "contracts.verify.")
            ),
        ],
        ids=lambda m: m.__name__,
    )
    def test_docstring_examples_run(self, module: Any) -> None:
        """The examples in the public docstrings run and show what they claim."""
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0

    def test_the_kit_has_docstring_examples(self) -> None:
        """The strategies, the report and verify's options, target and report show examples."""
        for name in ("strategies", "report", "verify.options", "verify.target", "verify.report"):
            module = importlib.import_module(f"contracts.{name}")
            assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).attempted > 0, name
