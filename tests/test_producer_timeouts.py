"""Producers against a Redis that stops answering (SIGSTOP): a clear error within about
``socket_timeout``, never a hang; the same client works again once Redis does; and waiting
for a result longer than the socket timeout is not cut by it."""

from __future__ import annotations

import asyncio
import math
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from ceylon_redis import AsyncClient, Client, Settings, TaskStatus, ValidationError
from ceylon_redis.connection import QuickBlockingPool, daemon_timeouts
from ceylon_redis.errors import CeylonRedisError, RedisConnectionError, RedisTimeoutError
from ceylon_redis.outages import explain_outage
from tests.cli_support import assert_one_error_line, cli
from tests.conftest import Daemon, spawn_worker

from .redis_server import RedisServer

TIMEOUT = 1.0
"""The socket timeout these tests configure."""
LATE = 3.5
"""Most seconds an error may take: the timeout, plus slack for a loaded test machine."""
SLOW = "tests.handlers_for_tests:slow"


def _settings(server: RedisServer, prefix: str) -> Settings:
    return Settings(url=server.url, prefix=prefix, socket_timeout=TIMEOUT)


@contextmanager
def _stopped(server: RedisServer) -> Iterator[None]:
    """The server process frozen (SIGSTOP): it accepts connections, never answers."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)


def _timed_error(call: Callable[[], Any]) -> tuple[BaseException, float]:
    began = time.monotonic()
    with pytest.raises(redis.RedisError) as info:
        call()
    return info.value, time.monotonic() - began


def _assert_clear_timeout(exc: BaseException, elapsed: float, server: RedisServer) -> None:
    assert isinstance(exc, RedisTimeoutError), repr(exc)
    assert isinstance(exc, redis.TimeoutError) and isinstance(exc, CeylonRedisError)
    assert f"Redis at {server.url} did not answer within 1 s" in str(exc), str(exc)
    assert TIMEOUT * 0.8 <= elapsed <= LATE, elapsed


# ---------------------------------------------------------------- settings, messages


def test_socket_timeout_setting_env_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().socket_timeout == 10.0
    monkeypatch.setenv("CEYLON_REDIS_SOCKET_TIMEOUT", "2.5")
    assert Settings.from_env().socket_timeout == 2.5
    assert Settings.from_env(socket_timeout=4).socket_timeout == 4
    monkeypatch.setenv("CEYLON_REDIS_SOCKET_TIMEOUT", "soon")
    with pytest.raises(ValidationError, match="CEYLON_REDIS_SOCKET_TIMEOUT"):
        Settings.from_env()
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValidationError, match="socket_timeout"):
            Settings(socket_timeout=bad)


def test_daemons_allow_their_blocking_reads_on_top() -> None:
    s = Settings(socket_timeout=2.0, block_ms=5000)
    assert daemon_timeouts(s) == {"socket_connect_timeout": 2.0, "socket_timeout": 7.0}


def test_messages_name_the_redacted_url_and_the_timeout() -> None:
    url = "redis://user:secret@db.example:6379/0"
    slow = explain_outage(redis.TimeoutError("Timeout reading from db.example:6379"), url, 2.5)
    assert isinstance(slow, RedisTimeoutError)
    assert str(slow) == ("Redis at redis://user:***@db.example:6379/0 did not answer within "
                         "2.5 s (Timeout reading from db.example:6379)")
    down = explain_outage(redis.ConnectionError("Connection refused."), url, 2.5)
    assert isinstance(down, RedisConnectionError) and isinstance(down, redis.ConnectionError)
    assert str(down) == "cannot reach Redis at redis://user:***@db.example:6379/0: " \
                        "Connection refused."
    busy = explain_outage(redis.ConnectionError("No connection available."), url, 2.5)
    assert isinstance(busy, RedisConnectionError)
    assert "no free connection to Redis at redis://user:***@db.example:6379/0 within 2.5 s" \
        in str(busy)
    for kept in (redis.AuthenticationError("WRONGPASS"), redis.BusyLoadingError("loading"),
                 RedisTimeoutError("already explained")):
        assert explain_outage(kept, url, 2.5) is None


# ---------------------------------------------------------------- a frozen Redis


def test_client_raises_within_the_timeout_and_recovers(own_redis: RedisServer) -> None:
    with Client(settings=_settings(own_redis, "frozen")) as client:
        before = client.enqueue("r", "before")
        with _stopped(own_redis):
            exc, elapsed = _timed_error(lambda: client.enqueue("r", "while frozen"))
            _assert_clear_timeout(exc, elapsed, own_redis)
            exc, elapsed = _timed_error(lambda: client.get(before))
            _assert_clear_timeout(exc, elapsed, own_redis)
            exc, elapsed = _timed_error(lambda: client.enqueue_many("r", [1, 2]))
            _assert_clear_timeout(exc, elapsed, own_redis)       # a pipeline too
        after = client.enqueue("r", "after")
        assert client.get(before).data == "before"
        assert client.get(after).data == "after"


def test_new_client_on_a_frozen_redis_raises_within_the_timeout(own_redis: RedisServer) -> None:
    with _stopped(own_redis), Client(settings=_settings(own_redis, "frozen-new")) as client:
        exc, elapsed = _timed_error(lambda: client.enqueue("r", 1))
        _assert_clear_timeout(exc, elapsed, own_redis)
        exc, elapsed = _timed_error(lambda: client.wait("nosuchtask", timeout=30))
        _assert_clear_timeout(exc, elapsed, own_redis)          # not the wait's 30 s


async def test_async_client_raises_within_the_timeout_and_recovers(
        own_redis: RedisServer) -> None:
    async with AsyncClient(settings=_settings(own_redis, "frozen-async")) as client:
        before = await client.enqueue("r", "before")
        with _stopped(own_redis):
            for call in (lambda: client.enqueue("r", "while frozen"),
                         lambda: client.get(before),
                         lambda: client.wait(before, timeout=30)):
                began = time.monotonic()
                with pytest.raises(redis.RedisError) as info:
                    await call()
                _assert_clear_timeout(info.value, time.monotonic() - began, own_redis)
        after = await client.enqueue("r", "after")
        assert (await client.get(before)).data == "before"
        assert (await client.get(after)).data == "after"


def test_stopped_redis_is_a_clear_connection_error(own_redis: RedisServer) -> None:
    with Client(settings=_settings(own_redis, "gone")) as client:
        client.enqueue("r", 1)
        own_redis.stop()
        exc, elapsed = _timed_error(lambda: client.enqueue("r", 2))
    assert isinstance(exc, RedisConnectionError), repr(exc)
    assert str(exc).startswith(f"cannot reach Redis at {own_redis.url}: "), str(exc)
    assert elapsed <= LATE


def test_cli_enqueue_on_a_frozen_redis_is_one_error_line(own_redis: RedisServer) -> None:
    env = {"CEYLON_REDIS_SOCKET_TIMEOUT": "1", "CEYLON_REDIS_PREFIX": "frozen-cli"}
    with _stopped(own_redis):
        began = time.monotonic()
        proc = cli(env, "enqueue", "r", "{}", "--url", own_redis.url, timeout=20)
        elapsed = time.monotonic() - began
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    line = assert_one_error_line(proc.stderr)
    assert line.startswith(f"error: Redis at {own_redis.url} did not answer within 1 s"), line
    assert elapsed <= LATE + 3, elapsed  # plus the interpreter's start


# ---------------------------------------------------------------- waiting is not cut


def _worker(own_daemons: list[Daemon], server: RedisServer, prefix: str) -> Daemon:
    """A worker daemon of ``slow`` tasks whose own socket timeout is TIMEOUT (+ block)."""
    return spawn_worker(own_daemons, server.url, prefix, SLOW, "--role", "slow",
                        env={"CEYLON_REDIS_SOCKET_TIMEOUT": str(TIMEOUT)})


def _assert_no_lost_connections(worker: Daemon) -> None:
    for words in ("channel lost", "unreachable", "Timeout"):
        assert words not in worker.output(), worker.output()


def test_waits_outlast_the_socket_timeout(own_redis: RedisServer,
                                          own_daemons: list[Daemon]) -> None:
    prefix = f"wait-{uuid.uuid4().hex[:6]}"
    worker = _worker(own_daemons, own_redis, prefix)
    with Client(settings=_settings(own_redis, prefix)) as client:
        tid = client.enqueue("slow", {"sleep": 3 * TIMEOUT})
        began = time.monotonic()
        result = client.wait(tid, timeout=30)
        assert result.status is TaskStatus.COMPLETED, result
        assert time.monotonic() - began >= 2.5 * TIMEOUT

        async def wait_async() -> None:
            async with AsyncClient(settings=_settings(own_redis, prefix)) as aclient:
                await aclient.wait(await aclient.enqueue("slow", 0.0), timeout=30)  # listening
                tid = await aclient.enqueue("slow", {"sleep": 3 * TIMEOUT})
                began = time.monotonic()
                result = await aclient.wait(tid, timeout=30)
                assert result.status is TaskStatus.COMPLETED, result
                assert time.monotonic() - began >= 2.5 * TIMEOUT

        asyncio.run(wait_async())

        # The worker's control channel sat idle longer than its socket timeout: cancel works.
        long = client.enqueue("slow", {"sleep": 60})
        time.sleep(3 * TIMEOUT)
        assert client.get(long).status is TaskStatus.RUNNING
        assert client.cancel(long)
        assert client.wait(long, timeout=30).status is TaskStatus.CANCELLED
        worker.wait_for(f"task {long} cancelled while running", timeout=5)
    _assert_no_lost_connections(worker)
    assert worker.stop() == 0


async def test_the_quick_pool_stays_bounded_and_hands_freed_connections_to_waiters(
        redis_url: str) -> None:
    pool = QuickBlockingPool.from_url(redis_url, max_connections=2, timeout=5)
    r = redis.asyncio.Redis.from_pool(pool)
    try:
        # Two slow commands hold both connections; eight quick ones wait, then run on them.
        replies = await asyncio.gather(r.blpop([f"nothing-{uuid.uuid4().hex}"], 0.3),
                                       r.blpop([f"nothing-{uuid.uuid4().hex}"], 0.3),
                                       *(r.ping() for _ in range(8)))
        assert replies == [None, None] + [True] * 8
        assert len(pool._available_connections) + len(pool._in_use_connections) == 2
        assert await r.ping()  # the idle connection is handed out at once again
        short = QuickBlockingPool.from_url(redis_url, max_connections=1, timeout=0.2)
        s = redis.asyncio.Redis.from_pool(short)
        try:
            with pytest.raises(redis.ConnectionError, match="No connection available"):
                await asyncio.gather(s.blpop([f"nothing-{uuid.uuid4().hex}"], 1), s.ping())
        finally:
            await s.aclose()
    finally:
        await r.aclose()
