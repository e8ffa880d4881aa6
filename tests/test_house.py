"""The house rules hold themselves: one source for both clients, small modules and
classes, and the import contracts in pyproject.toml (layers, no circles)."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ceylon_redis"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def test_blocking_client_is_generated_from_the_asyncio_one() -> None:
    run = subprocess.run([sys.executable, str(ROOT / ".ci" / "unasync.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_generator_turns_asyncio_into_blocking_code() -> None:
    spec = importlib.util.spec_from_file_location("unasync_script", ROOT / ".ci" / "unasync.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = script.unasync(
        "async def f(self) -> AsyncGraph:\n"
        "    async with self.redis.pipeline() as pipe:\n"
        "        await run_each_async(pipe)\n"
        "    await self.redis.aclose()\n", "x.py")
    body = out.split("\n", 1)[1]
    assert body == ("def f(self) -> Graph:\n"
                    "    with self.redis.pipeline() as pipe:\n"
                    "        run_each(pipe)\n"
                    "    self.redis.close()\n")
    assert out.startswith("# Generated from ceylon_redis/client/_async/x.py")


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_class_over_300_lines() -> None:
    big = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    big[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert not big, f"classes over {MAX_CLASS_LINES} lines: {big}"


def test_import_contracts_are_kept() -> None:
    """Layers (CLI and playground on top, models/errors/keys at the bottom), the two
    clients independent, and no circles: the contracts in pyproject.toml."""
    lint = shutil.which("lint-imports")
    assert lint is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    run = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


def test_every_file_the_package_needs_is_in_its_package_data() -> None:
    """A wheel (``pip install .``, the Docker image) holds the .py files and what
    pyproject's package-data names: a Lua include or a template left out of it breaks
    every install but an editable one (the Lua includes were, until 2026-12-04)."""
    from pathlib import PurePosixPath

    tomllib = pytest.importorskip("tomllib")

    def matches(path: str, pattern: str) -> bool:  # setuptools' globs: * stays in its folder
        p, g = PurePosixPath(path), PurePosixPath(pattern)
        return len(p.parts) == len(g.parts) and p.match(pattern)

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["ceylon_redis"]
    needed = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    missing = [f for f in needed if not any(matches(f, pat) for pat in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
