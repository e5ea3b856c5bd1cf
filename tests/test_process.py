"""The real server process: start-up, a full lip-sync over HTTP, the served spec, the CLI."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_spec_validator import validate

from mock_server import cli, logs, media
from mock_server.domain.models import Account, AccountId

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 30.0
TASKS = "/v1/videos/advanced-lip-sync"


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass(slots=True)
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def client(self, api_key: str = "mock-api-key") -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30.0,
            trust_env=False,  # never send loopback traffic through a proxy from the environment
        )


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the mock exited with {process.returncode}:\n{log.read_text()}")
            try:
                if http.get("/openapi.json").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"the mock did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start `python -m mock_server` on 127.0.0.1 and a free port; stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Server:
        port = free_port()
        log = tmp_path / f"mock-{len(started)}.log"
        command = [sys.executable, "-m", "mock_server", "--host", "127.0.0.1"]
        full_env = {**os.environ, **(env or {})}
        if "LIPSYNC_MOCK_PORT" in (env or {}):
            port = int(full_env["LIPSYNC_MOCK_PORT"])
        else:
            command += ["--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command + args, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(process)
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_ready(process, base_url, log)
        return Server(process, base_url, log)

    try:
        yield start
    finally:
        for process in started:
            _stop(process)


def _poll_until_finished(
    http: httpx.Client, task_id: str, timeout_s: float = 20.0
) -> tuple[dict[str, Any], list[str]]:
    deadline = time.monotonic() + timeout_s
    statuses: list[str] = []
    while time.monotonic() < deadline:
        task: dict[str, Any] = http.get(f"{TASKS}/{task_id}").json()["data"]
        if not statuses or statuses[-1] != task["task_status"]:
            statuses.append(task["task_status"])
        if task["task_status"] in ("succeed", "failed"):
            return task, statuses
        time.sleep(0.05)
    pytest.fail(f"task {task_id} did not finish in {timeout_s} s; statuses {statuses}")


class TestServerProcess:
    def test_full_lip_sync_over_http(self, start_server: StartServer) -> None:
        """identify -> create with base64 audio -> poll -> download a playable MP4 with sound."""
        server = start_server(["--submit-delay", "0.2", "--processing-delay", "0.5"])
        with server.client() as http:
            r = http.post(
                "/v1/videos/identify-face", json={"video_url": "https://example.com/speaker.mp4"}
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-mock-media-source"] == "derived"
            identified = r.json()["data"]
            face = identified["face_data"][0]
            sound = base64.b64encode(media.make_audio(media.MediaFormat.MP3, 4000)).decode()
            body = {
                "session_id": identified["session_id"],
                "face_choose": [
                    {
                        "face_id": face["face_id"],
                        "sound_file": sound,
                        "sound_start_time": 0,
                        "sound_end_time": 3000,
                        "sound_insert_time": face["start_time"],
                    }
                ],
            }
            r = http.post(TASKS, json=body)
            assert r.status_code == 200, r.text
            assert r.json()["data"]["task_status"] == "submitted"
            task, statuses = _poll_until_finished(http, r.json()["data"]["task_id"])
            assert statuses[-1] == "succeed", task
            progression = ["submitted", "processing", "succeed"]
            assert statuses == [st for st in progression if st in statuses]  # never backwards
            (video,) = task["task_result"]["videos"]
            assert video["url"].startswith(server.base_url)
            download = http.get(video["url"])
            assert download.status_code == 200
            assert download.headers["content-type"] == "video/mp4"
            info = media.probe_bytes(download.content)
            parent_ms = round(float(task["task_info"]["parent_video"]["duration"]) * 1000)
            assert abs(info.duration_ms - parent_ms) <= 100
            assert info.has_audio and info.has_video
            assert info.format is media.MediaFormat.MP4

    def test_served_spec_is_valid_openapi(self, start_server: StartServer) -> None:
        """/openapi.yaml is a valid OpenAPI document and equals the JSON rendition."""
        server = start_server([])
        with server.client() as http:
            document = yaml.safe_load(http.get("/openapi.yaml").text)
            validate(document)
            assert document["openapi"].startswith("3.1")
            assert http.get("/openapi.json").json() == document

    def test_options_from_environment(self, start_server: StartServer) -> None:
        """Environment variables configure the process: port, API key, phase delays, seed."""
        port = free_port()
        server = start_server(
            [],
            env={
                "LIPSYNC_MOCK_PORT": str(port),
                "KLING_API_KEY": "key-from-env",
                "LIPSYNC_MOCK_SUBMIT_DELAY": "0.1",
                "LIPSYNC_MOCK_PROCESSING_DELAY": "0.3",
                "LIPSYNC_MOCK_SEED": "99",
            },
        )
        assert server.base_url.endswith(f":{port}")
        with server.client("key-from-env") as http:
            assert http.get(TASKS).status_code == 200
            with server.client() as default_key:
                assert default_key.get(TASKS).status_code == 401
            session = http.post(
                "/v1/videos/identify-face", json={"video_url": "https://example.com/speaker.mp4"}
            ).json()["data"]["session_id"]
            body = {
                "session_id": session,
                "face_choose": [
                    {
                        "face_id": "0",
                        "sound_file": "https://example.com/voice.mp3",
                        "sound_start_time": 0,
                        "sound_end_time": 2000,
                        "sound_insert_time": 0,
                    }
                ],
            }
            created = http.post(TASKS, json=body).json()["data"]
            task, _ = _poll_until_finished(http, created["task_id"])
        assert task["task_status"] == "succeed"
        assert task["updated_at"] - task["created_at"] == 400
        assert "0.1 s submitted, 0.3 s processing" in server.log.read_text()

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
    def test_signal_ends_it_cleanly(self, start_server: StartServer, sig: signal.Signals) -> None:
        """Ctrl-C or SIGTERM: graceful shutdown (lifespan included), status 0, no traceback."""
        server = start_server([])
        with server.client() as http:
            assert http.get(TASKS).status_code == 200  # a kept-alive connection is open
            server.process.send_signal(sig)
            status = server.process.wait(timeout=15)
        log = server.log.read_text()
        assert status == 0, log
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
        assert "Application shutdown complete" in log

    def test_one_log_line_per_request(self, start_server: StartServer) -> None:
        """At info each API request is one line (method, path, status, code, account, rule, ms)."""
        server = start_server([])
        with server.client() as http:
            http.get(TASKS)
            http.get(f"{TASKS}/nope")
            http.get(TASKS, headers={"Authorization": "Bearer wrong"})
        server.process.terminate()
        server.process.wait(timeout=15)
        lines = [ln for ln in server.log.read_text().splitlines() if f" {TASKS}" in ln]
        print("\n" + "\n".join(lines))
        assert len(lines) == 3, lines  # uvicorn's own access line would double them
        first = rf"GET {TASKS} 200 code=0 account=mock-access-key rule=- [0-9.]+ ms"
        assert re.search(first, lines[0])
        assert re.search(rf"GET {TASKS}/nope 404 code=1203 account=mock-access-key", lines[1])
        assert re.search(rf"GET {TASKS} 401 code=1000 account=- ", lines[2])

    def test_json_log_format(self, start_server: StartServer) -> None:
        """`--log-format json`: every line on stderr is one JSON object; requests carry fields."""
        server = start_server(["--log-format", "json"])
        with server.client() as http:
            http.get(TASKS)
        server.process.terminate()
        server.process.wait(timeout=15)
        docs = [json.loads(line) for line in server.log.read_text().splitlines() if line]
        requests = [d for d in docs if d.get("path") == TASKS]
        assert docs[0]["base_url"] == server.base_url
        assert len(requests) == 1
        assert requests[0]["code"] == 0 and requests[0]["account"] == "mock-access-key"
        assert requests[0]["method"] == "GET" and requests[0]["status"] == 200
        assert isinstance(requests[0]["ms"], float)

    def test_port_in_use_is_one_line_before_the_banner(self) -> None:
        """A taken port: one line naming the address, no banner, no traceback, status 1."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = _run_cli(["--port", str(port)])
        assert result.returncode == 1
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert f"127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
        assert "Kling lip-sync mock on" not in result.stderr + result.stdout

    def test_port_zero_serves_on_the_port_it_picked(self, tmp_path: Path) -> None:
        """`--port 0` picks a free port; the banner and result links carry the real one."""
        log = tmp_path / "mock.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "mock_server", "--port", "0"],
                cwd=ROOT, env=_clean_env(), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not (found := re.search(r"mock on (http://127.0.0.1:(\d+))", log.read_text())):
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            base_url = found.group(1)
            assert found.group(2) != "0"
            _wait_until_ready(process, base_url, log)
        finally:
            _stop(process)


