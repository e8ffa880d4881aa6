"""Redis Cluster: three masters started here (redis-server in cluster mode, then
``redis-cli --cluster create``). Three prefixes, one on each shard, each with worker
daemons and a coordinator on ``redis+cluster://``; one worker is killed with kill -9 mid-run.
Every task (bulk enqueues and graphs with dependencies) completes with one result,
counted once, and each prefix's keys live on its own shard only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from ceylon_redis import Client, Settings, TaskDef, TaskStatus
from tests.conftest import ROOT, Daemon
from tests.redis_server import ClusterSet, RedisServer
from tests.test_integration import FAST_REAP, run_counts, runners, wait_until, worker_id_of

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

ROLE = "work"
BULK, FAN = 1500, 20


def _node_of_slot(nodes: list[RedisServer], slot: int) -> int:
    ranges = redis.Redis(port=nodes[0].port).execute_command("CLUSTER SLOTS")
    for start, end, master, *_ in ranges:
        if start <= slot <= end:
            return [n.port for n in nodes].index(int(master[1]))
    raise AssertionError(f"slot {slot} not served")


def _one_prefix_per_shard(nodes: list[RedisServer]) -> list[str]:
    chosen: dict[int, str] = {}
    for i in range(1000):
        name = f"shard{i}"
        chosen.setdefault(_node_of_slot(nodes, key_slot(("{" + name + "}:").encode())), name)
        if len(chosen) == len(nodes):
            return [chosen[k] for k in sorted(chosen)]
    raise AssertionError("no prefix found for some shard")


def test_prefixes_spread_over_three_shards(tmp_path: Path, own_redis: RedisServer,
                                           own_daemons: list[Daemon]) -> None:
    """``own_redis`` is the handlers' ledger, apart from the cluster."""
    cluster = ClusterSet(tmp_path)
    try:
        cluster.start()
        _run(cluster, own_redis, own_daemons)
    finally:
        cluster.stop()


def _graph(prefix: str) -> list[TaskDef]:
    chain = [TaskDef(ROLE, {"i": i}, id=f"{prefix}-c{i}",
                     depends_on=[f"{prefix}-c{i - 1}"] if i else []) for i in range(5)]
    fan = [TaskDef(ROLE, {"f": i}, id=f"{prefix}-f{i}", depends_on=[f"{prefix}-c4"])
           for i in range(FAN)]
    sink = TaskDef(ROLE, {}, id=f"{prefix}-sink", depends_on=[t.id or "" for t in fan])
    return [*chain, *fan, sink]


def _run(cluster: ClusterSet, ledger: RedisServer, daemons: list[Daemon]) -> None:
    prefixes = _one_prefix_per_shard(cluster.nodes)
    base_env = {**os.environ, **FAST_REAP, "CEYLON_REDIS_URL": cluster.url,
                "CEYLON_TEST_LEDGER_URL": ledger.url, "PYTHONPATH": str(ROOT)}
    workers: dict[str, list[Daemon]] = {}
    for prefix in prefixes:
        env = {**base_env, "CEYLON_REDIS_PREFIX": prefix}
        workers[prefix] = [Daemon(["worker", "tests.handlers_for_tests:record", "--role", ROLE,
                                   "-c", "8"], env) for _ in range(2)]
        daemons += [*workers[prefix], Daemon(["coordinator"], env)]
    for d in daemons:
        d.wait_for("started:", 20)

    ids: dict[str, list[str]] = {}
    for prefix in prefixes:
        with Client(settings=Settings(url=cluster.url, prefix=prefix)) as client:
            ids[prefix] = client.enqueue_many(ROLE, [{"sleep": 0.01}] * BULK)
            client.enqueue_graph(graph := _graph(prefix))
            ids[prefix] += [t.id or "" for t in graph]

    victim = workers[prefixes[0]][0]
    ledger_client = redis.Redis.from_url(ledger.url)
    wait_until(lambda: sum(run_counts(ledger_client, prefixes[0], ids[prefixes[0]])) > 200,
               20, "the first prefix's workers to get going")
    victim_id = worker_id_of(victim)
    victim.proc.kill()
    victim.proc.wait(10)
    killed_at = time.monotonic()

    for prefix in prefixes:
        with Client(settings=Settings(url=cluster.url, prefix=prefix)) as client:
            results = client.wait_many(ids[prefix], timeout=90)
            assert {r.status for r in results} == {TaskStatus.COMPLETED}, prefix
            assert [r.output["task"] for r in results] == ids[prefix]
            assert results[-1].output["data"] == {}  # the sink ran after its 20 prerequisites
            runs = runners(ledger_client, prefix, ids[prefix])
            twice = [t for t, w in runs.items() if len(w) > 1]
            assert all(runs[t][0] == victim_id for t in twice), "a task ran twice needlessly"
            total = len(ids[prefix])
            wait_until(lambda c=client, n=total: c.stats(ROLE).overall.completed == n,
                       20, f"{prefix}'s statistics to count each task once")
            print(f"\n{prefix}: {len(ids[prefix])} tasks done, {len(twice)} ran twice "
                  f"(the killed worker's)", end="")
    print(f"; all done {time.monotonic() - killed_at:.1f} s after the kill -9")

    for i, node in enumerate(cluster.nodes):  # each prefix on its shard, and only there
        r = redis.Redis(port=node.port)
        for j, prefix in enumerate(prefixes):
            has = any(True for _ in r.scan_iter(match="{" + prefix + "}:task:*", count=1000))
            assert has == (i == j), f"{prefix} keys on node {i}: {has}"
    assert all(d.proc.poll() is None for d in daemons if d is not victim)
