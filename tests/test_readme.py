"""The README is executed: its shell blocks, pasted in order in a fresh shell, work as it says.

Every ```sh block runs, in order, in one shell session (variables carry over, as when pasted),
against a real mock started like `make run` on a free port. A line `# -> TEXT` states what the
command before it prints: each piece of TEXT between `...` must appear in the block's output, in
order. A block that cannot run here (it starts a server, bills a real account) is preceded by
`<!-- not run: REASON -->`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_process import Server, StartServer, start_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK_TIMEOUT_S = 180.0
FENCE = re.compile(
    r"^(?:<!-- not run: (?P<reason>[^>]+?) -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
    re.M | re.S,
)
__all__ = ["start_server"]  # the fixture, imported so pytest finds it here


@dataclass(frozen=True, slots=True)
class Block:
    line: int
    lang: str
    body: str
    not_run: str | None

    def expected(self) -> list[str]:
        return [m.group(1).strip() for m in re.finditer(r"#\s*->\s*(.+)$", self.body, re.M)]


def readme_blocks(text: str) -> list[Block]:
    return [
        Block(text.count("\n", 0, m.start()) + 1, m["lang"], m["body"], m["reason"])
        for m in FENCE.finditer(text)
    ]


def shell_blocks() -> list[Block]:
    return [b for b in readme_blocks(README.read_text()) if b.lang == "sh"]


def assert_says(block: Block, output: str) -> None:
    """Each expected line's pieces appear in the output, in order."""
    position = 0
    for expected in block.expected():
        for piece in (p.strip() for p in expected.split("...")):
            if not piece:
                continue
            found = output.find(piece, position)
            assert found >= 0, (
                f"README line {block.line}: expected {piece!r} (from `# -> {expected}`) "
                f"after position {position} of the output:\n{output}"
            )
            position = found + len(piece)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A folder that looks like the repository (links) so the README's files land in tmp."""
    work = tmp_path / "repo"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "__pycache__"):
            (work / entry.name).symlink_to(entry)
    yield work


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """A new terminal's environment: no venv on PATH, no proxies, nothing from this pytest."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p != venv_bin]
    return {
        "PATH": ":".join(path),
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a block in its own process group, so a block that hangs takes its children along."""
    process = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        out += f"\n[timed out after {BLOCK_TIMEOUT_S} s]"
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


class TestReadme:
    def test_first_commands_are_make_run_and_make_test(self) -> None:
        """The README opens with `make run` and `make test`, in that order."""
        first = shell_blocks()[0]
        commands = [ln.split("#")[0].strip() for ln in first.body.splitlines()]
        assert [c for c in commands if c][:2] == ["make run", "make test"]

    def test_python_blocks_compile(self) -> None:
        """Every Python example of the README is valid Python."""
        blocks = [b for b in readme_blocks(README.read_text()) if b.lang == "python"]
        assert blocks
        for block in blocks:
            compile(block.body, f"README.md:{block.line}", "exec")

    def test_blocks_not_run_say_why(self) -> None:
        """Only the blocks that start servers or reach the real service are left out."""
        blocks = shell_blocks()
        skipped = [b for b in blocks if b.not_run]
        assert all(b.not_run and len(b.not_run) > 10 for b in skipped)
        assert len(skipped) <= 4, [b.line for b in skipped]
        assert len(blocks) - len(skipped) >= 8

    @pytest.mark.slow
    def test_walk_through_pasted_in_order(
        self, start_server: StartServer, workdir: Path, tmp_path: Path
    ) -> None:
        """Each shell block, pasted in order in one fresh shell, exits 0 and prints what it says."""
        server: Server = start_server([])  # what `make run` starts: the defaults
        port = server.base_url.rsplit(":", 1)[1]
        state = tmp_path / "shell-state"
        env = fresh_env(tmp_path)
        (tmp_path / "home").mkdir()
        timings: list[tuple[int, float]] = []
        for block in shell_blocks():
            if block.not_run:
                continue
            body = block.body.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            script = (
                f'set -a\n[ -f "{state}" ] && . "{state}"\nset -e -o pipefail\n'
                f'{body}\nset +e\nexport -p > "{state}"\ndeclare -f >> "{state}"\n'
            )
            started = time.perf_counter()
            done = run_bash(script, workdir, env)
            timings.append((block.line, time.perf_counter() - started))
            output = done.stdout
            assert done.returncode == 0, (
                f"README block at line {block.line} exited {done.returncode}:\n{output}\n"
                f"mock log:\n{server.log.read_text()[-3000:]}"
            )
            assert_says(block, output)
            if os.environ.get("README_TEST_SHOW"):
                print(f"--- README line {block.line}:\n{output[-1500:]}")
        total = sum(s for _, s in timings)
        print(
            f"\nREADME: {len(timings)} shell blocks run in {total:.1f} s: "
            + ", ".join(f"line {line} {s:.1f} s" for line, s in timings)
        )
        assert len(timings) >= 8