# -- the command line -----------------------------------------------------------------------


def _options() -> list[argparse.Action]:
    return [
        a
        for a in cli.parser()._actions
        if a.option_strings and a.dest not in ("help", "version")
    ]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without a developer's LIPSYNC_MOCK_* or KLING_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIPSYNC_", "KLING_"))}
    return {**env, **extra}


def _run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_server", *args],
        cwd=ROOT,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _env_name(action: argparse.Action) -> str:
    match = re.match(r"\[([A-Z0-9_]+)", action.help or "")
    assert match, f"{action.option_strings[0]} names no environment variable in its help"
    return match.group(1)


SAMPLES: dict[str, tuple[str, object]] = {
    "account": ("ak2:sk2", [Account(AccountId("ak2"), "ak2", "sk2", ())]),
    "store": ("sqlite:./x.db", "sqlite:./x.db"),
    "public_url": ("http://mock.test:9", "http://mock.test:9"),
    "proxy_to": ("http://upstream.test:9", "http://upstream.test:9"),
    "submit_delay_dist": ("uniform:1:2", "uniform:1:2"),
    "processing_delay_dist": ("lognormal:3:0.5", "lognormal:3:0.5"),
    "api_latency": ("fixed:0.1", "fixed:0.1"),
    "webhook_secret": ("whsec_c2VjcmV0", "whsec_c2VjcmV0"),
    "allow_dir": ("/tmp", ["/tmp"]),  # it must exist
}


