"""Fault injection: a daemon killed (SIGKILL) at each named step of a task's path loses nothing.

Each test arms ``CEYLON_REDIS_FAULT`` in one daemon, lets it die at that step,
starts a healthy replacement and checks that every task completed with one
result, that only tasks the dead worker had begun ran twice, and that the
statistics counted each task once. See ``ceylon_redis/faults.py`` for the steps.
"""

from __future__ import annotations

import time

import pytest
import redis

from ceylon_redis import Client, TaskDef
from ceylon_redis.errors import ValidationError
from ceylon_redis.faults import COORDINATOR_STEPS, WORKER_STEPS, fault_from_env
from tests.conftest import Daemon, spawn_coordinator, spawn_worker
from tests.test_integration import FAST_REAP, run_counts, runners, wait_until, worker_id_of

pytestmark = pytest.mark.redis

NODE = "tests.handlers_for_tests:node"
CHAINS, DEPTH, SINGLES = 5, 4, 20
VICTIM_CONCURRENCY = 4


def _enqueue_work(client: Client, sleep: float) -> list[str]:
    """Five 4-deep chains and 20 single tasks; returns every id."""
    tasks = [TaskDef("f", {"value": 1, "sleep": sleep}, id=f"s{i}") for i in range(SINGLES)]
    for j in range(CHAINS):
        tasks += [TaskDef("f", {"value": 1, "sleep": sleep}, id=f"c{j}-{i}",
                          depends_on=[f"c{j}-{i - 1}"] if i else []) for i in range(DEPTH)]
    client.enqueue_graph(tasks)
    return [t.id or "" for t in tasks]


def _died_at(d: Daemon, step: str) -> None:
    assert d.proc.wait(20) == -9, d.output()
    assert f"fault injected: killed at {step}" in d.output()


def _stats_settle(client: Client, total: int) -> None:
    wait_until(lambda: client.stats().overall.completed >= total, 20, "stats caught up")
    time.sleep(1.0)
    assert client.stats().overall.completed == total  # each task counted once


@pytest.mark.parametrize("step", WORKER_STEPS)
def test_worker_killed_at_step_loses_nothing(
        step: str, redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    spawn_coordinator(daemons, redis_url, prefix, FAST_REAP)
    victim = spawn_worker(daemons, redis_url, prefix, NODE, "--role", "f", "-c",
                          str(VICTIM_CONCURRENCY),
                          env={**FAST_REAP, "CEYLON_REDIS_FAULT": step})
    victim_id = worker_id_of(victim)
    ids = _enqueue_work(client, sleep=0.2)
    _died_at(victim, step)

    survivor = spawn_worker(daemons, redis_url, prefix, NODE, "--role", "f", "-c", "10",
                            env=FAST_REAP)
    results = dict(zip(ids, client.wait_many(ids, timeout=30)))

    assert all(r.success for r in results.values()), [r.error for r in results.values()]
    assert [results[f"c{j}-{DEPTH - 1}"].output["sum"] for j in range(CHAINS)] == [DEPTH] * CHAINS
    runs = dict(zip(ids, run_counts(sync_redis, prefix, ids)))
    ran = runners(sync_redis, prefix, ids)
    assert min(runs.values()) == 1
    twice = {tid for tid, n in runs.items() if n > 1}
    # Only what the dead worker had begun runs again, and at most once more.
    assert all(ran[tid][:-1] == [victim_id] for tid in twice), ran
    assert len(twice) <= VICTIM_CONCURRENCY
    print(f"\n{step}: {len(ids)} tasks completed, {len(twice)} ran twice "
          f"({sorted(twice)}), victim recorded "
          f"{sum(1 for r in ran.values() if r == [victim_id])}")
    if step in ("after-read", "after-start"):
        assert not twice  # the victim never entered a handler
    if step == "after-finish":  # what the victim recorded stays recorded, never re-run
        recorded = [t for t, r in ran.items() if r == [victim_id]]
        assert recorded and all(runs[t] == 1 for t in recorded)
    if step != "after-finish":
        assert "presumed dead" in survivor.output()
    _stats_settle(client, len(ids))


@pytest.mark.parametrize("step", COORDINATOR_STEPS)
def test_coordinator_killed_at_step_counts_each_task_once(
        step: str, redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    victim = spawn_coordinator(daemons, redis_url, prefix,
                               {**FAST_REAP, "CEYLON_REDIS_FAULT": step})
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "f", "-c", "10", env=FAST_REAP)
    ids = _enqueue_work(client, sleep=0.05)
    _died_at(victim, step)
    second = spawn_coordinator(daemons, redis_url, prefix, FAST_REAP)

    assert all(r.success for r in client.wait_many(ids, timeout=30))
    assert run_counts(sync_redis, prefix, ids) == [1] * len(ids)
    _stats_settle(client, len(ids))
    if step == "coordinator-after-read":
        second.wait_for("took over", 10)
    assert not sync_redis.xpending("{" + prefix + "}:events", "coordinators")["pending"]


def test_fault_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEYLON_REDIS_FAULT", "mid-run:3")
    fault = fault_from_env()
    assert fault is not None and (fault.step, fault.nth) == ("mid-run", 3)
    fault.reached("after-read")  # another step: nothing happens
    for bad in ("mid-flight", "mid-run:0", "mid-run:x"):
        monkeypatch.setenv("CEYLON_REDIS_FAULT", bad)
        with pytest.raises(ValidationError, match="CEYLON_REDIS_FAULT"):
            fault_from_env()
    monkeypatch.delenv("CEYLON_REDIS_FAULT")
    assert fault_from_env() is None
