"""Redis's commands per task on the hot path, counted by Redis itself (INFO commandstats,
commands run inside scripts included): a change that adds a command or a round trip per
task fails here. Not timed: counts only, on a redis-server of the test's own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from ceylon_redis import AsyncClient, Worker
from tests.redis_server import RedisServer

TASKS = 2000
BUDGET = 9.75
"""Commands per task of enqueue_many + run + finish, no waiter: 9.40 measured on
2026-12-04 (HSET 3: enqueue, start, finish; HMGET 2: start, finish; EXISTS at enqueue,
the id's check; EXPIRE and HDEL at finish; XADD 1.2: the task's entry, and the lifecycle
stream's one entry per 16 tasks a call moves alike; the script calls, the reads, and per
finish call one XACK, one XPENDING and one XTRIM (an XINFO GROUPS when none is pending)
that take its entries off the stream, one EXISTS for dependents, and heartbeats,
amortised over batches).
It was 19.15 before a plain task skipped the keys only tasks with prerequisites or
dependents have, start wrote the attempt in its HSET, and finish read the hash once; and
12.23 before finish acknowledged, took entries off the stream and looked for dependents
once per call, not once per task. The failure prints the breakdown; lower the budget when
a change saves."""
WITH_COORDINATOR = 0.1
"""What a coordinator adds per task: finish writes one outcomes entry per call (up to 50
outcomes), not one per task as before 2026-12-04 (1.0 then)."""


async def _noop(data: Any) -> Any:
    return data


def _calls(r: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()
            if k not in ("cmdstat_info", "cmdstat_config")}


@pytest.mark.parametrize("coordinated", [False, True], ids=["plain", "coordinated"])
async def test_a_plain_enqueue_run_finish_cycle_stays_within_its_command_budget(
        own_redis: RedisServer, coordinated: bool) -> None:
    r = redis.Redis(port=own_redis.port)
    events = "{cost}:events"
    if coordinated:  # as a coordinator makes it: finish then notes outcomes there
        r.xgroup_create(events, "coordinators", id="0", mkstream=True)
    budget = BUDGET + (WITH_COORDINATOR if coordinated else 0)
    client = AsyncClient(own_redis.url, "cost")
    worker = Worker(_noop, role="noop", url=own_redis.url, prefix="cost", concurrency=100,
                    reap=False)
    await client.enqueue("noop", -1)  # loads the scripts and opens the connections
    r.config_resetstat()
    await client.enqueue_many("noop", range(TASKS))
    run = asyncio.create_task(worker.run())
    slots = worker.consumers[0].slots
    for _ in range(3000):
        if slots.processed >= TASKS + 1:
            break
        await asyncio.sleep(0.01)
    worker.stop()
    await run
    await client.close()
    calls = _calls(r)
    r.close()
    assert slots.processed == TASKS + 1 and slots.failed == 0
    per_task = sum(calls.values()) / TASKS
    breakdown = ", ".join(f"{k} {v / TASKS:.2f}" for k, v in
                          sorted(calls.items(), key=lambda kv: -kv[1]))
    if coordinated:
        noted = r.xrange(events)
        assert sum(len(f[b"t"].split()) for _, f in noted) == TASKS + 1
        assert len(noted) <= TASKS / 20, f"{len(noted)} outcome entries for {TASKS} tasks"
    assert per_task <= budget, f"{per_task:.2f} commands per task (budget {budget}): {breakdown}"
    assert per_task >= budget - 2, (f"{per_task:.2f} commands per task, well under the budget "
                                    f"{budget}: lower BUDGET to hold the gain ({breakdown})")
