"""Limits across worker daemons on real Redis: a rate over three workers holds within 10 %,
a per-key rate holds per key while other tasks run freely, and a concurrency limit over
three workers never lets a sixth run, through a kill -9, with no slot lost."""

from __future__ import annotations

import re
import signal
import time

import pytest
import redis

from ceylon_redis import Client, TaskStatus
from tests.cli_support import invoke
from tests.conftest import Daemon, spawn_worker
from tests.handlers_for_tests import spans_key
from tests.test_integration import FAST_REAP, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]
SPAN = "tests.handlers_for_tests:span"


def _spans(r: redis.Redis, prefix: str) -> list[tuple[str, str, float]]:
    """(start|end, task id and attempt, time) of every run so far."""
    out = []
    for raw in r.lrange(spans_key(prefix), 0, -1):
        kind, tid, attempt, at = raw.decode().split()
        out.append((kind, f"{tid}#{attempt}", float(at)))
    return out


def _starts(r: redis.Redis, prefix: str) -> list[float]:
    return sorted(at for kind, _, at in _spans(r, prefix) if kind == "start")


def _workers(daemons: list[Daemon], redis_url: str, prefix: str, role: str, n: int,
             **env: str) -> list[Daemon]:
    return [spawn_worker(daemons, redis_url, prefix, SPAN, "--role", role, "-c", "10",
                         env=env or None) for _ in range(n)]


def test_a_rate_over_three_workers_holds_within_ten_percent(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon],
        sync_redis: redis.Redis) -> None:
    client.set_limit("rated", rate="50/s")
    client.enqueue_many("rated", [0] * 1500)
    _workers(daemons, redis_url, prefix, "rated", 3)
    wait_until(lambda: len(_starts(sync_redis, prefix)) > 0, 20, "a first start")
    first = _starts(sync_redis, prefix)[0]
    time.sleep(max(0.0, first + 11 - time.time()))
    starts = _starts(sync_redis, prefix)
    in_window = [t for t in starts if first <= t < first + 10]
    print(f"\n50/s over 3 workers: {len(in_window)} started in the first 10 s")
    assert 450 <= len(in_window) <= 550, len(in_window)   # 50/s over 10 s, within 10 %
    assert client.queues()[0].held > 0      # the rest wait for their turns, unattempted
    client.purge("rated")


def test_a_per_key_rate_holds_per_key_while_other_tasks_run_freely(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon],
        sync_redis: redis.Redis) -> None:
    client.set_limit("keyed", rate="10/s", per_key=True)
    a = client.enqueue_many("keyed", [0] * 100, limit_key="customer-a")
    b = client.enqueue_many("keyed", [0] * 100, limit_key="customer-b")
    free = client.enqueue_many("keyed", [0] * 200)
    _workers(daemons, redis_url, prefix, "keyed", 2)
    began = time.time()
    results = client.wait_many(free, timeout=20)
    assert all(r.success for r in results)
    time.sleep(max(0.0, began + 3 - time.time()))
    done = {tid for tid in a + b if client.get(tid).status is TaskStatus.COMPLETED}
    per_key = [len(done & set(a)), len(done & set(b))]
    print(f"\nper-key 10/s: {per_key} of 100 each done after 3 s; 200 free ones done")
    for n in per_key:  # 10/s each over about 3 s (plus the worker's start): not 100
        assert 20 <= n <= 45, per_key
    client.purge("keyed")


def test_a_concurrency_limit_over_three_workers_survives_a_kill_nine(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon],
        sync_redis: redis.Redis) -> None:
    client.set_limit("slots", concurrency=5)
    ids = client.enqueue_many("slots", [0.05] * 300)
    workers = _workers(daemons, redis_url, prefix, "slots", 3, **FAST_REAP)
    wait_until(lambda: len(_starts(sync_redis, prefix)) > 60, 20, "the run under way")
    victim = workers[0]
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.proc.wait(10)
    results = client.wait_many(ids, timeout=60)
    assert all(r.success for r in results)
    spans = _spans(sync_redis, prefix)
    ends = {run: at for kind, run, at in spans if kind == "end"}
    events = []
    for kind, run, at in spans:
        if kind == "start":  # a run the kill cut short ended with its worker
            events += [(at, 1), (ends.get(run, killed_at), -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    print(f"\nconcurrency 5 over 3 workers, one kill -9'd: at most {peak} ran at once")
    assert peak <= 5, peak
    assert peak == 5  # and the limit was used, not starved
    info = client.limit("slots")
    assert (info.running, info.held) == (0, 0)        # no slot lost, none waiting
    assert not sync_redis.exists(client.keys.running("slots"))


def test_cli_sets_lists_and_removes_limits_and_refuses_bad_ones(
        env: dict[str, str], client: Client) -> None:
    for bad, what in ((["--rate", "100"], "malformed rate"), (["--rate", "0/s"], "above zero"),
                      (["--concurrency", "0"], "concurrency must be"),
                      (["--burst", "5"], "burst goes with a rate"), ([], "give a rate")):
        out = invoke(env, "limit", "set", "work", *bad)
        assert out.exit_code == 1 and what in out.output, out.output
    assert client.limits() == []                    # nothing written
    ok = invoke(env, "limit", "set", "work", "--rate", "30/min", "--burst", "5")
    assert ok.exit_code == 0 and "30/min burst 5 for the role" in ok.output
    invoke(env, "limit", "set", "work", "--per-key", "--concurrency", "2")
    listed = invoke(env, "limit", "list").output
    assert re.search(r"^work\s+30/min burst 5\s+2 at once\s+0\s+-$", listed, re.MULTILINE), listed
    assert invoke(env, "enqueue", "work", "1", "--limit-key", "two words").exit_code == 1
    tid = invoke(env, "enqueue", "work", "1", "--limit-key", "customer-42").output.strip()
    assert "limit key:   customer-42" in invoke(env, "task", tid).output
    assert invoke(env, "limit", "remove", "work", "--per-key").exit_code == 0
    assert client.limit("work").per_key.concurrency is None
    assert invoke(env, "limit", "remove", "work").output.strip() == "removed work's limits"
    assert invoke(env, "limit", "list").output.strip() == "no limits"
