"""Redis's commands per task on the hot path, counted by Redis itself (INFO commandstats,
commands run inside scripts included): a change that adds a command or a round trip per
task fails here. Not timed: counts only, on a redis-server of the test's own."""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from ceylon_redis import AsyncClient, Worker
from tests.redis_server import RedisServer

TASKS = 2000
BUDGET = 12.5
"""Commands per task of enqueue_many + run + finish, no waiter: 12.16 measured on
2026-12-03 (HSET 3: enqueue, start, finish; HMGET 2: start, finish; EXISTS at enqueue,
the id's check; EXPIRE, HDEL, XACK, XDEL at finish; SUNION, finish's one look for
dependents; XADD 1.14: the coordinators' outcome event, and the lifecycle stream's one
entry per 16 tasks a call moves alike; the script calls, reads and heartbeats amortised
over batches; 12.23 with the lifecycle stream, 2026-12-04).
It was 19.15 before a plain task skipped the keys only tasks with prerequisites or
dependents have, start wrote the attempt in its HSET, and finish read the hash once.
The failure prints the breakdown; lower the budget when a change saves."""


async def _noop(data: Any) -> Any:
    return data


def _calls(r: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()
            if k not in ("cmdstat_info", "cmdstat_config")}


async def test_a_plain_enqueue_run_finish_cycle_stays_within_its_command_budget(
        own_redis: RedisServer) -> None:
    r = redis.Redis(port=own_redis.port)
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
    assert per_task <= BUDGET, f"{per_task:.2f} commands per task (budget {BUDGET}): {breakdown}"
    assert per_task >= BUDGET - 2, (f"{per_task:.2f} commands per task, well under the budget "
                                    f"{BUDGET}: lower BUDGET to hold the gain ({breakdown})")
