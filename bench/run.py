"""Load benchmark: the mock beside its peers, in one run, in alternating rounds; RESULTS.md.

Run through `make bench` (bench/run.sh installs wrk, Java, Prism, WireMock, Mockoon and py-spy
first, see bench/install-peers.sh). Every server is started here on a free loopback port and
stays up for the whole run: the bare Starlette app on the mock's server stack (the reference), the
mock, Prism, WireMock and Mockoon CLI, with equivalent stubs (bench/peers.py). Each round sends
every workload to every server once, in an order rotated from round to round; a figure is the
median of the rounds, with their min-max beside it. Then: one connection of sequential
requests (p50/p99, how a test suite calls a mock), the list at 1k and 100k stored tasks (two
mocks side by side, alternating too) with memory per stored task, and the time to a ready mock.
BENCH_QUICK=1 makes a smoke run (bench/out/RESULTS.quick.md).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import dataclasses
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
PEERS = BENCH / ".peers"
LUA = BENCH / "lua" / "request.lua"
PY = sys.executable
sys.path.insert(0, str(ROOT))

from mock_server.auth import make_token  # noqa: E402
from mock_server.config import DEFAULT_ACCESS_KEY, DEFAULT_API_KEY, DEFAULT_SECRET_KEY  # noqa: E402

sys.path.insert(0, str(BENCH))
import peers  # noqa: E402

TASKS = "/v1/videos/advanced-lip-sync"
VIDEO_URL = "https://example.com/videos/speaker.mp4"
SOUND_URL = "https://example.com/audio/speech-6s.mp3"
SUBMIT_DELAY_S, PROCESSING_DELAY_S = 1, 3
JWT = "Bearer " + make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, lifetime_s=1800)
KEY = f"Bearer {DEFAULT_API_KEY}"


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    rounds: int
    duration_s: int
    threads: int
    connections: int
    tiers: tuple[int, int]
    nice: int
    wrk: str

    @property
    def results_path(self) -> Path:
        return OUT / "RESULTS.quick.md" if self.quick else BENCH / "RESULTS.md"


def settings_from(argv: Sequence[str] | None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--wrk", default="wrk")
    args = p.parse_args(argv)
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    env = os.environ.get
    return Settings(
        quick=quick,
        rounds=int(env("BENCH_ROUNDS", "2" if quick else "5")),
        duration_s=int(env("BENCH_DURATION", "1")),
        threads=int(env("BENCH_THREADS", "1")),
        connections=int(env("BENCH_CONNECTIONS", "32")),
        tiers=(1_000, 5_000) if quick else (1_000, 100_000),
        nice=int(env("BENCH_NICE", "-10")),
        wrk=args.wrk,
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
    ready_timeout_s: float = 90.0
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0  # from spawn until the port took a connection

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log(f"starting {self.name}: {' '.join(self.argv)}")
        t0 = time.monotonic()
        with (OUT / f"{self.name}.log").open("wb") as out:
            # Same session as the driver, so that it runs at the driver's priority.
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < self.ready_timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                self.started_s = time.monotonic() - t0
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {self.ready_timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
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


def mock_server(name: str) -> Server:
    port = free_port()
    argv = [PY, "-m", "mock_server", "--port", str(port), "--log-level", "warning", "--seed", "1"]
    argv += ["--submit-delay", str(SUBMIT_DELAY_S), "--processing-delay", str(PROCESSING_DELAY_S)]
    return Server(name, argv, port)


def bare_server() -> Server:
    port = free_port()
    # The mock's stack: uvicorn on httptools and uvloop, one worker, no access log.
    argv = [PY, "-m", "uvicorn", "--factory", "--app-dir", str(BENCH), "bare_app:create_app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop"]
    argv += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    return Server("bare", argv, port)


def prism_server() -> Server:
    port = free_port()
    prism = str(PEERS / "node_modules/.bin/prism")
    argv = [prism, "mock", "openapi/lipsync.yaml", "-p", str(port), "-h", "127.0.0.1"]
    return Server("prism", [*argv, "-v", "warn"], port)


def wiremock_server() -> Server:
    port = free_port()
    jar = next((PEERS / "node_modules/wiremock/build").glob("wiremock-standalone-*.jar"))
    root = peers.write_wiremock(OUT / "wiremock")
    argv = ["java", "-jar", str(jar), "--port", str(port), "--bind-address", "127.0.0.1"]
    argv += ["--root-dir", str(root), "--disable-banner"]
    return Server("wiremock", argv, port)


def mockoon_server() -> Server:
    port = free_port()
    data = peers.write_mockoon(OUT / "mockoon.json", port)
    cli = str(PEERS / "node_modules/.bin/mockoon-cli")
    argv = [cli, "start", "-d", str(data), "-p", str(port), "-l", "127.0.0.1", "-X"]
    return Server("mockoon", [*argv, "--disable-admin-api"], port)


# -- workloads and measurements ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    title: str
    method: str
    path: str
    body_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Cell:
    """One thing measured each round: a server, a workload, an Authorization header."""

    server: Server
    workload: Workload
    auth: str  # "jwt" or "key"
    connections: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.server.name, self.workload.key, self.auth, self.connections)


@dataclass(slots=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cores: float


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():  # every thread (Java, Node)
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total


def run_wrk(s: Settings, cell: Cell, duration_s: int) -> Sample:
    w = cell.workload
    conns = cell.connections
    threads = min(s.threads, conns)
    cmd = [s.wrk, f"-t{threads}", f"-c{conns}", f"-d{duration_s}s", "--timeout", "10s"]
    cmd += ["-s", str(LUA), cell.server.url, "--", w.method, w.path]
    if w.body_file is not None:
        cmd.append(str(w.body_file))
    env = {**os.environ, "BENCH_AUTH": JWT if cell.auth == "jwt" else KEY}
    assert cell.server.proc is not None
    pid = cell.server.proc.pid
    t0, ticks0 = time.monotonic(), process_ticks(pid)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, env=env)
    wall = time.monotonic() - t0
    cores = (process_ticks(pid) - ticks0) / CLK_TCK / wall
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {cell.key}: {proc.stderr.strip()[:300]}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    lat = raw["latency_us"]
    return Sample(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=lat["p50"] / 1000,
        p99_ms=lat["p99"] / 1000,
        errors=sum(raw["errors"].values()),
        server_cores=cores,
    )


def preflight(cell: Cell) -> None:
    """One request exactly as wrk sends it: a workload must not measure errors."""
    w = cell.workload
    headers = {"Authorization": JWT if cell.auth == "jwt" else KEY, "Accept": "application/json"}
    body = w.body_file.read_bytes() if w.body_file else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    r = httpx.request(w.method, cell.server.url + w.path, headers=headers, content=body, timeout=30)
    ok = r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json")
    if not ok or r.json().get("code") != 0:
        raise RuntimeError(f"{cell.key}: HTTP {r.status_code} {r.text[:300]}")


@dataclass
class Figure:
    samples: list[Sample] = field(default_factory=list)

    def med(self, attr: str) -> float:
        return statistics.median(getattr(x, attr) for x in self.samples)

    def spread(self, attr: str) -> tuple[float, float]:
        values = [getattr(x, attr) for x in self.samples]
        return min(values), max(values)

    @property
    def errors(self) -> int:
        return sum(x.errors for x in self.samples)


def rounds(s: Settings, cells: list[Cell], label: str, figures: dict[Any, Figure]) -> None:
    for cell in cells:
        preflight(cell)
    for r in range(s.rounds):
        shift = (r * 7) % len(cells)  # a different order each round
        order = cells[shift:] + cells[:shift]
        if r % 2:
            order.reverse()
        for cell in order:
            sample = run_wrk(s, cell, s.duration_s)
            figures.setdefault(cell.key, Figure()).samples.append(sample)
        log(f"  {label}: round {r + 1}/{s.rounds} done")


def write_body(name: str, body: dict[str, Any]) -> Path:
    path = OUT / f"body-{name}.json"
    path.write_bytes(json.dumps(body, separators=(",", ":")).encode())
    return path


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


WORKLOAD_TITLES = {
    "query_one": "query one task",
    "list_30": "query list, pageSize 30",
    "create_b64": "create, base64 audio (3 s MP3)",
    "create_url": "create, sound URL",
    "identify_face": "identify-face",
}


def workloads(mock: Server) -> dict[str, Workload]:
    """A session and a task on the mock; the same requests go to every server."""
    from mock_server import media

    auth = {"Authorization": KEY}
    r = httpx.post(
        mock.url + "/v1/videos/identify-face", headers=auth, json={"video_url": VIDEO_URL}
    )
    r.raise_for_status()
    session_id = r.json()["data"]["session_id"]
    audio = media.make_audio(media.MediaFormat.MP3, 3000)
    b64 = base64.b64encode(audio).decode()
    url_file = write_body("create-url", create_body(session_id, SOUND_URL, 3000))
    b64_file = write_body("create-b64", create_body(session_id, b64, 3000))
    ident_file = write_body("identify", {"video_url": VIDEO_URL})
    r = httpx.post(mock.url + TASKS, headers=auth, content=url_file.read_bytes())
    r.raise_for_status()
    task_id = r.json()["data"]["task_id"]
    ws = [
        Workload("query_one", WORKLOAD_TITLES["query_one"], "GET", f"{TASKS}/{task_id}"),
        Workload("list_30", WORKLOAD_TITLES["list_30"], "GET", f"{TASKS}?pageNum=1&pageSize=30"),
        Workload("create_b64", WORKLOAD_TITLES["create_b64"], "POST", TASKS, b64_file),
        Workload("create_url", WORKLOAD_TITLES["create_url"], "POST", TASKS, url_file),
        Workload(
            "identify_face",
            WORKLOAD_TITLES["identify_face"],
            "POST",
            "/v1/videos/identify-face",
            ident_file,
        ),
    ]
    return {w.key: w for w in ws}


# -- the list series: two mocks, 1k and 100k tasks -------------------------------------------


async def _seed(port: int, body: bytes, count: int, conns: int = 16) -> int:
    """Creates `count` tasks over raw keep-alive connections (cheaper than a client library)."""
    head = (
        f"POST {TASKS} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    left = count
    created = 0

    async def worker() -> None:
        nonlocal left, created
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left > 0:
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
                    raise RuntimeError(f"seeding failed: {status_head[:60]!r} {payload[:200]!r}")
                created += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return created


# -- time to a ready mock ----------------------------------------------------------------------


def cli_ready_ms() -> float:
    """The CLI process, from spawn until /openapi.json answers 200."""
    port = free_port()
    argv = [str(Path(PY).parent / "lipsync-mock"), "--port", str(port), "--log-level", "warning"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=1) as client:
            while time.perf_counter() - t0 < 30:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200:
                        return (time.perf_counter() - t0) * 1000
                time.sleep(0.002)
        raise RuntimeError("the CLI mock did not answer within 30 s")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def fixture_ready_ms() -> tuple[list[float], float]:
    """The `lipsync_mock` fixture (bench/fixture_ready.py), and the whole pytest process."""
    argv = [str(Path(PY).parent / "pytest"), "-q", "-s", "-n", "0", "-p", "no:cacheprovider"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*argv, "bench/fixture_ready.py"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    wall = (time.perf_counter() - t0) * 1000
    found = [
        float(x.split()[1]) for x in proc.stdout.splitlines() if x.startswith("FIXTURE_READY_MS")
    ]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"fixture_ready failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return found, wall


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    load: dict[Any, Figure] = field(default_factory=dict)
    one_conn: dict[Any, Figure] = field(default_factory=dict)
    lists: dict[Any, Figure] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    tiers: tuple[int, int] = (0, 0)
    memory: dict[str, float] = field(default_factory=dict)
    cli_ready: list[float] = field(default_factory=list)
    fixture_ready: list[float] = field(default_factory=list)
    fixture_wall_ms: float = 0.0
    versions: list[str] = field(default_factory=list)


PEER_NAMES = ("prism", "wiremock", "mockoon")
POINT_KEYS = ("query_one", "list_30", "create_b64", "create_url", "identify_face")


def run(s: Settings) -> Outcome:
    out = Outcome()
    servers = [bare_server(), mock_server("mock"), prism_server(), wiremock_server()]
    servers.append(mockoon_server())
    out.servers = servers
    try:
        for server in servers:
            server.start()
        mock = servers[1]
        ws = workloads(mock)
        # Peers answer with whatever JWT-shaped token they get; the mock both ways.
        cells = [
            Cell(server, ws[k], auth, s.connections)
            for k in POINT_KEYS
            for server in servers
            for auth in (("jwt", "key") if server.name == "mock" else ("jwt",))
        ]
        log("warm-up round (JIT of the JVM and V8, caches of every server)")
        warm = dataclasses.replace(s, rounds=1)
        rounds(warm, cells, "warm-up", {})
        log(f"load: {len(cells)} cells x {s.rounds} rounds x {s.duration_s} s")
        rounds(s, cells, "load", out.load)
        one = [
            Cell(server, ws[k], auth, 1)
            for k in ("query_one", "create_url")
            for server in servers
            for auth in (("jwt", "key") if server.name == "mock" else ("jwt",))
        ]
        log("one connection, sequential requests")
        rounds(s, one, "one connection", out.one_conn)
        out.versions = versions(s)
    finally:
        for server in servers:
            server.stop()
    list_series(s, out, ws["create_url"].body_file)
    log("time to a ready mock")
    out.cli_ready = [cli_ready_ms() for _ in range(5)]
    out.fixture_ready, out.fixture_wall_ms = fixture_ready_ms()
    return out


def list_series(s: Settings, out: Outcome, url_body: Path | None) -> None:
    assert url_body is not None
    small, big = mock_server("mock-1k"), mock_server("mock-100k")
    body = url_body.read_text()
    try:
        for server, tier in ((small, s.tiers[0]), (big, s.tiers[1])):
            server.start()
            r = httpx.post(
                server.url + "/v1/videos/identify-face",
                headers={"Authorization": KEY},
                json={"video_url": VIDEO_URL},
            )
            session_id = r.json()["data"]["session_id"]
            data = json.loads(body)
            data["session_id"] = session_id
            t0 = time.monotonic()
            created = asyncio.run(_seed(server.port, json.dumps(data).encode(), tier))
            log(f"  seeded {server.name}: {created} tasks in {time.monotonic() - t0:.1f} s")
        time.sleep(SUBMIT_DELAY_S + PROCESSING_DELAY_S + 1.0)  # every task terminal
        w = Workload("list_30", WORKLOAD_TITLES["list_30"], "GET", f"{TASKS}?pageNum=1&pageSize=30")
        cells = [Cell(x, w, "jwt", s.connections) for x in (small, big)]
        rounds(s, cells, "list tiers", out.lists)
        rss_small, rss_big = small.rss_kib(), big.rss_kib()
        out.tiers = s.tiers
        out.memory = {
            "rss_small_kib": rss_small,
            "rss_big_kib": rss_big,
            "bytes_per_task": (rss_big - rss_small) * 1024 / (s.tiers[1] - s.tiers[0]),
        }
    finally:
        small.stop()
        big.stop()


# -- the report ----------------------------------------------------------------------------------


def fmt_fig(f: Figure | None) -> str:
    if f is None:
        return "n/a"
    lo, hi = f.spread("rps")
    warn = " ⚠" if f.errors else ""
    return f"{f.med('rps'):,.0f} ({lo:,.0f}-{hi:,.0f}){warn}"


def best_peer(out: Outcome, key: str) -> tuple[str, float]:
    found = [(n, out.load[(n, key, "jwt", 32)].med("rps")) for n in PEER_NAMES]
    return max(found, key=lambda x: x[1])


def lc(out: Outcome, name: str, key: str, auth: str = "jwt", conns: int = 32) -> Figure | None:
    table = out.load if conns != 1 else out.one_conn
    return table.get((name, key, auth, conns))


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: str
    met: bool


def targets(out: Outcome) -> list[Target]:
    found = []
    goals = {"query_one": (1.5, 0.6), "create_b64": (1.0, 0.5), "create_url": (1.0, 0.5)}
    goals["identify_face"] = (1.0, 0.5)
    for key, (peer_goal, bare_goal) in goals.items():
        mock = lc(out, "mock", key)
        bare = lc(out, "bare", key)
        assert mock is not None and bare is not None
        name, peer = best_peer(out, key)
        x = mock.med("rps") / peer
        found.append(
            Target(
                f"{WORKLOAD_TITLES[key]}: mock (JWT) >= {peer_goal}x the best peer",
                f"{x:.2f}x ({name}: {peer:,.0f} req/s)",
                x >= peer_goal,
            )
        )
        y = mock.med("rps") / bare.med("rps")
        found.append(
            Target(
                f"{WORKLOAD_TITLES[key]}: mock (JWT) >= {bare_goal}x bare",
                f"{y:.2f}x",
                y >= bare_goal,
            )
        )
    lo, hi = out.tiers
    a, b = (
        out.lists.get(("mock-1k", "list_30", "jwt", 32)),
        out.lists.get(("mock-100k", "list_30", "jwt", 32)),
    )
    if a is not None and b is not None:
        x = a.med("rps") / b.med("rps")
        p = b.med("p50_ms") / a.med("p50_ms")
        found.append(
            Target(
                f"list pageSize 30 at {hi:,} tasks within 1.5x of {lo:,}",
                f"req/s {a.med('rps'):,.0f} -> {b.med('rps'):,.0f} ({x:.2f}x); "
                f"p50 {a.med('p50_ms'):.2f} -> {b.med('p50_ms'):.2f} ms ({p:.2f}x)",
                x <= 1.5 and p <= 1.5,
            )
        )
    per = out.memory.get("bytes_per_task")
    if per is not None:
        found.append(
            Target(
                "memory per stored task < 2 KB",
                f"{per:,.0f} B (VmRSS {out.memory['rss_small_kib'] / 1024:.1f} MiB at {lo:,} "
                f"-> {out.memory['rss_big_kib'] / 1024:.1f} MiB at {hi:,})",
                per < 2048,
            )
        )
    one = lc(out, "mock", "query_one", "jwt", 1)
    if one is not None:
        found.append(
            Target(
                "one connection, query one: mock (JWT) p50 < 0.5 ms",
                f"p50 {one.med('p50_ms'):.3f} ms, p99 {one.med('p99_ms'):.3f} ms",
                one.med("p50_ms") < 0.5,
            )
        )
    return found


def load_table(out: Outcome) -> str:
    cols = [("bare", "jwt"), ("mock", "jwt"), ("mock", "key")]
    cols += [(n, "jwt") for n in PEER_NAMES]
    names = {
        "bare": "bare Starlette",
        "prism": "Prism",
        "wiremock": "WireMock",
        "mockoon": "Mockoon",
    }
    head = [names.get(n, f"mock, {'JWT' if a == 'jwt' else 'API key'}") for n, a in cols]
    lines = [
        "| workload | " + " | ".join(head) + " | mock/best peer | mock/bare |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for key in POINT_KEYS:
        cells = [fmt_fig(lc(out, n, key, a)) for n, a in cols]
        mock, bare = lc(out, "mock", key), lc(out, "bare", key)
        name, peer = best_peer(out, key)
        assert mock is not None and bare is not None
        lines.append(
            f"| {WORKLOAD_TITLES[key]} | "
            + " | ".join(cells)
            + f" | {mock.med('rps') / peer:.2f} ({name})"
            + f" | {mock.med('rps') / bare.med('rps'):.2f} |"
        )
    return "\n".join(lines)


def latency_table(out: Outcome) -> str:
    lines = [
        "| workload | server | p50 ms | p99 ms | req/s | p50 min-max ms |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("query_one", "create_url"):
        for server in ("bare", "mock", "prism", "wiremock", "mockoon"):
            for auth in ("jwt", "key") if server == "mock" else ("jwt",):
                f = out.one_conn.get((server, key, auth, 1))
                if f is None:
                    continue
                lo, hi = f.spread("p50_ms")
                label = (
                    f"mock, {'JWT' if auth == 'jwt' else 'API key'}" if server == "mock" else server
                )
                lines.append(
                    f"| {WORKLOAD_TITLES[key]} | {label} | {f.med('p50_ms'):.3f} "
                    f"| {f.med('p99_ms'):.3f} | {f.med('rps'):,.0f} | {lo:.3f}-{hi:.3f} |"
                )
    return "\n".join(lines)


def cpu_table(out: Outcome) -> str:
    lines = ["| server | " + " | ".join(POINT_KEYS) + " |", "|---" * (len(POINT_KEYS) + 1) + "|"]
    for server in ("bare", "mock", "prism", "wiremock", "mockoon"):
        row = [
            f"{f.med('server_cores'):.2f}" if (f := lc(out, server, k)) else "n/a"
            for k in POINT_KEYS
        ]
        lines.append(f"| {server} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def versions(s: Settings) -> list[str]:
    def cmd(*argv: str) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
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
    pkg = json.loads((PEERS / "node_modules/wiremock/package.json").read_text())["version"]
    mockoon = json.loads((PEERS / "node_modules/@mockoon/cli/package.json").read_text())["version"]
    return [
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')}, "
        f"httptools {version('httptools')}, uvloop {version('uvloop')}, "
        f"starlette {version('starlette')}",
        f"Prism {cmd(str(PEERS / 'node_modules/.bin/prism'), '--version')}, WireMock {pkg} "
        f"on {cmd('java', '-version')}, Mockoon CLI {mockoon}, node {cmd('node', '--version')}",
        cmd(s.wrk, "-v"),
    ]


def report(s: Settings, out: Outcome, elapsed_s: float) -> str:
    ts = targets(out)
    lines = [
        "# Load benchmark: the mock beside its peers, in one run",
        "",
        f"Written by `make bench`{' with BENCH_QUICK=1' if s.quick else ''} on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; the run took {elapsed_s / 60:.1f} min. Compare "
        "ratios, not absolute rates: they depend on the machine.",
        "",
        "## Throughput (req/s, median of the rounds, min-max in brackets)",
        "",
        load_table(out),
        "",
        f"wrk `-t{s.threads} -c{s.connections} -d{s.duration_s}s`, {s.rounds} rounds after one "
        "warm-up round; every server stays up for the whole run and each round visits every "
        "(server, workload, token) cell once, in an order rotated and reversed from round to "
        "round, so that a disturbance of the shared machine lands on every server alike. The "
        "mock's JWT is one AK/SK token (HS256, exp = now + 1800 s) reused for the run, as "
        "Kling clients do; the peers are sent the same JWT and check nothing. ⚠ marks a "
        "figure with socket errors or non-2xx answers.",
        "",
        "## Targets (the mock with a JWT)",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(f"| {t.name} | {t.measured} | {'met' if t.met else '**missed**'} |" for t in ts),
        "",
        f"Met {sum(t.met for t in ts)} of {len(ts)}. bench/PROFILING.md explains the misses.",
        "",
        "## One connection, sequential requests (how a test suite calls a mock)",
        "",
        latency_table(out),
        "",
        f"wrk `-t1 -c1 -d{s.duration_s}s`, {s.rounds} alternating rounds, medians of each "
        "round's percentiles.",
        "",
        "## List at two store sizes, memory per stored task",
        "",
    ]
    lo, hi = out.tiers
    for tier, name in ((lo, "mock-1k"), (hi, "mock-100k")):
        f = out.lists[(name, "list_30", "jwt", 32)]
        lines.append(
            f"- {tier:,} tasks: {fmt_fig(f)} req/s, p50 {f.med('p50_ms'):.2f} ms, "
            f"p99 {f.med('p99_ms'):.2f} ms"
        )
    lines += [
        f"- two mocks side by side, seeded over HTTP with creates by URL, every task terminal, "
        f"then {s.rounds} alternating rounds of `pageSize=30` with a JWT. Memory: VmRSS of the "
        "100k mock minus that of the 1k mock, over the difference in tasks.",
        "",
        "## Time to a ready mock",
        "",
        f"- CLI (`lipsync-mock --port P`, spawn until `/openapi.json` answers 200): median "
        f"{statistics.median(out.cli_ready):.0f} ms (min-max {min(out.cli_ready):.0f}-"
        f"{max(out.cli_ready):.0f} ms, {len(out.cli_ready)} runs)",
        f"- pytest fixture `lipsync_mock` (request until `/openapi.json` answers, in one pytest "
        f"process, bench/fixture_ready.py): median {statistics.median(out.fixture_ready):.1f} ms "
        f"(min-max {min(out.fixture_ready):.1f}-{max(out.fixture_ready):.1f} ms, "
        f"{len(out.fixture_ready)} tests); the whole pytest process with its start-up: "
        f"{out.fixture_wall_ms:.0f} ms",
        "- each server of this run, spawn until its port took a connection: "
        + ", ".join(f"{x.name} {x.started_s:.1f} s" for x in out.servers),
        "",
        "## How it was run",
        "",
        *(f"- {v}" for v in out.versions),
        f"- priority {os.getpriority(os.PRIO_PROCESS, 0)} (BENCH_NICE), inherited by the "
        "servers and wrk; every server one process on 127.0.0.1:",
        "  - bare: `uvicorn --factory bare_app:create_app --http httptools --loop uvloop "
        "--workers 1 --no-access-log` (bench/bare_app.py: the spec's example JSON, no auth, "
        "no validation, no state)",
        f"  - mock: `python -m mock_server --port P --log-level warning --seed 1 --submit-delay "
        f"{SUBMIT_DELAY_S} --processing-delay {PROCESSING_DELAY_S}` (its own uvicorn, "
        "httptools, uvloop; full auth, validation, media probes, state, journal)",
        "  - Prism: `prism mock openapi/lipsync.yaml -v warn` (the spec's examples)",
        "  - WireMock: `java -jar wiremock-standalone.jar --root-dir bench/out/wiremock "
        "--disable-banner` (default journal and threads; stubs from bench/peers.py)",
        "  - Mockoon: `mockoon-cli start -d bench/out/mockoon.json -X --disable-admin-api` "
        "(templating off; stubs from bench/peers.py)",
        "- the same request files go to every server: a session and a task are made on the "
        "mock first; creates reuse that session with an empty external_task_id; the base64 "
        "body is `make_audio(MP3, 3000)`. Each cell is first sent once and must answer 200 "
        "with code 0.",
        "",
        "## Server CPU (cores, median of the rounds)",
        "",
        "WireMock and Mockoon run several threads: a figure above 1 is a server using both "
        "cores (wrk takes part of the second).",
        "",
        cpu_table(out),
        "",
    ]
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _raise_priority(s: Settings) -> None:
    """Servers and wrk inherit a higher priority than the rest of the (shared) machine."""
    if not s.nice:
        return
    try:
        os.nice(s.nice)
        autogroup = Path("/proc/self/autogroup")
        if autogroup.exists():
            before = autogroup.read_text().split()[-1]
            autogroup.write_text(str(s.nice))
            atexit.register(autogroup.write_text, before)
    except OSError as exc:
        log(f"could not change priority by {s.nice}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    s = settings_from(argv)
    OUT.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    _raise_priority(s)
    t0 = time.monotonic()
    try:
        out = run(s)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    text = report(s, out, time.monotonic() - t0)
    s.results_path.write_text(text)
    print(load_table(out))
    print()
    for t in targets(out):
        print(f"{'MET   ' if t.met else 'MISSED'} {t.name}: {t.measured}")
    print(f"\nwrote {s.results_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
