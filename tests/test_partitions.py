"""A namespace split into partitions (Settings.partitions), on the real Redis.

Tasks spread over the partitions by id; a graph stays whole in its graph id's
partition; a prerequisite in another partition releases its dependent through
the coordinator, once, whatever its outcome and whenever it ended.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis

from ceylon_redis import (
    AsyncClient,
    Client,
    Dep,
    DependencyError,
    TaskDef,
    TaskStatus,
    UnknownTaskError,
    ValidationError,
    Worker,
)
from ceylon_redis.keys import Keys
from ceylon_redis.partitions import partition_of
from ceylon_redis.settings import Settings
from tests.conftest import ROOT, delete_namespace

N = 3


def settings(redis_url: str, prefix: str, partitions: int = N) -> Settings:
    return Settings(url=redis_url, prefix=prefix, partitions=partitions, block_ms=100,
                    heartbeat_interval=0.5, worker_timeout=2.0, retry_backoff=0)


def ids_in(partition: int, stem: str, count: int = 1) -> list[str]:
    """Task ids that hash to ``partition``."""
    picked = (f"{stem}{i}" for i in itertools.count())
    return list(itertools.islice((t for t in picked if partition_of(t, N) == partition), count))


@asynccontextmanager
async def running(redis_url: str, prefix: str, handler: Any,
                  coordinator: bool = True) -> AsyncIterator[tuple[AsyncClient, Worker]]:
    s = settings(redis_url, prefix)
    client = AsyncClient(settings=s)
    worker = Worker(handler, role="role", settings=s, concurrency=4, coordinator=coordinator)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), 10)
    try:
        yield client, worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)
        await client.close()


async def echo(data: Any) -> Any:
    return data


async def test_tasks_spread_over_the_partitions_and_each_runs_once(
        redis_url: str, prefix: str, sync_redis: redis.Redis) -> None:
    seen: list[int] = []

    async def record(n: int) -> int:
        seen.append(n)
        return n * 2

    async with running(redis_url, prefix, record) as (client, _):
        ids = await client.enqueue_many("role", range(300))
        results = await client.wait_many(ids, timeout=30)
        stats = await client.stats()
    assert [r.output for r in results] == [n * 2 for n in range(300)]
    assert sorted(seen) == list(range(300))
    homes = [partition_of(t, N) for t in ids]
    for k in range(N):
        keys = Keys(prefix, k)
        assert sync_redis.exists(keys.task(ids[homes.index(k)]))
        assert sync_redis.sismember(keys.roles, "role")
    assert homes.count(0) < 200  # spread, not all in one partition
    assert sync_redis.get(Keys(prefix).partitions) == str(N).encode()
    assert stats.overall.completed == 300  # every partition's statistics, summed


async def test_a_dependency_in_another_partition_is_released_by_the_coordinator(
        redis_url: str, prefix: str) -> None:
    a, = ids_in(0, "a")
    b, = ids_in(1, "b")
    c, = ids_in(2, "c")

    async def handler(data: Any) -> Any:
        from ceylon_redis import current_task
        ctx = current_task()
        return {"data": data, "deps": ctx.dependency_data}

    async with running(redis_url, prefix, handler) as (client, worker):
        await client.enqueue("role", "A", task_id=a, delay=0.3)
        await client.enqueue("role", "B", task_id=b, depends_on=[a])
        await client.enqueue("role", "C", task_id=c, depends_on=[a, b])
        result = await client.wait(c, timeout=15)
        # A prerequisite already final when its dependent is enqueued: released at once.
        late, = ids_in(1, "late")
        await client.enqueue("role", "L", task_id=late, depends_on=[c])
        late_result = await client.wait(late, timeout=15)
        assert worker.coordinator is not None
        for _ in range(100):  # a release is counted once acked, which may be after it ran
            if worker.coordinator.released >= 4:
                break
            await asyncio.sleep(0.05)
        released = worker.coordinator.released
    assert result.output["deps"][b]["data"] == "B"
    assert result.output["deps"][a]["data"] == "A"
    assert late_result.output["deps"][c]["data"] == "C"
    assert released == 4


async def test_a_failure_in_another_partition_follows_each_edge_policy(
        redis_url: str, prefix: str) -> None:
    bad, = ids_in(0, "bad")
    cancelled, grand = ids_in(1, "cancel", 2)
    runs, = ids_in(2, "run")
    ignores, = ids_in(2, "ignore")

    async def handler(data: Any) -> Any:
        from ceylon_redis import current_task
        if data == "boom":
            raise RuntimeError("boom")
        return dict(current_task().failed_dependencies)

    async with running(redis_url, prefix, handler) as (client, _):
        await client.enqueue("role", "boom", task_id=bad, delay=0.3)
        await client.enqueue("role", "x", task_id=cancelled, depends_on=[bad])
        await client.enqueue("role", "x", task_id=grand, depends_on=[cancelled])
        await client.enqueue("role", "x", task_id=runs, depends_on=[Dep(bad, on_failure="run")])
        await client.enqueue("role", "x", task_id=ignores, depends_on=[bad], on_failure="ignore")
        out = dict(zip((cancelled, grand, runs, ignores), await client.wait_many(
            [cancelled, grand, runs, ignores], timeout=15)))
        # Enqueueing on a prerequisite that failed is refused on a cancel edge only.
        with pytest.raises(DependencyError, match=bad):
            await client.enqueue("role", "x", depends_on=[bad])
        with pytest.raises(UnknownTaskError, match="nope"):
            await client.enqueue("role", "x", depends_on=["nope"])
    assert out[cancelled].status is TaskStatus.CANCELLED
    assert out[cancelled].error.startswith(f"dependency {bad} failed")
    assert out[grand].status is TaskStatus.CANCELLED
    assert out[runs].success and "boom" in out[runs].output[bad]
    assert out[ignores].success and out[ignores].output == {}


async def test_a_graph_lives_in_its_graph_ids_partition(
        redis_url: str, prefix: str, sync_redis: redis.Redis) -> None:
    gid = "graph-1"
    tasks = [TaskDef("role", n, id=f"g-{n}", depends_on=[f"g-{n - 1}"] if n else [])
             for n in range(6)]
    async with running(redis_url, prefix, echo) as (client, _):
        graph = await client.enqueue_graph(tasks, graph_id=gid)
        results = await graph.wait(timeout=15)
        info = await client.get("g-5")  # not in its own id's partition: found by a probe
        handle = client.graph(gid)
        status = (await handle.info()).status
    home = Keys(prefix, partition_of(gid, N))
    assert [r.output for r in results] == list(range(6))
    assert all(sync_redis.exists(home.task(f"g-{n}")) for n in range(6))
    assert info.status is TaskStatus.COMPLETED and status == "completed"


async def test_every_process_must_agree_on_the_partition_count(
        redis_url: str, prefix: str) -> None:
    async with AsyncClient(settings=settings(redis_url, prefix)) as first:
        await first.enqueue("role", 1)
    async with AsyncClient(settings=settings(redis_url, prefix, partitions=2)) as other:
        with pytest.raises(ValidationError, match=f"{N} partition.*say 2"):
            await other.enqueue("role", 1)
    worker = Worker(echo, role="role", settings=settings(redis_url, prefix, partitions=1))
    with pytest.raises(ValidationError, match=f"{N} partition.*say 1"):
        await worker.run()
    await worker.redis.aclose()
    with pytest.raises(ValidationError, match="partitions"):
        Settings(partitions=0)


async def test_a_release_applied_twice_or_before_its_dependent_exists_counts_once(
        redis_url: str, prefix: str, sync_redis: redis.Redis) -> None:
    """What a coordinator crash (a release applied again) or a race with the dependent's
    enqueue (its release first) leave: the dependent runs once, with the output."""
    s = settings(redis_url, prefix)
    async with AsyncClient(settings=s) as client:
        p, = ids_in(0, "p")
        dep, = ids_in(1, "d")
        await client.enqueue("role", "P", task_id=p)
        base = Keys(prefix, 1).base
        from ceylon_redis.codec import encode
        for _ in range(2):  # the release comes twice, before its dependent exists
            await client.scripts.release(keys=[base], args=[dep, p, "COMPLETED", encode("out")])
        await client.enqueue("role", "D", task_id=dep, depends_on=[p])
        await client.scripts.release(keys=[base], args=[dep, p, "COMPLETED", encode("out")])
        assert (await client.get(dep)).status is TaskStatus.QUEUED
    assert sync_redis.xlen(Keys(prefix, 1).stream("role")) == 1
    assert not sync_redis.exists(Keys(prefix, 1).task(dep) + ":early")


async def test_dead_letters_of_every_partition_are_listed_retried_and_purged(
        redis_url: str, prefix: str) -> None:
    lone = [ids_in(p, f"dead{p}-")[0] for p in range(N)]
    gid = ids_in(0, "dgraph")[0]
    in_graph = ids_in(1, "dg-")[0]  # lives in the graph's partition 0, not its own
    healed = False

    async def handler(data: Any) -> Any:
        if not healed:
            raise RuntimeError(f"bad {data}")
        return data

    async with running(redis_url, prefix, handler) as (client, _):
        for tid in lone:
            await client.enqueue("role", tid, task_id=tid, max_attempts=1)
        await client.enqueue_graph([TaskDef("role", in_graph, id=in_graph, max_attempts=1)],
                                   graph_id=gid)
        every = [*lone, in_graph]
        assert not any(r.success for r in await client.wait_many(every, timeout=15))

        letters = await client.dead_letters()
        assert sorted(d.task_id for d in letters) == sorted(every)
        assert [d.id for d in letters] == sorted(
            (d.id for d in letters), key=lambda e: tuple(map(int, e.split("-"))), reverse=True)
        assert await client.dead_letter_count() == 4
        assert await client.dead_letter_counts() == {"role": 4}
        letter = await client.dead_letter(in_graph)
        assert letter.error.startswith(f"RuntimeError: bad {in_graph}")
        with Client(settings=settings(redis_url, prefix)) as blocking:  # the CLI's client
            assert blocking.dead_letter_counts() == {"role": 4}
            assert [d.id for d in blocking.dead_letters()] == [d.id for d in letters]
            assert blocking.dead_letter(in_graph).task_id == in_graph
        entry_ids = [d.id for d in letters]
        for d in letters:  # partitions number their own entries: two may die in one ms
            if entry_ids.count(d.id) == 1:
                assert (await client.dead_letter(d.id)).task_id == d.task_id
            else:
                with pytest.raises(ValidationError, match="name the task id instead"):
                    await client.dead_letter(d.id)

        healed = True
        report = await client.retry_dead([lone[1], in_graph, "nope"])
        assert report.retried == 2
        assert list(report.skipped) == ["nope"] and "unknown task" in report.skipped["nope"]
        report = await client.retry_dead()
        assert report.retried == 2 and report.skipped == {}
        assert [r.output for r in await client.wait_many(every, timeout=15)] == every
        assert await client.dead_letter_count() == 0

        healed = False
        more = [ids_in(p, f"again{p}-")[0] for p in range(N)]
        for tid in more:
            await client.enqueue("role", tid, task_id=tid, max_attempts=1)
        await client.wait_many(more, timeout=15)
        assert await client.purge_dead([more[2]]) == 1
        assert await client.purge_dead() == 2
        assert await client.dead_letters() == []

        later = [ids_in(p, f"later{p}-")[0] for p in range(N)]
        for tid in later:
            await client.enqueue("role", tid, task_id=tid, delay=60)
        assert await client.purge("role") == 3
        assert {(await client.get(t)).status for t in later} == {TaskStatus.CANCELLED}


async def test_a_retried_graph_task_waits_again_on_its_prerequisite_in_another_partition(
        redis_url: str, prefix: str, sync_redis: redis.Redis) -> None:
    pre, gone = ids_in(1, "pre", 2)
    gid, = ids_in(0, "rgraph")
    home = Keys(prefix, 0)
    failing = {"flaky", "solid"}

    async def handler(data: Any) -> Any:
        from ceylon_redis import current_task
        if data in failing:
            raise RuntimeError("not yet")
        return {"data": data, "deps": current_task().dependency_data}

    async with running(redis_url, prefix, handler) as (client, _):
        await client.enqueue("role", "P", task_id=pre)
        await client.enqueue("role", "G", task_id=gone, result_ttl=1)
        await client.wait_many([pre, gone], timeout=15)
        graph = await client.enqueue_graph([
            TaskDef("role", "flaky", id="r-a", depends_on=[pre], max_attempts=1),
            TaskDef("role", "down", id="r-b", depends_on=["r-a"]),
            TaskDef("role", "solid", id="r-c", depends_on=[gone], max_attempts=1),
        ], graph_id=gid)
        assert not any(r.success for r in await graph.wait(timeout=15))
        assert sync_redis.exists(home.task("r-a"))  # the graph's tasks live in its partition
        failing.clear()

        # A retry cut off after its script, before its links: the tasks wait, unreleased...
        reply = await client.scripts.graph_retry(keys=[home.base], args=[gid, "1"])
        assert reply[1] == 3 and len(reply[2]) == 6
        await asyncio.sleep(0.5)
        assert {(await client.get(t)).status for t in ("r-a", "r-c")} == {TaskStatus.WAITING}
        for _ in range(50):  # gone's result expires meanwhile (result_ttl=1)
            if not sync_redis.exists(Keys(prefix, 1).task(gone)):
                break
            await asyncio.sleep(0.1)
        # ...until the next retry links them again: a final prerequisite releases at once,
        # one that expired releases its dependent as failed, naming why.
        assert await graph.retry_failed() == 0
        out = {r.task_id: r for r in await graph.wait(timeout=15)}
    assert out["r-a"].success and out["r-a"].output["deps"][pre]["data"] == "P"
    assert out["r-b"].success
    assert out["r-c"].status is TaskStatus.CANCELLED
    assert f"prerequisite {gone} no longer exists" in (out["r-c"].error or "")


async def test_a_dead_letter_retried_gets_its_inputs_from_another_partition_again(
        redis_url: str, prefix: str) -> None:
    pre, = ids_in(1, "xpre")
    dep, = ids_in(2, "xdep")
    failing = True

    async def handler(data: Any) -> Any:
        from ceylon_redis import current_task
        if data == "dep" and failing:
            raise RuntimeError("not yet")
        return {"data": data, "deps": current_task().dependency_data}

    async with running(redis_url, prefix, handler) as (client, _):
        await client.enqueue("role", "pre", task_id=pre)
        await client.enqueue("role", "dep", task_id=dep, depends_on=[pre], max_attempts=1,
                             result_ttl=1)
        assert not (await client.wait(dep, timeout=15)).success
        await asyncio.sleep(1.5)  # past its result TTL: a dead letter keeps it, and its inputs
        failing = False
        assert (await client.retry_dead([dep])).retried == 1
        result = await client.wait(dep, timeout=15)
    assert result.success and result.output["deps"] == {pre: {"data": "pre", "deps": {}}}


async def test_edges_linked_together_fall_back_to_probing_a_graph_task_elsewhere(
        redis_url: str, prefix: str) -> None:
    a1, a2, gx, bad = ids_in(1, "grp", 4)
    gid, = ids_in(0, "ggrp")

    async def handler(data: Any) -> Any:
        from ceylon_redis import current_task
        if data == "bad":
            raise RuntimeError("bad")
        return {"data": data, "deps": sorted(current_task().dependency_data)}

    async with running(redis_url, prefix, handler) as (client, _):
        for tid, data in ((a1, "a1"), (a2, "a2"), (bad, "bad")):
            await client.enqueue("role", data, task_id=tid, max_attempts=1)
        await client.enqueue_graph([TaskDef("role", "gx", id=gx)], graph_id=gid)
        sink = await client.enqueue("role", "sink", depends_on=[a1, a2, gx])
        result = await client.wait(sink, timeout=15)
        await client.wait(bad, timeout=15)
        with pytest.raises(DependencyError, match=f"prerequisite {bad} of task .* is FAILED"):
            await client.enqueue("role", "x", depends_on=[a1, bad, a2])
    assert result.output == {"data": "sink", "deps": sorted([a1, a2, gx])}


async def test_an_entry_id_two_partitions_use_is_refused_for_the_task_id(
        redis_url: str, prefix: str, sync_redis: redis.Redis) -> None:
    for k in (1, 2):
        sync_redis.xadd(Keys(prefix, k).dead, {"task": f"t{k}", "role": "role"}, id="5-1")
    async with AsyncClient(settings=settings(redis_url, prefix)) as client:
        for call in (client.dead_letter("5-1"), client.purge_dead(["5-1"])):
            with pytest.raises(ValidationError, match="5-1 names a dead letter in 2 partitions"):
                await call
        assert await client.dead_letter_count() == 2
        assert await client.purge_dead(["9-9"]) == 0


STOPS = """
import asyncio, sys, time
from loguru import logger
logger.enable("ceylon_redis"); logger.remove(); logger.add(sys.stderr, level="WARNING")
from tests.test_partitions import settings, ids_in
from ceylon_redis import AsyncClient, Worker

