"""Load benchmark driver: the mock against a bare Starlette ceiling and Prism; writes RESULTS.md.

Run through `make bench` (bench/run.sh installs wrk and Prism first). Every server is started
here on a free loopback port, checked with one real request per workload, loaded with wrk for a
fixed time, then stopped. BENCH_QUICK=1 makes a smoke run of about a minute. Last,
bench/long_verify.py adds a long contract verify run to the results.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
OUT = BENCH / "out"
PY = sys.executable
API_KEY = "mock-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TASKS = "/v1/videos/advanced-lip-sync"
VIDEO_URL = "https://example.com/videos/speaker.mp4"
SOUND_URL = "https://example.com/audio/speech-6s.mp3"
SUBMIT_DELAY_S, PROCESSING_DELAY_S = 1, 3


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    duration_s: int
    warmup_s: int
    threads: int
    connections: int
    tiers: tuple[int, ...]
    page_sizes: tuple[int, ...]
    seed_budget_s: float
    quiet_budget_s: float  # in all, for waiting out and repeating runs disturbed by others
    quiet_wait_s: float  # at most, before one run
    nice: int  # priority change of the run (servers and wrk inherit it); 0 leaves it
    wrk: str
    prism: str

    @property
    def results_path(self) -> Path:
        # A smoke run must not overwrite the real results.
        return OUT / "RESULTS.quick.md" if self.quick else BENCH / "RESULTS.md"


def settings_from(argv: Sequence[str] | None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--prism", default=str(BENCH / ".prism/node_modules/.bin/prism"))
    args = p.parse_args(argv)
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    env = os.environ.get
    return Settings(
        quick=quick,
        duration_s=int(env("BENCH_DURATION", "1" if quick else "5")),
        warmup_s=int(env("BENCH_WARMUP", "0" if quick else "1")),
        threads=int(env("BENCH_THREADS", "2")),
        connections=int(env("BENCH_CONNECTIONS", "32")),
        tiers=(500, 1000, 2000) if quick else (1_000, 10_000, 100_000),
        page_sizes=(30, 500),
        seed_budget_s=float(env("BENCH_SEED_BUDGET", "60" if quick else "300")),
        quiet_budget_s=float(env("BENCH_QUIET_BUDGET", "10" if quick else "180")),
        quiet_wait_s=float(env("BENCH_QUIET_WAIT", "5" if quick else "15")),
        nice=int(env("BENCH_NICE", "-10")),
        wrk=args.wrk,
        prism=args.prism,
    )


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    ready_timeout_s: float = 30.0
    proc: subprocess.Popen[bytes] | None = None
    ready_log_bytes: int = 0  # how much it had logged when it first took a connection

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return OUT / f"{self.name}.log"

    def start(self) -> None:
        log(f"starting {self.name}: {' '.join(self.argv)}")
        with self.log_path.open("wb") as out:
            # Same session as the driver: the kernel shares CPU between sessions (autogroups)
            # first, so a server in a session of its own would not get the driver's priority.
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            # Both uvicorn and Prism listen only once the app (or the spec) is loaded; a
            # connection, unlike a request, leaves nothing in the log.
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                self.ready_log_bytes = self.log_path.stat().st_size
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {self.ready_timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # each server is one process: npm's bin shim execs node
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mock_server(name: str) -> Server:
    port = free_port()
    argv = [PY, "-m", "mock_server", "--port", str(port), "--log-level", "warning"]
    argv += ["--seed", "1", "--submit-delay", str(SUBMIT_DELAY_S)]
    argv += ["--processing-delay", str(PROCESSING_DELAY_S)]
    return Server(name, argv, port)


def bare_server() -> Server:
    port = free_port()
    argv = [PY, "-m", "uvicorn", "--factory", "--app-dir", str(BENCH), "bare_app:create_app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    argv += ["--no-access-log", "--log-level", "warning"]
    return Server("bare", argv, port)


def prism_server(prism: str) -> Server:
    port = free_port()
    # -v warn: Prism's per-request info lines are its access log; the others run without one.
    argv = [prism, "mock", "openapi/lipsync.yaml", "-p", str(port), "-h", "127.0.0.1"]
    argv += ["-v", "warn"]
    return Server("prism", argv, port, ready_timeout_s=60.0)


# -- workloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    title: str
    script: str
    args: tuple[str, ...]
    method: str
    path: str
    body: bytes | None = None


@dataclass(slots=True)
class Result:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    raw: dict[str, Any]
    server_cores: float  # CPU the server used during the run, in cores
    wrk_cores: float
    other_cores: float  # CPU used by anything else on the machine: noise in the figures

    @property
    def bad(self) -> int:
        return sum(self.errors.values())

    @property
    def disturbed(self) -> bool:
        """Other processes were busy and the server got less than a core: noisy figures."""
        return self.other_cores > NOISY_CORES and self.server_cores < STARVED_CORES


def preflight(server: Server, w: Workload) -> dict[str, str]:
    """One request exactly as wrk will send it; refuses a workload that would measure errors."""
    headers = {**AUTH, "Content-Type": "application/json"} if w.body else AUTH
    r = httpx.request(w.method, server.url + w.path, headers=headers, content=w.body, timeout=10)
    ok = r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json")
    if not ok or r.json().get("code") != 0:
        raise RuntimeError(f"{server.name} {w.key}: HTTP {r.status_code} {r.text[:300]}")
    return dict(r.headers)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks() -> int:
    """CPU ticks spent by anything on the machine (all of /proc/stat but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4]


