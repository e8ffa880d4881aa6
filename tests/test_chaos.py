"""Chaos: 2,000 tasks, 500 of them in 5-deep chains, through 3 worker daemons while one of
them is killed with kill -9 every second for 15 s and restarted, and the coordinator is
killed once. Every task must complete with one result, counted once in the statistics,
and a task may have run more than once only if a killed worker had run it. Prints the
figures (``pytest -s`` shows them)."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import redis

from ceylon_redis import Client, TaskDef, TaskStatus
from tests.conftest import ROOT, Daemon, spawn_coordinator, spawn_worker
from tests.test_integration import FAST_REAP, run_counts, runners, task_fields, wait_until

pytestmark = pytest.mark.redis

NODE = "tests.handlers_for_tests:node"
SINGLES, CHAINS, DEPTH = 1500, 100, 5
WORKERS, CONCURRENCY, TASK_SECONDS = 3, 5, 0.15
CHAOS_SECONDS = 15


def _started_ids(d: Daemon) -> list[str]:
    return [line.split("worker ", 1)[1].split(" started:", 1)[0]
            for line in d.output().splitlines() if "started:" in line and "worker " in line]


def test_chaos_kill_nine_every_second(redis_url: str, prefix: str, daemons: list[Daemon],
                                      client: Client, sync_redis: redis.Redis) -> None:
    env = {**os.environ, **FAST_REAP, "CEYLON_REDIS_URL": redis_url,
           "CEYLON_REDIS_PREFIX": prefix, "PYTHONPATH": str(ROOT)}

    def start_worker() -> Daemon:  # not waiting for it: the next kill is due in a second
        d = Daemon(["worker", NODE, "--role", "chaos", "-c", str(CONCURRENCY)], env)
        daemons.append(d)
        return d

    coordinator = spawn_coordinator(daemons, redis_url, prefix, FAST_REAP)
    slots = [spawn_worker(daemons, redis_url, prefix, NODE, "--role", "chaos", "-c",
                          str(CONCURRENCY), env=FAST_REAP) for _ in range(WORKERS)]
    tasks = [TaskDef("chaos", {"value": 1, "sleep": TASK_SECONDS}, id=f"s{i}")
             for i in range(SINGLES)]
    for j in range(CHAINS):
        tasks += [TaskDef("chaos", {"value": 1, "sleep": TASK_SECONDS}, id=f"c{j}-{i}",
                          depends_on=[f"c{j}-{i - 1}"] if i else []) for i in range(DEPTH)]
    ids = [t.id or "" for t in tasks]
    began = time.monotonic()
    client.enqueue_graph(tasks)

    killed: list[Daemon] = []
    for second in range(CHAOS_SECONDS):
        time.sleep(1.0)
        victim = slots[second % WORKERS]
        victim.proc.kill()
        victim.proc.wait(10)
        killed.append(victim)
        slots[second % WORKERS] = start_worker()
        if second == CHAOS_SECONDS // 2:
            coordinator.proc.kill()
            coordinator.proc.wait(10)
            daemons.append(Daemon(["coordinator"], env))
    done_at_chaos_end = task_fields(sync_redis, prefix, ids, "status").count("COMPLETED")

    results = dict(zip(ids, client.wait_many(ids, timeout=180)))
    elapsed = time.monotonic() - began

    statuses = Counter(r.status for r in results.values())
    assert statuses == {TaskStatus.COMPLETED: len(ids)}, (
        statuses, [r.error for r in results.values() if not r.success][:5])
    assert [results[f"c{j}-{DEPTH - 1}"].output["sum"] for j in range(CHAINS)] == (
        [DEPTH] * CHAINS)
    runs = dict(zip(ids, run_counts(sync_redis, prefix, ids)))
    assert min(runs.values()) == 1
    killed_ids = {wid for d in killed for wid in _started_ids(d)}
    unjustified = {tid: who for tid, who in runners(sync_redis, prefix, ids).items()
                   if not set(who[:-1]) <= killed_ids}
    assert not unjustified, f"ran again though no killed worker had run it: {unjustified}"
    # Each kill can cost at most what that worker was running.
    assert sum(runs.values()) - len(ids) <= len(killed) * CONCURRENCY
    wait_until(lambda: client.stats().overall.completed >= len(ids), 30, "stats caught up")
    time.sleep(1.0)
    assert client.stats().overall.completed == len(ids)
    assert client.dead_letters("chaos") == []

    reclaimed = sum(d.output().count("presumed dead") for d in daemons)
    histogram = Counter(runs.values())
    print(f"\nchaos: {len(ids)} tasks ({CHAINS} chains of {DEPTH}), {WORKERS} workers x "
          f"{CONCURRENCY}, {len(killed)} kill -9 in {CHAOS_SECONDS} s + 1 coordinator kill; "
          f"{done_at_chaos_end} done when the kills stopped, all {len(ids)} completed in "
          f"{elapsed:.1f} s; runs per task {dict(sorted(histogram.items()))}, "
          f"{sum(runs.values()) - len(ids)} duplicate runs (bound {len(killed) * CONCURRENCY}); "
          f"{reclaimed} dead workers reaped; stats completed={client.stats().overall.completed}")

