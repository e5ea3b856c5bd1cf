"""The import graphs: no circle inside contracts/ or mock_server/, and only the mock modules the
kit may use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
# ARCHITECTURE.md: what contracts/ may import of the mock (of the domain only its value types).
ALLOWED_MOCK = {
    "mock_server",
    "mock_server.spec",
    "mock_server.auth",
    "mock_server.config",
    "mock_server.media",
    "mock_server.testing",
    "mock_server.admin_client",
    "mock_server.urls",
    "mock_server.domain.errors",
    "mock_server.domain.clock",
    "mock_server.proxy.recording",  # the recording format, read by `drift`
}
MAX_LINES = 520


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = CONTRACTS) -> dict[str, Path]:
    return {module_name(p): p for p in package.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``name`` imports (a ``from package import submodule`` names the submodule)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


class TestImportGraph:
    @pytest.mark.parametrize("package", ["contracts", "mock_server"])
    def test_no_circle_inside(self, package: str) -> None:
        """No module imports, directly or not (type-checking imports included), a module that
        imports it back."""
        mods = modules(ROOT / package)
        known = set(mods)
        graph = {
            n: {m for m in imports(n, p, known) if m in known and m != n} for n, p in mods.items()
        }
        # A package's __init__ re-exports its modules: edges into a package are edges into
        # what it re-exports, so only module -> module edges can close a real circle.
        packages = {n for n, p in mods.items() if p.name == "__init__.py"}
        edges = {n: targets - packages for n, targets in graph.items() if n not in packages}
        state: dict[str, int] = {}
        circles: list[list[str]] = []

        def visit(node: str, trail: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(edges.get(node, ())):
                if state.get(nxt) == 1:
                    circles.append([*trail[trail.index(nxt) :], nxt])
                elif nxt not in state:
                    visit(nxt, [*trail, nxt])
            state[node] = 2

        for start in sorted(edges):
            if start not in state:
                visit(start, [start])
        print(f"\n{len(mods)} modules, {sum(map(len, edges.values()))} module edges")
        assert circles == []

    def test_only_allowed_mock_modules(self) -> None:
        """contracts/ uses the spec, auth, config, media, testing, admin client and URL helpers
        of the mock, and of the domain only its value types."""
        mods = modules()
        used = {
            m
            for n, p in mods.items()
            for m in imports(n, p, set(mods))
            if m == "mock_server" or m.startswith("mock_server.")
        }
        assert used <= ALLOWED_MOCK, used - ALLOWED_MOCK

    def test_verify_modules_stay_small(self) -> None:
        """No module of the verify package is over ~500 lines."""
        sizes = {
            n: len(p.read_text(encoding="utf-8").splitlines())
            for n, p in modules().items()
            if n.startswith("contracts.verify")
        }
        print(f"\nlargest verify module: {max(sizes.items(), key=lambda kv: kv[1])}")
        assert max(sizes.values()) <= MAX_LINES, sizes