def _sample(action: argparse.Action) -> tuple[str, object]:
    """A value to put in the environment and what parse_args should make of it."""
    if action.dest in SAMPLES:
        return SAMPLES[action.dest]
    if action.choices:
        choice = str(list(action.choices)[-1])
        return choice, choice
    if isinstance(action, argparse._AppendAction):
        return "sample", ["sample"]
    kind = getattr(action.type, "__name__", "")
    if kind == "integer":
        return "7", 7
    if kind == "number":
        return "0.25", 0.25
    return "sample-value", "sample-value"


class TestCommandLine:
    def test_help_lists_every_option_and_variable(self) -> None:
        """`--help` of the real entry point shows every option with its environment variable."""
        out = subprocess.run(
            [sys.executable, "-m", "mock_server", "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        flat = " ".join(out.split())
        for action in _options():
            for option in action.option_strings:
                assert option in out, f"{option} missing from --help"
            assert _env_name(action) in flat, f"{_env_name(action)} missing from --help"

    @pytest.mark.parametrize("action", _options(), ids=lambda a: a.option_strings[0])
    def test_every_option_reads_its_variable(
        self, monkeypatch: pytest.MonkeyPatch, action: argparse.Action
    ) -> None:
        """Each option takes its default from the environment variable its help names."""
        raw, expected = _sample(action)
        monkeypatch.setenv(_env_name(action), raw)
        assert getattr(cli.parser().parse_args([]), action.dest) == expected

    def test_flag_beats_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A flag given on the command line overrides the environment variable."""
        monkeypatch.setenv("LIPSYNC_MOCK_SUBMIT_DELAY", "9")
        assert cli.config_from_args(["--submit-delay", "0.2"]).submit_delay_s == 0.2
        assert cli.config_from_args([]).submit_delay_s == 9.0

    def test_environment_reaches_the_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Variables end up in the Config the app is built from, accounts included."""
        monkeypatch.setenv("LIPSYNC_MOCK_SUBMIT_DELAY", "0.2")
        monkeypatch.setenv("LIPSYNC_MOCK_PROCESSING_DELAY", "0.5")
        monkeypatch.setenv("LIPSYNC_MOCK_CLOCK", "manual")
        monkeypatch.setenv("LIPSYNC_MOCK_ACCOUNTS", "ak2:sk2:key2,ak3:sk3")
        monkeypatch.setenv("LIPSYNC_MOCK_ALLOW_DIRS", os.pathsep.join(["/tmp", "/usr"]))
        config = cli.config_from_args([])
        assert (config.submit_delay_s, config.processing_delay_s) == (0.2, 0.5)
        assert config.clock_mode.value == "manual"
        assert [a.access_key for a in config.accounts][1:] == ["ak2", "ak3"]
        assert config.accounts[1].api_keys == ("key2",)
        assert config.allow_dirs == ("/tmp", "/usr")

    def test_bad_account_option_is_refused(self) -> None:
        """A malformed --account stops start-up with a message saying the expected form."""
        with pytest.raises(cli.UsageError, match="AK:SK"):
            cli.config_from_args(["--account", "only-one-part"])

    def test_help_shows_each_default_once(self) -> None:
        """No option's help says its default twice, and none says '(default: None)'."""
        out = " ".join(cli.parser().format_help().split())
        assert "(default: None)" not in out
        for action in _options():
            assert (action.help or "").count("default") <= 2, action.help
        assert "(default http://HOST:PORT) (default" not in out

    def test_version(self) -> None:
        """`--version` prints the package version and exits 0."""
        result = _run_cli(["--version"])
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"lipsync-mock \S+\n", result.stdout), result.stdout


# (arguments, environment, the name the one line must carry)
BAD_VALUES: list[tuple[list[str], dict[str, str], str]] = [
    (["--help"], {"LIPSYNC_MOCK_CLOCK_SPEED": "fast"}, "LIPSYNC_MOCK_CLOCK_SPEED"),
    ([], {"LIPSYNC_MOCK_CLOCK_SPEED": "1e308"}, "LIPSYNC_MOCK_CLOCK_SPEED"),
    (["--processing-delay", "inf"], {}, "--processing-delay"),
    (["--processing-delay", "nan"], {}, "--processing-delay"),
    (["--processing-delay", "-1"], {}, "--processing-delay"),
    (["--submit-delay", "1e400"], {}, "--submit-delay"),
    (["--port", "70000"], {}, "--port"),
    (["--port", "abc"], {}, "--port"),
    ([], {"LIPSYNC_MOCK_PORT": "-1"}, "LIPSYNC_MOCK_PORT"),
    (["--store", "redis:x"], {}, "--store"),
    ([], {"LIPSYNC_MOCK_STORE": "sqlite:"}, "LIPSYNC_MOCK_STORE"),
    (["--max-body-mb", "0"], {}, "--max-body-mb"),
    (["--record-max-mb", "0"], {}, "--record-max-mb"),
    (["--record-max-mb", "inf"], {}, "--record-max-mb"),
    ([], {"LIPSYNC_MOCK_RECORD_MAX_MB": "lots"}, "LIPSYNC_MOCK_RECORD_MAX_MB"),
    (["--callback-attempts", "0"], {}, "--callback-attempts"),
    (["--clock", "fast"], {}, "--clock"),
    ([], {"LIPSYNC_MOCK_LOG_LEVEL": "loud"}, "LIPSYNC_MOCK_LOG_LEVEL"),
    ([], {"LIPSYNC_MOCK_SEED": "9" * 5000}, "LIPSYNC_MOCK_SEED"),
    ([], {"LIPSYNC_MOCK_CLOCK_START": "1e3"}, "LIPSYNC_MOCK_CLOCK_START"),
    (["--public-url", "ftp://x"], {}, "--public-url"),
    (["--webhook-secret", "whsec_%%%"], {}, "--webhook-secret"),
    ([], {"KLING_API_KEY": "has space"}, "KLING_API_KEY"),
    ([], {"LIPSYNC_MOCK_ACCOUNTS": "a:b,c"}, "LIPSYNC_MOCK_ACCOUNTS"),
    (["--account", "mock-access-key:x"], {}, "--account"),
    (["--account", "ak2:sk2:mock-api-key"], {}, "--account"),
    (["--header-timeout", "0"], {}, "--header-timeout"),
    (["--admin-token", ""], {}, "--admin-token"),
    (["--host", "0.0.0.0"], {}, "--admin-token"),
    ([], {"LIPSYNC_MOCK_HOST": "x" * 100_000}, "LIPSYNC_MOCK_HOST"),
    ([], {"LIPSYNC_MOCK_ACCOUNTS": ",".join(f"a{i}:s{i}" for i in range(10_001))},
     "LIPSYNC_MOCK_ACCOUNTS"),
    (["--fixtures", "/nonexistent/fixtures.yaml"], {}, "fixtures"),
    (["--allow-dir", "/nonexistent/media"], {}, "--allow-dir"),
    ([], {"LIPSYNC_MOCK_ALLOW_DIRS": "/etc/hostname"}, "LIPSYNC_MOCK_ALLOW_DIRS"),
    (["--body-timeout", "0"], {}, "--body-timeout"),
]  # fmt: skip


class TestRequestLog:
    def test_a_path_cannot_forge_log_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        """A decoded %0A or a 100 KB path still makes one short line."""
        started = time.perf_counter()
        with caplog.at_level(logging.INFO, logger="mock_server.requests"):
            for path in ("/x\n09:00:00 INFO    GET /v1 200 code=0", "/" + "a" * 100_000):
                logs.log_request(
                    "GET", path, operation=None, principal=None, http_status=404,
                    error=None, request_id="r", started=started,
                )  # fmt: skip
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2
        assert all("\n" not in m and len(m) < 500 for m in messages), messages


class TestBadValues:
    @pytest.mark.parametrize(
        ("args", "env", "name"),
        BAD_VALUES,
        ids=[f"{name}-{i}" for i, (_, _, name) in enumerate(BAD_VALUES)],
    )
    def test_one_line_and_status_2(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        args: list[str],
        env: dict[str, str],
        name: str,
    ) -> None:
        """A bad flag or variable: one short line on stderr naming it, status 2, no traceback."""
        for key in [k for k in os.environ if k.startswith(("LIPSYNC_", "KLING_"))]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(SystemExit) as exited:
            cli.main([*args, "--port", "0"] if "--port" not in args and not env.get(
                "LIPSYNC_MOCK_PORT") else args)
        err = capsys.readouterr().err
        assert exited.value.code == 2, err
        assert err.endswith("\n") and err.count("\n") == 1, err
        assert err.startswith("lipsync-mock: ") and name in err, err
        assert len(err) < 400, err

    @pytest.mark.parametrize(
        ("args", "env"),
        [(["--help"], {"LIPSYNC_MOCK_CLOCK_SPEED": "fast"}), (["--processing-delay", "inf"], {})],
        ids=["env-with-help", "inf"],
    )
    def test_real_entry_point(self, args: list[str], env: dict[str, str]) -> None:
        """The same through `python -m mock_server`: status 2, one line, no traceback."""
        result = _run_cli(args, **env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""

    def test_non_loopback_with_a_token_is_accepted(self) -> None:
        """Binding 0.0.0.0 is allowed once the control API has a token."""
        config = cli.config_from_args(["--host", "0.0.0.0", "--admin-token", "s3cret"])
        assert config.admin_token == "s3cret"
        assert cli.config_from_args(["--host", "localhost"]).admin_token is None
