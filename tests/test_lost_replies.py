"""A start or take that Redis did but whose reply an outage lost: the worker adopts the
entries left pending for it as soon as Redis answers, each attempt as it was begun, so
every task runs once, at once (not after the heartbeat gives them back as orphans)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import fakeredis
import redis

from ceylon_redis import AsyncClient, Settings, Worker


class Losing:
    """start.lua, run for real, whose first ``times`` replies to a take (it reads the
    entries itself: a blocking read's start is retried as it is) are lost on the way back."""

    def __init__(self, script: Any, times: int) -> None:
        self.script, self.times, self.lost = script, times, 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = await self.script(*args, **kwargs)
        if self.lost < self.times and kwargs["args"][2] == ">":
            self.lost += 1
            raise redis.ConnectionError("connection lost (injected after the script ran)")
        return reply


async def test_lost_start_replies_are_adopted_and_run_once(
        fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    settings = Settings(prefix=prefix, block_ms=50, worker_timeout=300)  # no orphan give-back
    async with AsyncClient(settings=settings, redis=fake_async) as client:
        ids = await client.enqueue_many("role", range(40))

        async def echo(data: Any) -> Any:
            return data

        worker = Worker(echo, role="role", redis_client=fake_async, settings=settings,
                        concurrency=4)
        rt = worker._runtime
        losing = Losing(rt.scripts.start, 3)
        rt.scripts = dataclasses.replace(rt.scripts, start=losing)
        task = asyncio.create_task(worker.run())
        try:
            results = await client.wait_many(ids, timeout=15)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)
        assert [r.output for r in results] == list(range(40))
        assert {(await client.get(t)).attempt for t in ids} == {1}
        assert {(await client.get(t)).crashes for t in ids} == {0}
        assert losing.lost == 3