async def echo(data):
    return data

async def main(url, prefix):
    s = settings(url, prefix)
    client = AsyncClient(settings=s)
    worker = Worker(echo, role="role", settings=s, concurrency=4, coordinator=True)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), 10)
    a, = ids_in(0, "a"); b, = ids_in(1, "b"); c, = ids_in(2, "c")
    await client.enqueue("role", "A", task_id=a, delay=0.3)
    await client.enqueue("role", "B", task_id=b, depends_on=[a])
    await client.enqueue("role", "C", task_id=c, depends_on=[a, b])
    await client.wait(c, timeout=15)
    began = time.monotonic()
    worker.stop()
    await task
    print(time.monotonic() - began)
    await client.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_worker_with_its_coordinator_stops_at_once(redis_url: str, prefix: str) -> None:
    """Its coordinator's chores end on the stop itself, not only on a cancel, which could
    be lost: 4 stops in 5 of this daemon took 5 s (the wait for background tasks). A
    process of its own per stop, as a daemon runs (asyncio.run)."""
    took, logs = [], []
    r = redis.Redis.from_url(redis_url)
    for round_ in range(4):
        out = subprocess.run([sys.executable, "-c", STOPS, redis_url, f"{prefix}-{round_}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        delete_namespace(r, f"{prefix}-{round_}")
        assert out.returncode == 0, out.stderr
        took.append(float(out.stdout.strip().splitlines()[-1]))
        logs.append(out.stderr[-2000:])
    r.close()
    assert max(took) < 2.5, (took, logs)  # the daemon's warnings say what it waited for
