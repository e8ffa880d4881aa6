"""Running the ``ceylon-redis`` command in tests: in-process (CliRunner) or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner, Result

from ceylon_redis.cli import main
from tests.conftest import ROOT


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    """Run the CLI in-process (``input`` on its stdin); an exception other than SystemExit
    fails the test."""
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def full_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment minus CEYLON_REDIS_* and REDIS_URL, plus ``env``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("CEYLON_REDIS_")
           and k != "REDIS_URL"}
    out.update({"PYTHONPATH": str(ROOT), **env})
    return out


def cli(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ceylon_redis ARGS`` as a subprocess."""
    return subprocess.run([sys.executable, "-m", "ceylon_redis", *args], capture_output=True,
                          text=True, cwd=ROOT, env=full_env(env), timeout=timeout)


def assert_one_error_line(stderr: str) -> str:
    """stderr is exactly one ``error: ...`` line, no traceback; returns it."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]
