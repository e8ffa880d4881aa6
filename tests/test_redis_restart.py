"""Redis going away, on servers these tests start: scripts reload, clients carry on,
and a Redis killed in the middle of a script applied none of it."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from ceylon_redis import Client, TaskStatus
from tests.conftest import Daemon, spawn_coordinator, spawn_worker
from tests.test_integration import FAST_REAP, task_fields, wait_until

from .redis_server import RedisServer, require_redis_server

NODE = "tests.handlers_for_tests:node"
SLOW = "tests.handlers_for_tests:slow"

pytestmark = pytest.mark.redis


def test_scripts_reload_after_script_flush(own_redis: RedisServer) -> None:
    with Client(own_redis.url, "reload") as client:
        first = client.enqueue("r", 1)
        redis.Redis(port=own_redis.port).script_flush()
        second = client.enqueue("r", 2)                      # EVALSHA -> NOSCRIPT -> reload
        client.enqueue_many("r", [3, 4])                     # and inside a pipeline
        assert client.get(first).data == 1 and client.get(second).data == 2
        assert len(client.redis.xrange(client.keys.stream("r"))) == 4


def test_client_carries_on_after_a_redis_restart(own_redis: RedisServer) -> None:
    with Client(own_redis.url, "restart") as client:
        before = client.enqueue("r", "before")
        own_redis.stop()
        with pytest.raises(redis.ConnectionError):
            client.enqueue("r", "while down")
        own_redis.start()                                    # scripts are gone from the new process
        after = client.enqueue("r", "after")
        assert client.get(before).data == "before"           # kept by the append-only file
        assert client.get(after).data == "after"


def test_redis_killed_mid_release_applies_all_or_nothing(
        tmp_path: Path, own_daemons: list[Daemon]) -> None:
    """kill -9 of Redis while finish.lua releases 50,000 dependents: after the restart from
    the append-only file none are released and the root is still RUNNING; the worker then
    records the result again and all are released, the root having run once."""
    require_redis_server()
    server = RedisServer(tmp_path, "--appendfsync", "always", "--busy-reply-threshold", "20")
    server.start()
    try:
        with Client(server.url, "crash") as client:
            root = client.enqueue("r", {"value": 1, "sleep": 1.0})
            held = client.enqueue_many("held", [{}] * 50_000, depends_on=[root])
            worker = spawn_worker(own_daemons, server.url, "crash", NODE, "--role", "r")
            probe = redis.Redis(port=server.port)
            wait_until(lambda: _busy(probe), 30, "finish.lua to be running (BUSY replies)")
            server.kill()
            worker.proc.send_signal(signal.SIGSTOP)  # keep it from retrying until we looked
            server.start()

            assert client.get(root).status is TaskStatus.RUNNING
            assert client.redis.xlen(client.keys.stream("held")) == 0
            statuses = Counter(task_fields(client.redis, "crash", held, "status"))
            assert statuses == {"WAITING": 50_000}

            probe.config_set("busy-reply-threshold", 5000)  # the default: no BUSY replies now
            worker.proc.send_signal(signal.SIGCONT)
            assert client.wait(root, timeout=30).output == {"sum": 1, "failed": []}
            assert client.redis.xlen(client.keys.stream("held")) == 50_000
            assert Counter(task_fields(client.redis, "crash", held, "status")) == {"QUEUED": 50_000}
            assert int(client.redis.get("{crash}:test:runs:" + root)) == 1
    finally:
        server.stop()


def _busy(probe: redis.Redis) -> bool:
    try:
        probe.get("probe")
    except redis.ResponseError as exc:
        return "BUSY" in str(exc)
    return False




def test_daemons_carry_on_through_a_redis_restart(
        own_redis: RedisServer, own_daemons: list[Daemon]) -> None:
    """Redis stopped for 3 s in the middle of a run: the worker and the coordinator keep
    running, reconnect, reload their scripts, and every task completes once."""
    worker = spawn_worker(own_daemons, own_redis.url, "outage", SLOW, "--role", "o", "-c", "10")
    coordinator = spawn_coordinator(own_daemons, own_redis.url, "outage")
    with Client(own_redis.url, "outage") as client:
        ids = client.enqueue_many("o", [0.1] * 300)   # the handler sleeps, touching no Redis
        wait_until(lambda: client.stats().overall.completed > 30, 10, "the run under way")
        own_redis.stop()
        time.sleep(3)
        own_redis.start()

        results = client.wait_many(ids, timeout=60)
        assert all(r.success for r in results), [r.error for r in results if not r.success]
        assert {client.get(t).attempt for t in ids} == {1}   # each started once
        wait_until(lambda: client.stats().overall.completed == len(ids), 20, "stats")
    assert worker.proc.poll() is None and coordinator.proc.poll() is None
    assert "Redis unreachable" in worker.output()
    assert "Traceback" not in worker.output() + coordinator.output()


def test_sigterm_with_redis_down_exits_within_grace(
        own_redis: RedisServer, own_daemons: list[Daemon]) -> None:
    """A worker told to stop while Redis is down gives up recording after --grace seconds
    and exits; once Redis is back, the reaper has its tasks run again elsewhere."""
    worker = spawn_worker(own_daemons, own_redis.url, "down", SLOW, "--role", "d", "-c", "5",
                          "--grace", "2", env=FAST_REAP)
    with Client(own_redis.url, "down") as client:
        ids = client.enqueue_many("d", [1.0] * 5)
        wait_until(lambda: all(client.get(t).status is TaskStatus.RUNNING for t in ids), 10,
                   "the tasks to start")
        own_redis.stop()
        began = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(15) == 0, worker.output()
        took = time.monotonic() - began
        assert took < 8, f"exit took {took:.1f} s with --grace 2"
        assert "giving up: the reaper re-runs those tasks" in worker.output()

        own_redis.start()
        spawn_worker(own_daemons, own_redis.url, "down", SLOW, "--role", "d", env=FAST_REAP)
        results = client.wait_many(ids, timeout=30)
        assert [r.output for r in results] == [1.0] * 5
        assert [client.get(t).attempt for t in ids] == [2] * 5
