"""Shared fixtures: a real Redis (fail under CI=true if none), unique prefixes, fakeredis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from loguru import logger

from ceylon_redis import Client

from .redis_server import own_redis  # noqa: F401  (a fixture for every test module)

ROOT = Path(__file__).resolve().parent.parent
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://localhost:6379/14")


def _redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis for integration tests; fails (not skips) under CI=true without one."""
    if not _redis_available():
        msg = f"no Redis at {REDIS_TEST_URL} (set REDIS_TEST_URL)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return REDIS_TEST_URL


def delete_namespace(client: redis.Redis, prefix: str) -> None:
    """Delete every key of one test namespace (and of its partitions), and nothing else."""
    for match in ("{" + prefix + "}:*", "{" + prefix + "~*}:*"):
        for key in client.scan_iter(match=match, count=1000):
            client.delete(key)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own; its keys are deleted afterwards on the real Redis."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    if "redis_url" in request.fixturenames:
        client = redis.Redis.from_url(REDIS_TEST_URL)
        delete_namespace(client, name)
        client.close()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def fake_sync(fake_server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fake_server)


@pytest.fixture
async def fake_async(fake_server: fakeredis.FakeServer) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=fake_server)
    yield client
    await client.aclose()


class Daemon:
    """A ``ceylon-redis worker`` (or other command) as a real subprocess."""

    def __init__(self, args: list[str], env: dict[str, str],
                 wrap: Callable[[list[str]], list[str]] = list) -> None:
        """``wrap``: the command line as it is run (say, inside a network namespace)."""
        self.args = args
        self.log = open(ROOT / ".pytest_cache" / f"daemon-{uuid.uuid4().hex[:8]}.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            wrap([sys.executable, "-m", "ceylon_redis", *args]), cwd=ROOT, env=env,
            stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in daemon output:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; a daemon that does not exit in time dumps its stacks (SIGUSR1)
        into its output, which the failure shows."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            raise AssertionError(f"daemon did not exit {timeout} s after SIGTERM; its output "
                                 f"and stacks:\n{self.output()[-20000:]}") from None


@pytest.fixture
def own_daemons(request: pytest.FixtureRequest) -> Iterator[list[Daemon]]:
    """Daemons of this test (append them); every one still running is killed at the end,
    and their logs are deleted when the test passed. Needs no Redis of its own."""
    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    failed_before = request.session.testsfailed
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        d.log.close()
        if request.session.testsfailed == failed_before:
            Path(d.log.name).unlink(missing_ok=True)


@pytest.fixture
def daemons(redis_url: str, prefix: str, own_daemons: list[Daemon]) -> list[Daemon]:
    """``own_daemons`` for a test on the shared Redis (its namespace is cleaned after)."""
    return own_daemons


def spawn_worker(daemons: list[Daemon], redis_url: str, prefix: str, target: str,
                 *extra: str, env: dict[str, str] | None = None) -> Daemon:
    """Start ``ceylon-redis worker TARGET`` on the test namespace and wait until it reads."""
    full_env = {**os.environ, "CEYLON_REDIS_URL": redis_url, "CEYLON_REDIS_PREFIX": prefix,
                "PYTHONPATH": str(ROOT), **(env or {})}
    d = Daemon(["worker", target, *extra], full_env)
    daemons.append(d)
    d.wait_for("started:")
    return d


def spawn_coordinator(daemons: list[Daemon], redis_url: str, prefix: str,
                      env: dict[str, str] | None = None) -> Daemon:
    """Start ``ceylon-redis coordinator`` on the test namespace and wait until it reads."""
    full_env = {**os.environ, "CEYLON_REDIS_URL": redis_url, "CEYLON_REDIS_PREFIX": prefix,
                "PYTHONPATH": str(ROOT), **(env or {})}
    d = Daemon(["coordinator"], full_env)
    daemons.append(d)
    d.wait_for("started:")
    return d


@pytest.fixture
def client(redis_url: str, prefix: str) -> Iterator[Client]:
    """A blocking Client on the real Redis and the test's namespace."""
    with Client(redis_url, prefix) as c:
        yield c


@pytest.fixture
def env(redis_url: str, prefix: str) -> dict[str, str]:
    """Environment pointing the CLI at the test's namespace on the real Redis."""
    return {"CEYLON_REDIS_URL": redis_url, "CEYLON_REDIS_PREFIX": prefix}


@pytest.fixture
def restore_loguru() -> Iterator[None]:
    """The CLI's group callback re-configures loguru globally (a sink on CliRunner's stderr)."""
    yield
    logger.remove()
    logger.add(lambda message: sys.stderr.write(message))
    logger.disable("ceylon_redis")