def process_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def run_wrk(s: Settings, server: Server, w: Workload, duration_s: int, tag: str) -> Result:
    cmd = [s.wrk, f"-t{s.threads}", f"-c{s.connections}", f"-d{duration_s}s", "--timeout", "10s"]
    cmd += ["-s", str(LUA / w.script), server.url, "--", *w.args]
    assert server.proc is not None
    busy0, server0 = machine_busy_ticks(), process_ticks(server.proc.pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    wall = time.monotonic() - t0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (machine_busy_ticks() - busy0) / CLK_TCK / wall
    server_cores = (process_ticks(server.proc.pid) - server0) / CLK_TCK / wall
    wrk_cores = (
        children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime
    ) / wall
    (OUT / f"{server.name}-{tag}.txt").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {server.name} {tag}: {proc.stderr.strip()[:300]}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    lat = raw["latency_us"]
    return Result(
        requests=raw["requests"],
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=lat["p50"] / 1000,
        p99_ms=lat["p99"] / 1000,
        errors=raw["errors"],
        raw=raw,
        server_cores=server_cores,
        wrk_cores=wrk_cores,
        other_cores=max(0.0, busy - server_cores - wrk_cores),
    )


QUIET_CORES = 0.3  # the rest of the machine counts as idle below this
NOISY_CORES = 0.25  # other processes busier than this during a run ...
STARVED_CORES = 0.9  # ... while a (single-threaded) server got less than this: a noisy run


class Quiet:
    """The 2 cores are shared with whatever else runs on the machine, and a busy neighbour
    skews every figure: wait for calm before a run, repeat a disturbed one, within a budget."""

    def __init__(self, budget_s: float, per_wait_s: float) -> None:
        self.left = budget_s
        self.per_wait_s = per_wait_s

    def wait(self) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < min(self.per_wait_s, self.left):
            busy0 = machine_busy_ticks()
            time.sleep(1.0)
            if (machine_busy_ticks() - busy0) / CLK_TCK < QUIET_CORES:
                break
        waited = time.monotonic() - t0
        self.left -= waited
        if waited > 1.5:
            log(f"  waited {waited:.0f} s for other processes to calm down")


def measure(
    s: Settings, quiet: Quiet, server: Server, w: Workload, tag: str | None = None
) -> Result:
    tag = tag or w.key
    preflight(server, w)
    quiet.wait()
    if s.warmup_s:
        run_wrk(s, server, w, s.warmup_s, tag + "-warmup")
    res = run_wrk(s, server, w, s.duration_s, tag)
    for _ in range(2):
        if not res.disturbed or quiet.left < s.duration_s:
            break
        log(
            f"  {tag}: the server got {res.server_cores:.2f} cores while other processes used "
            f"{res.other_cores:.2f}; measuring again"
        )
        quiet.left -= s.duration_s
        quiet.wait()
        again = run_wrk(s, server, w, s.duration_s, tag)
        res = again if again.server_cores > res.server_cores else res
    note = f" ({res.bad} errors: {res.errors})" if res.bad else ""
    log(
        f"  {server.name:<6} {tag:<22} {res.rps:9.0f} req/s  p50 {res.p50_ms:7.2f} ms"
        f"  p99 {res.p99_ms:7.2f} ms  cores: server {res.server_cores:.2f} wrk "
        f"{res.wrk_cores:.2f} other {res.other_cores:.2f}{note}"
    )
    return res


def write_body(name: str, body: dict[str, Any]) -> tuple[Path, bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    path = OUT / f"body-{name}.json"
    path.write_bytes(data)
    return path, data


def audio_b64() -> tuple[str, int]:
    from mock_server import media

    data = media.make_audio(media.MediaFormat.MP3, 3000)
    duration = media.probe_bytes(data).duration_ms
    return base64.b64encode(data).decode(), duration


def create_body(session_id: str, sound_file: str, end_ms: int) -> dict[str, Any]:
    face = {
        "face_id": "0",
        "sound_file": sound_file,
        "sound_start_time": 0,
        "sound_end_time": end_ms,
        "sound_insert_time": 0,
    }
    # external_task_id stays empty: every create of a run must be accepted.
    return {"session_id": session_id, "face_choose": [face], "external_task_id": ""}


@dataclass
class Setup:
    session_id: str
    task_id: str
    workloads: dict[str, Workload]
    create_url_body: bytes


def setup(server: Server, b64: str, b64_end_ms: int) -> Setup:
    """A session and a task on this server, and the workloads that use them."""
    ident_path, ident = write_body(f"{server.name}-identify", {"video_url": VIDEO_URL})
    r = httpx.post(
        server.url + "/v1/videos/identify-face", headers=AUTH, json={"video_url": VIDEO_URL}
    )
    r.raise_for_status()
    session_id = r.json()["data"]["session_id"]
    url_path, url_body = write_body(
        f"{server.name}-create-url", create_body(session_id, SOUND_URL, 3000)
    )
    b64_path, b64_body = write_body(
        f"{server.name}-create-b64", create_body(session_id, b64, min(3000, b64_end_ms))
    )
    r = httpx.post(
        server.url + TASKS, headers={**AUTH, "Content-Type": "application/json"}, content=url_body
    )
    r.raise_for_status()
    task_id = r.json()["data"]["task_id"]
    post = "POST"
    ws = [
        Workload(
            "query_one", "query one task", "query_one.lua", (task_id,), "GET", f"{TASKS}/{task_id}"
        ),
        Workload(
            "create_b64",
            f"create, base64 audio (3 s MP3, {len(b64) // 1024} KiB)",
            "create_task.lua",
            (str(b64_path),),
            post,
            TASKS,
            b64_body,
        ),
        Workload(
            "create_url",
            "create, sound URL",
            "create_task.lua",
            (str(url_path),),
            post,
            TASKS,
            url_body,
        ),
        Workload(
            "identify_face",
            "identify-face",
            "identify_face.lua",
            (str(ident_path),),
            post,
            "/v1/videos/identify-face",
            ident,
        ),
        Workload(
            "mixed",
            "create then poll (1:4)",
            "mixed.lua",
            (str(url_path), "4"),
            post,
            TASKS,
            url_body,
        ),
    ]
    for size in (30, 500):
        ws.append(
            Workload(
                f"list_{size}",
                f"query list, pageSize {size}",
                "query_list.lua",
                (str(size),),
                "GET",
                f"{TASKS}?pageNum=1&pageSize={size}",
            )
        )
    return Setup(session_id, task_id, {w.key: w for w in ws}, url_body)


# -- seeding the mock's store ----------------------------------------------------------------


async def _seed(port: int, body: bytes, count: int, deadline: float, conns: int) -> tuple[int, str]:
    """Creates `count` tasks over raw keep-alive connections (cheaper than any client library,
    so the 2 cores go to the server); stops at the deadline. Returns (created, first error)."""
    head = (
        f"POST {TASKS} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    left = count
    created = 0
    error = ""

    async def worker() -> None:
        nonlocal left, created, error
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left > 0 and not error and time.monotonic() < deadline:
                left -= 1
                writer.write(request)
                status_head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in status_head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                payload = await reader.readexactly(length)
                if not status_head.startswith(b"HTTP/1.1 200") or b'"code":0' not in payload:
                    error = error or (status_head.split(b"\r\n")[0] + b" " + payload[:300]).decode()
                else:
                    created += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return created, error


def seed(server: Server, body: bytes, count: int, deadline: float) -> tuple[int, float]:
    t0 = time.monotonic()
    created, error = asyncio.run(_seed(server.port, body, count, deadline, conns=16))
    if error:
        raise RuntimeError(f"seeding failed: {error}")
    return created, time.monotonic() - t0


def stored_tasks(server: Server) -> int:
    """The account's task count, from the list alone (it has no total): bisect the last page."""

    def page(n: int) -> int:
        r = httpx.get(
            server.url + TASKS, headers=AUTH, params={"pageNum": n, "pageSize": 500}, timeout=30
        )
        r.raise_for_status()
        return len(r.json()["data"])

    lo, hi = 1, 1000  # pageNum is at most 1000: counts up to 500k
    if page(1) == 0:
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if page(mid) > 0:
            lo = mid
        else:
            hi = mid - 1
    return (lo - 1) * 500 + page(lo)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    results: dict[tuple[str, str], Result] = field(default_factory=dict)  # (server, row) -> result
    rows: list[tuple[str, str]] = field(default_factory=list)  # (row key, title)
    notes: list[str] = field(default_factory=list)
    tiers: list[int] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)
    prism_error: str = ""
    prism_violations: dict[str, str] = field(default_factory=dict)


POINT_KEYS = ("query_one", "create_b64", "create_url", "identify_face", "mixed")
REFERENCE_KEYS = (*POINT_KEYS, "list_30", "list_500")


class Bench:
    """One run: the settings, what every server is sent, and what was measured so far."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.quiet = Quiet(s.quiet_budget_s, s.quiet_wait_s)
        self.b64, self.b64_ms = audio_b64()
        self.out = Outcome()

    def measure(self, server: Server, w: Workload, tag: str | None = None) -> None:
        tag = tag or w.key
        self.out.results[(server.name, tag)] = measure(self.s, self.quiet, server, w, tag)

    def reference(self, server: Server) -> None:
        """The bare app or Prism: every workload once; neither keeps tasks."""
        st = setup(server, self.b64, self.b64_ms)
        for key in REFERENCE_KEYS:
            w = st.workloads[key]
            if server.name == "prism":
                violations = preflight(server, w).get("sl-violations")
                if violations:
                    self.out.prism_violations[key] = violations
            self.measure(server, w)

    def mock_points(self, server: Server) -> None:
        st = setup(server, self.b64, self.b64_ms)
        self.out.rows = [(k, st.workloads[k].title) for k in POINT_KEYS]
        for key in POINT_KEYS:
            self.measure(server, st.workloads[key])

    def mock_lists(self, server: Server) -> None:
        """The list workloads at each tier of stored tasks, and VmRSS per stored task."""
        s, out = self.s, self.out
        st = setup(server, self.b64, self.b64_ms)  # leaves one task in the store
        deadline = time.monotonic() + s.seed_budget_s
        settle = SUBMIT_DELAY_S + PROCESSING_DELAY_S + 1.0
        have = stored_tasks(server)
        for i, tier in enumerate(s.tiers):
            created, took = seed(server, st.create_url_body, tier - have, deadline)
            log(f"  seeded {created} tasks in {took:.1f} s ({created / max(took, 1e-9):.0f}/s)")
            have = stored_tasks(server)
            if have < tier:
                out.notes.append(
                    f"seeding stopped at the {s.seed_budget_s:g} s budget: "
                    f"{have} tasks stored instead of {tier}"
                )
            out.tiers.append(have)
            final = i == len(s.tiers) - 1 or have < tier
            if final and i > 0:
                time.sleep(settle)  # every task terminal, as when the baseline was read
                out.memory["rss_after_kib"] = server.rss_kib()
                out.memory["tasks_after"] = have
            for size in s.page_sizes:
                self.measure(server, st.workloads[f"list_{size}"], f"list_{size}@{have}")
            if i == 0:
                # Read after the first tier's list runs, so the baseline already holds their
                # transient high-water mark: the difference is what the extra tasks cost.
                time.sleep(settle)
                out.memory["rss_before_kib"] = server.rss_kib()
                out.memory["tasks_before"] = have
            if final:
                break
        extra = out.memory.get("tasks_after", 0) - out.memory.get("tasks_before", 0)
        if extra > 0:
            delta = (out.memory["rss_after_kib"] - out.memory["rss_before_kib"]) * 1024
            out.memory["bytes_per_task"] = delta / extra

    def run(self) -> Outcome:
        log("bare Starlette (the ceiling)")
        with running(bare_server()) as bare:
            self.reference(bare)
        log("the mock (fresh store)")
        with running(mock_server("mock")) as mock:
            self.mock_points(mock)
        log(f"the mock, list workloads with {', '.join(map(str, self.s.tiers))} tasks stored")
        with running(mock_server("mock-store")) as mock:
            self.mock_lists(mock)
        log("Prism")
        prism = prism_server(self.s.prism)
        try:
            with running(prism):
                self.reference(prism)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            self.out.prism_error = str(exc)
            log(f"Prism failed: {exc}")
        answered = all(("prism", k) in self.out.results for k in REFERENCE_KEYS)
        self.out.notes.extend(prism_load_notes(prism, answered))
        return self.out


PRISM_SEP = "\u203a"  # what Prism writes between a log line's time and its text


def prism_load_notes(prism: Server, answered: bool) -> list[str]:
    """What Prism said while loading the spec, and the distinct complaints it logged under load."""
    if not prism.log_path.exists() or not prism.ready_log_bytes:
        return []
    data = prism.log_path.read_bytes()
    start = data[: prism.ready_log_bytes].decode(errors="replace")
    after = data[prism.ready_log_bytes :].decode(errors="replace")
    problems = [
        " ".join(ln.split(PRISM_SEP, 1)[-1].split())
        for ln in start.splitlines()
        if any(w in ln.lower() for w in ("error", "warn", "invalid", "\u2716"))  # ✖
    ]
    notes = [
        "Prism loaded openapi/lipsync.yaml (OpenAPI 3.1.0)"
        + (f" and logged while starting: {'; '.join(problems)[:600]}" if problems else "")
        + (" and answered every workload." if answered else ".")
    ]
    counts: dict[str, int] = {}
    for ln in after.splitlines():
        msg = ln.split(PRISM_SEP, 1)[-1].strip()
        if msg:
            counts[msg] = counts.get(msg, 0) + 1
    for msg, n in sorted(counts.items(), key=lambda kv: -kv[1])[:4]:
        notes.append(f"Prism logged {n:,} times under load: `{' '.join(msg.split())[:240]}`")
    return notes


def violation_messages(header: str) -> str:
    """The messages of Prism's `sl-violations` header (a JSON list), or the header itself."""
    try:
        found = json.loads(header)
        return "; ".join(dict.fromkeys(str(v.get("message", v)) for v in found))
    except (ValueError, AttributeError):
        return header


# -- report ----------------------------------------------------------------------------------


def row_specs(out: Outcome) -> list[tuple[str, str, str]]:
    """(title, mock result key, reference result key) for every table row."""
    specs = [(title, key, key) for key, title in out.rows]
    for size in (30, 500):
        for n in out.tiers:
            specs.append(
                (f"query list, pageSize {size}, {n:,} tasks", f"list_{size}@{n}", f"list_{size}")
            )
    return specs


def cpu_table(out: Outcome) -> str:
    lines = ["| server | run | server cores | wrk cores | other cores |", "|---|---|---|---|---|"]
    for (name, key), r in out.results.items():
        lines.append(
            f"| {name} | {key} | {r.server_cores:.2f} | {r.wrk_cores:.2f} | {r.other_cores:.2f} |"
        )
    return "\n".join(lines)


def fmt_rps(r: Result | None) -> str:
    if r is None:
        return "n/a"
    flags = (" ⚠" if r.bad else "") + (" †" if r.disturbed else "")
    return f"{r.rps:,.0f}{flags}"


def fmt_lat(r: Result | None) -> str:
    return "n/a" if r is None else f"{r.p50_ms:.2f} / {r.p99_ms:.2f}"


def ratio(a: Result | None, b: Result | None) -> float | None:
    if a is None or b is None or b.rps == 0:
        return None
    return a.rps / b.rps


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def table(out: Outcome) -> str:
    head = (
        "| workload | bare req/s | bare p50 / p99 ms | mock req/s | mock p50 / p99 ms "
        "| Prism req/s | Prism p50 / p99 ms | mock/bare | mock/Prism |"
    )
    lines = [head, "|" + "---|" * 9]
    for title, mkey, rkey in row_specs(out):
        bare = out.results.get(("bare", rkey))
        mock = out.results.get(("mock", mkey)) or out.results.get(("mock-store", mkey))
        prism = out.results.get(("prism", rkey))
        lines.append(
            f"| {title} | {fmt_rps(bare)} | {fmt_lat(bare)} | {fmt_rps(mock)} | {fmt_lat(mock)} "
            f"| {fmt_rps(prism)} | {fmt_lat(prism)} | {fmt_ratio(ratio(mock, bare))} "
            f"| {fmt_ratio(ratio(mock, prism))} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: str
    met: bool | None  # None: could not be measured


def targets(out: Outcome) -> list[Target]:
    res = out.results
    found: list[Target] = []

    def mock_of(key: str) -> Result | None:
        return res.get(("mock", key)) or res.get(("mock-store", key))

    for key, floor in (("query_one", 0.6), ("create_b64", 0.5), ("create_url", 0.5)):
        x = ratio(mock_of(key), res.get(("bare", key)))
        title = dict(out.rows).get(key, key)
        found.append(
            Target(
                f"mock/bare >= {floor} on {title}", fmt_ratio(x), None if x is None else x >= floor
            )
        )
    for title, mkey, rkey in row_specs(out):
        x = ratio(mock_of(mkey), res.get(("prism", rkey)))
        ceiling = ratio(res.get(("bare", rkey)), res.get(("prism", rkey)))
        measured = fmt_ratio(x) + (f" (bare/Prism {ceiling:.2f})" if ceiling else "")
        found.append(Target(f"mock/Prism >= 3 on {title}", measured, None if x is None else x >= 3))
    lo, hi = (out.tiers[0], out.tiers[-1]) if out.tiers else (0, 0)
    for size in (30, 500):
        a, b = mock_of(f"list_{size}@{lo}"), mock_of(f"list_{size}@{hi}")
        for pct in ("p50", "p99"):
            name = f"list pageSize {size}: {pct} latency at {hi:,} tasks within 1.5x of {lo:,}"
            if a is None or b is None or lo == hi:
                found.append(Target(name, "n/a", None))
                continue
            before, after = getattr(a, f"{pct}_ms"), getattr(b, f"{pct}_ms")
            x = after / before
            found.append(Target(name, f"{x:.2f}x ({before:.2f} -> {after:.2f} ms)", x <= 1.5))
    per_task = out.memory.get("bytes_per_task")
    if per_task is None:
        found.append(Target("memory per stored task < 2 KB", "n/a", None))
    else:
        m = out.memory
        found.append(
            Target(
                "memory per stored task < 2 KB",
                f"{per_task:,.0f} B (VmRSS {m['rss_before_kib'] / 1024:.1f} MiB at "
                f"{int(m['tasks_before']):,} tasks -> {m['rss_after_kib'] / 1024:.1f} MiB at "
                f"{int(m['tasks_after']):,})",
                per_task < 2048,
            )
        )
    return found


def versions(s: Settings) -> list[str]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    from importlib.metadata import version

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    wrk_v = cmd(s.wrk, "-v").splitlines()
    return [
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')}, "
        f"starlette {version('starlette')}, httpx {version('httpx')}",
        f"Prism {cmd(s.prism, '--version') or '?'}, node {cmd('node', '--version')}, "
        f"{wrk_v[0] if wrk_v else 'wrk ?'}",
    ]


def report(s: Settings, out: Outcome, elapsed_s: float) -> str:
    ts = targets(out)
    mark = {True: "met", False: "**missed**", None: "not measured"}
    lines = [
        "# Load benchmark: the mock, a bare Starlette ceiling and Prism",
        "",
        f"Written by `make bench` (`bash bench/run.sh`){' with BENCH_QUICK=1' if s.quick else ''}"
        f" on {time.strftime('%Y-%m-%d %H:%M %Z')}; the run took {elapsed_s / 60:.1f} min. "
        "Numbers depend on the machine: compare ratios, not absolute rates.",
        "",
        "## Results",
        "",
        table(out),
        "",
        f"wrk `-t{s.threads} -c{s.connections} -d{s.duration_s}s` per workload"
        + (f", after a {s.warmup_s} s warm-up run" if s.warmup_s else "")
        + "; latencies are wrk's percentiles over the measured run. ⚠ marks a run with "
        "socket errors or non-2xx answers; † a noisy run: other processes used more than "
        f"{NOISY_CORES} of a core while the server got less than {STARVED_CORES} (see the CPU "
        "table). The bare app and Prism keep no tasks, so their list rows repeat one "
        "measurement per page size; Prism answers a list with one generated task whatever "
        "the page size, the bare app with `pageSize` copies of the example task.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(f"| {t.name} | {t.measured} | {mark[t.met]} |" for t in ts),
        "",
        f"Met {sum(t.met is True for t in ts)} of {len(ts)} targets. bare/Prism is the ceiling "
        "of mock/Prism: what a mock that cost nothing would reach on the same server stack.",
        "",
        "## How it was run",
        "",
        *(f"- {v}" for v in versions(s)),
        f"- run at priority {os.getpriority(os.PRIO_PROCESS, 0)} (BENCH_NICE), which the "
        "servers and wrk inherit, so that other work on the machine disturbs them less",
        "- every server on 127.0.0.1, a free port, one process; the two Python servers under "
        "the same uvicorn settings (1 worker, access log off, log level warning, default "
        "loop and HTTP implementation):",
        "  - bare: `uvicorn --factory --app-dir bench bare_app:create_app --workers 1 "
        "--no-access-log --log-level warning` (bench/bare_app.py: fixed JSON from the spec's "
        "examples, no auth, no validation, no state)",
        f"  - mock: `python -m mock_server --port P --log-level warning --seed 1 "
        f"--submit-delay {SUBMIT_DELAY_S} --processing-delay {PROCESSING_DELAY_S}` (full "
        "validation, auth and state); a fresh one for the point workloads, another for the "
        "list series",
        "  - Prism: `prism mock openapi/lipsync.yaml -p P -h 127.0.0.1 -v warn` (static "
        "examples; `-v warn` because its info level is a per-request log)",
        "- every request carries `Authorization: Bearer mock-api-key`; each workload is first "
        "sent once and must answer HTTP 200 with code 0. Sessions and the queried task are "
        "made on each server during setup; creates reuse one session with an empty "
        "external_task_id. The base64 body is `make_audio(MP3, 3000)`.",
        f"- before each run the driver waits up to {s.quiet_wait_s:g} s for the rest of the "
        f"machine to fall below {QUIET_CORES} busy cores, and repeats a noisy run (†) twice at "
        f"most, keeping the one in which the server got more CPU, within "
        f"{s.quiet_budget_s:g} s in all.",
        "- create then poll: each wrk thread creates a task, then polls the tasks it created "
        "round robin, one create in five requests.",
        f"- the list series seeds the store through HTTP creates with a sound URL (no admin "
        f"route exists for it), {s.seed_budget_s:g} s budget, tiers reached: "
        f"{', '.join(f'{n:,}' for n in out.tiers) or 'none'}. Memory: VmRSS of the mock "
        "process, read once every task is terminal, after the first tier and after the last.",
    ]
    if out.prism_error:
        lines.append(f"- Prism could not be measured: {out.prism_error}")
    lines += [f"- {n}" for n in out.notes]
    for key, v in out.prism_violations.items():
        lines.append(
            f"- Prism flags its own answer to `{key}` as violating the spec "
            f"(`sl-violations` header): {violation_messages(v)[:600]}"
        )
    lines += [
        "",
        "## CPU during each run",
        "",
        "Cores used, averaged over the measured run: the server process, wrk, and everything "
        "else on the machine (from /proc/stat). A single-threaded server near 1.00 is the "
        "bottleneck; a high last column means the figures of that run are noisy.",
        "",
        cpu_table(out),
        "",
    ]
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _raise_priority(s: Settings) -> None:
    """Servers and wrk inherit a higher priority than the rest of the (shared) machine.

    With autogroup scheduling the kernel first shares CPU between sessions, so the session's
    nice (/proc/self/autogroup) matters as much as the process's own."""
    if not s.nice:
        return
    try:
        os.nice(s.nice)
        autogroup = Path("/proc/self/autogroup")
        if autogroup.exists():
            # The session outlives the run: give it its old nice back on the way out.
            before = autogroup.read_text().split()[-1]
            autogroup.write_text(str(s.nice))
            atexit.register(autogroup.write_text, before)
    except OSError as exc:  # not root: run at the normal priority, and say so
        log(f"could not change priority by {s.nice}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    s = settings_from(argv)
    OUT.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # so that the servers are stopped on the way out
    _raise_priority(s)
    t0 = time.monotonic()
    try:
        out = Bench(s).run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    text = report(s, out, time.monotonic() - t0)
    s.results_path.write_text(text)
    print(table(out))
    print()
    for t in targets(out):
        print(
            f"{'MET   ' if t.met else 'MISSED' if t.met is False else 'N/A   '} {t.name}: "
            f"{t.measured}"
        )
    print(f"\nwrote {s.results_path.relative_to(ROOT)}")
    # Last, a long seeded contract verify against a fresh mock, added to the same file; a failure
    # it reports is the run's failure.
    long_verify = [PY, str(BENCH / "long_verify.py"), "--results-file", str(s.results_path)]
    try:
        return subprocess.run(long_verify, cwd=ROOT, check=False).returncode
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
