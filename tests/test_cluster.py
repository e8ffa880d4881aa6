"""Redis Cluster: three masters started here (redis-server in cluster mode, then
``redis-cli --cluster create``). Three prefixes, one on each shard, each with worker
daemons and a coordinator on ``redis+cluster://``; one worker is killed with kill -9 mid-run.
Every task (bulk enqueues and graphs with dependencies) completes with one result,
counted once, and each prefix's keys live on its own shard only."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from benchmarks.redis_server import shard_of_key, spread_prefix
from ceylon_redis import Client, Settings, TaskDef, TaskStatus
from ceylon_redis.partitions import Partitions, partition_of
from tests.conftest import ROOT, Daemon
from tests.redis_server import ClusterSet, RedisServer
from tests.test_integration import FAST_REAP, run_counts, runners, wait_until, worker_id_of

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

ROLE = "work"
BULK, FAN = 1500, 20


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterSet]:
    """Three masters of this test's own."""
    cluster = ClusterSet(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _one_prefix_per_shard(cluster: ClusterSet) -> list[str]:
    shard = shard_of_key([n.port for n in cluster.nodes])
    chosen: dict[int, str] = {}
    for i in range(1000):
        name = f"shard{i}"
        chosen.setdefault(shard("{" + name + "}:"), name)
        if len(chosen) == len(cluster.nodes):
            return [chosen[k] for k in sorted(chosen)]
    raise AssertionError("no prefix found for some shard")


def test_prefixes_spread_over_three_shards(cluster: ClusterSet, own_redis: RedisServer,
                                           own_daemons: list[Daemon]) -> None:
    """``own_redis`` is the handlers' ledger, apart from the cluster."""
    _run(cluster, own_redis, own_daemons)


def _graph(prefix: str) -> list[TaskDef]:
    chain = [TaskDef(ROLE, {"i": i}, id=f"{prefix}-c{i}",
                     depends_on=[f"{prefix}-c{i - 1}"] if i else []) for i in range(5)]
    fan = [TaskDef(ROLE, {"f": i}, id=f"{prefix}-f{i}", depends_on=[f"{prefix}-c4"])
           for i in range(FAN)]
    sink = TaskDef(ROLE, {}, id=f"{prefix}-sink", depends_on=[t.id or "" for t in fan])
    return [*chain, *fan, sink]


def _run(cluster: ClusterSet, ledger: RedisServer, daemons: list[Daemon]) -> None:
    prefixes = _one_prefix_per_shard(cluster)
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


def test_one_role_split_over_three_shards(cluster: ClusterSet, own_redis: RedisServer,
                                          own_daemons: list[Daemon]) -> None:
    """One prefix with 3 partitions, one per shard: 2 workers and 2 coordinators share the
    role; chains enqueued task by task cross partitions. A worker and a coordinator are
    killed with kill -9 mid-run."""
    _run_partitioned(cluster, own_redis, own_daemons)


def _run_partitioned(cluster: ClusterSet, ledger: RedisServer, daemons: list[Daemon]) -> None:
    prefix = spread_prefix([n.port for n in cluster.nodes], 3)
    env = {**os.environ, **FAST_REAP, "CEYLON_REDIS_URL": cluster.url,
           "CEYLON_REDIS_PREFIX": prefix, "CEYLON_REDIS_PARTITIONS": "3",
           "CEYLON_TEST_LEDGER_URL": ledger.url, "PYTHONPATH": str(ROOT)}
    workers = [Daemon(["worker", "tests.handlers_for_tests:record", "--role", ROLE, "-c", "8"],
                      env) for _ in range(2)]
    coordinators = [Daemon(["coordinator"], env) for _ in range(2)]
    daemons += [*workers, *coordinators]
    for d in daemons:
        d.wait_for("started:", 20)

    settings = Settings(url=cluster.url, prefix=prefix, partitions=3)
    with Client(settings=settings) as client:
        ids = client.enqueue_many(ROLE, [{"sleep": 0.01}] * BULK)
        chains = []
        for c in range(10):  # each link enqueued alone: most edges cross partitions
            chain = [client.enqueue(ROLE, {"c": c}, task_id=f"ch{c}-0")]
            for i in range(1, 8):
                chain.append(client.enqueue(ROLE, {"c": c, "i": i}, task_id=f"ch{c}-{i}",
                                            depends_on=[chain[-1]]))
            chains.append(chain)
        graph = _graph(prefix)
        client.enqueue_graph(graph)
        ids += [t for chain in chains for t in chain] + [t.id or "" for t in graph]
        crossing = sum(partition_of(a, 3) != partition_of(b, 3)
                       for chain in chains for a, b in itertools.pairwise(chain))

        ledger_client = redis.Redis.from_url(ledger.url)
        wait_until(lambda: sum(run_counts(ledger_client, prefix, ids)) > 200, 20,
                   "the workers to get going")
        victim = workers[0]
        victim_id = worker_id_of(victim)
        for d in (victim, coordinators[0]):
            d.proc.kill()
            d.proc.wait(10)
        killed_at = time.monotonic()

        results = client.wait_many(ids, timeout=90)
        assert {r.status for r in results} == {TaskStatus.COMPLETED}
        assert [r.output["task"] for r in results] == ids
        for chain in chains:  # each link started after its prerequisite, in any partition
            infos = [client.get(t) for t in chain]
            for before, after in itertools.pairwise(infos):
                assert before.finished_at and after.started_at
                assert after.started_at >= before.finished_at, (before, after)
        runs = runners(ledger_client, prefix, ids)
        twice = [t for t, w in runs.items() if len(w) > 1]
        assert all(runs[t][0] == victim_id for t in twice), "a task ran twice needlessly"
        wait_until(lambda: client.stats(ROLE).overall.completed == len(ids), 20,
                   "the statistics to count each task once")
    print(f"\n{len(ids)} tasks over 3 partitions done {time.monotonic() - killed_at:.1f} s "
          f"after kill -9 of a worker and a coordinator; {crossing} of 70 chain edges crossed "
          f"partitions; {len(twice)} ran twice (the killed worker's)", end="")

    shard = shard_of_key([n.port for n in cluster.nodes])
    for i, node in enumerate(cluster.nodes):  # each partition on its own shard
        r = redis.Redis(port=node.port)
        for keys in Partitions(prefix, 3).all:
            slot_node = shard(keys.base)
            has = any(True for _ in r.scan_iter(match=keys.base + "task:*", count=1000))
            assert has == (slot_node == i), f"partition {keys.partition} keys on node {i}"
    assert all(d.proc.poll() is None for d in daemons if d not in (victim, coordinators[0]))
