"""Priorities with a worker daemon on real Redis: tasks of mixed priorities queued before
the worker starts run highest first, and a kill -9 mid-run loses none of them."""

from __future__ import annotations

import signal

import pytest
import redis

from ceylon_redis import Client, TaskStatus
from tests.cli_support import invoke
from tests.conftest import Daemon, spawn_worker
from tests.handlers_for_tests import order_key
from tests.test_integration import FAST_REAP

pytestmark = [pytest.mark.redis, pytest.mark.slow]
H = "tests.handlers_for_tests:"
CONCURRENCY = 4


def _enqueue_mixed(client: Client, n: int) -> dict[str, int]:
    """``n`` tasks in batches of 10, each batch at another priority; id -> priority."""
    levels: dict[str, int] = {}
    for b in range(n // 10):
        p = (b * 7) % 10
        for tid in client.enqueue_many("ranked", [p] * 10, priority=p):
            levels[tid] = p
    return levels


def test_a_thousand_mixed_priorities_run_highest_first(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon],
        sync_redis: redis.Redis) -> None:
    levels = _enqueue_mixed(client, 1000)
    assert client.queues()[0].ready == 1000
    spawn_worker(daemons, redis_url, prefix, H + "note_order", "--role", "ranked",
                 "--concurrency", str(CONCURRENCY))
    results = client.wait_many(list(levels), timeout=60)
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    started = [int(v.split(b":")[0]) for v in sync_redis.lrange(order_key(prefix), 0, -1)]
    assert len(started) == 1000
    # A take starts up to CONCURRENCY entries at once and they record in any order; past
    # that window, nothing lower ran before anything higher.
    for i, p in enumerate(started):
        later = started[i + 2 * CONCURRENCY:]
        assert not later or max(later) <= p, (i, p, max(later))
    assert started[0] == 9 and started[-1] == 0


def test_a_worker_killed_mid_run_loses_no_prioritized_task(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon],
        sync_redis: redis.Redis) -> None:
    levels = _enqueue_mixed(client, 300)
    victim = spawn_worker(daemons, redis_url, prefix, H + "note_order", "--role", "ranked",
                          "--concurrency", str(CONCURRENCY), env=FAST_REAP)
    client.wait(next(t for t, p in levels.items() if p == 9), timeout=20)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    spawn_worker(daemons, redis_url, prefix, H + "note_order", "--role", "ranked",
                 "--concurrency", str(CONCURRENCY), env=FAST_REAP)
    results = client.wait_many(list(levels), timeout=60)
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    ran = {v.split(b":")[1].decode() for v in sync_redis.lrange(order_key(prefix), 0, -1)}
    assert ran == set(levels)
    assert not sync_redis.exists(client.keys.priority("ranked"), client.keys.bound("ranked"))


def test_cli_enqueue_and_schedule_take_a_priority(env: dict[str, str], client: Client) -> None:
    bad = invoke(env, "enqueue", "ranked", "1", "--priority", "10")
    assert bad.exit_code == 2 and "0<=x<=9" in bad.output
    assert invoke(env, "schedule", "add", "s", "ranked", "--every", "60",
                  "--priority", "-1").exit_code == 2
    assert client.queues() == [] and client.schedules() == []  # nothing written
    done = invoke(env, "enqueue", "ranked", "1", "--priority", "8")
    assert done.exit_code == 0, done.output
    shown = invoke(env, "task", done.output.strip())
    assert "priority:    8" in shown.output
    assert invoke(env, "schedule", "add", "s", "ranked", "--every", "60", "--priority",
                  "7").exit_code == 0
    assert client.schedules()[0].priority == 7
