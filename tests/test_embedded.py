"""The embedded in-process Redis: opt-in by URL, a warning when a playground falls back to
it, and an extra of its own (issue 27, items 1 and 8), and the demo on either Redis."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import ceylon_redis.settings as settings_module
from ceylon_redis import (
    RedisConnectionError,
    Task,
    TaskProcessingPlayground,
    ValidationError,
)
from ceylon_redis.connection import EmbeddedRedisWarning, async_redis, resolve_url
from ceylon_redis.demo import run_demo
from tests.cli_support import assert_one_error_line, full_env
from tests.test_playground import Echo

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "redis://127.0.0.1:1/0"
"""Where no Redis answers: stands for a machine without one on localhost."""
NO_LOCAL_REDIS = (f"import ceylon_redis.settings as s; s.DEFAULT_URL = {NOWHERE!r}; "
                  "from ceylon_redis.cli import main; main()")
NO_EMBEDDED = "import sys; sys.modules['fakeredis'] = None; " + NO_LOCAL_REDIS


def run_cli(env: dict[str, str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ceylon-redis ARGS`` as a subprocess, after ``code`` (as ``python -c``) set it up."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, env=full_env(env), timeout=60)


@pytest.fixture
def no_local_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No URL set, and nothing answering where the default URL points."""
    monkeypatch.setattr(settings_module, "DEFAULT_URL", NOWHERE)
    monkeypatch.delenv("CEYLON_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    yield


async def test_a_playground_that_falls_back_warns_at_the_callers_line(
        no_local_redis: None, prefix: str) -> None:
    """A script fell back silently (the library's logs are off): now a warning, which
    points at the user's `async with`."""
    playground = TaskProcessingPlayground(prefix=prefix)
    with pytest.warns(EmbeddedRedisWarning) as caught:
        async with playground.play(workers=[Echo("e", role="echo")]) as active:
            result = await active.add_and_execute_task(
                Task(name="t", processor="echo", input_data={"x": 1}), timeout=5)
    assert result is not None and result.output == {"x": 1}
    (warning,) = caught.list
    assert str(warning.message) == (
        f"no Redis answers at {NOWHERE} and no URL is set (url=, CEYLON_REDIS_URL, REDIS_URL): "
        "running on the embedded in-process Redis (fakeredis), which no other process can "
        "reach and which keeps nothing")
    assert warning.filename == __file__


async def test_embedded_by_url_is_quiet(no_local_redis: None, prefix: str) -> None:
    """filterwarnings = error: any warning here would fail the test."""
    async with TaskProcessingPlayground(url="embedded://", prefix=prefix).play() as active:
        assert active.client is not None and active.client.settings.url == "embedded://"


def test_a_set_url_is_used_as_it_is_even_when_nothing_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "DEFAULT_URL", NOWHERE)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:2/0")
    assert resolve_url(None, allow_embedded=True) == "redis://127.0.0.1:2/0"
    assert resolve_url("redis://127.0.0.1:3/0", allow_embedded=True) == "redis://127.0.0.1:3/0"


async def test_without_the_embedded_extra_the_error_says_how_to_get_it(
        no_local_redis: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # as if not installed
    with pytest.raises(RedisConnectionError) as info:
        async with TaskProcessingPlayground().play():
            pass
    assert str(info.value) == (
        f"no Redis answers at {NOWHERE} and no URL is set (url=, CEYLON_REDIS_URL, REDIS_URL); "
        "start one (docker run -p 6379:6379 redis:7), or run on the embedded in-process "
        "Redis: pip install 'ceylon-redis[embedded]'")
    with pytest.raises(ValidationError, match=r"^embedded:// needs the embedded Redis, which "
                                              r"is not installed: pip install "
                                              r"'ceylon-redis\[embedded\]'$"):
        async_redis("embedded://")


def test_fakeredis_is_an_extra_not_a_dependency() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith(("fakeredis", "lupa"))]
    extras = project["optional-dependencies"]
    assert extras["embedded"] == ["fakeredis[lua]>=2.20"]
    assert "fakeredis[lua]>=2.20" in extras["dev"]  # README: pip install -e '.[dev]' && demo


# --- the demo ----------------------------------------------------------------------------


def test_the_demo_without_redis_or_the_extra_says_how_to_get_either(prefix: str) -> None:
    proc = run_cli({}, NO_EMBEDDED, "demo", "--prefix", prefix)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = assert_one_error_line(proc.stderr)
    assert line.endswith("or run on the embedded in-process Redis: "
                         "pip install 'ceylon-redis[embedded]'"), line


def test_the_demo_falls_back_to_the_embedded_redis_and_says_so_once(prefix: str) -> None:
    proc = run_cli({}, NO_LOCAL_REDIS, "demo", "--scale", "0", "--prefix", prefix)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^Success rate: \d/8 = \d+%$", proc.stdout, re.MULTILINE), proc.stdout
    notes = [ln for ln in proc.stderr.splitlines() if "in-process" in ln]
    assert notes == [f"no Redis at {NOWHERE}: running on an embedded in-process Redis "
                     "(fakeredis); nothing is kept"], proc.stderr
    assert "Warning" not in proc.stderr


def test_the_demo_with_a_url_set_uses_it_and_never_falls_back(prefix: str) -> None:
    proc = run_cli({"REDIS_URL": "redis://127.0.0.1:1/0"}, NO_LOCAL_REDIS, "demo",
                   "--prefix", prefix)
    assert proc.returncode == 1
    assert "127.0.0.1:1" in assert_one_error_line(proc.stderr)
    assert "embedded" not in proc.stdout + proc.stderr


@pytest.mark.redis
async def test_every_key_the_demo_leaves_on_a_real_redis_expires(
        redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """It left its stream, roles, stats and events without a TTL (4 keys)."""
    assert await run_demo(scale=0, url=redis_url, prefix=prefix)
    assert re.search(r"^Success rate: \d/8", capsys.readouterr().out, re.MULTILINE)
    r = redis.Redis.from_url(redis_url)
    try:
        ttls = {k: r.ttl(k) for k in r.scan_iter(match="{" + prefix + "}:*")}
    finally:
        r.close()
    assert len(ttls) >= 12 and all(0 < t <= 86400 for t in ttls.values()), ttls
