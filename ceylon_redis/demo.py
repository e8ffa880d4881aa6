"""``ceylon-redis demo``: the skill-level example of Ceylon's tutorial, on Redis."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import redis

from .client import AsyncClient
from .connection import resolve_url
from .playground import Task, TaskProcessingPlayground
from .process import ProcessRequest, ProcessWorker
from .settings import DEFAULT_URL, redact_url, url_from_env


@dataclass
class WorkTask:
    id: int
    description: str
    difficulty: int


class SkillWorker(ProcessWorker):
    """Succeeds at tasks no harder than its skill level; sleeps ``difficulty * scale`` s."""

    def __init__(self, name: str, skill_level: int, scale: float = 1.0) -> None:
        super().__init__(name=name, role="worker")
        self.skill_level = skill_level
        self.scale = scale

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict[str, Any]]:
        task = request.data
        await asyncio.sleep(task.difficulty * self.scale)
        success = self.skill_level >= task.difficulty
        return success, {"task_id": task.id, "worker": self.name, "difficulty": task.difficulty}


DIFFICULTIES = (2, 5, 8, 3, 9, 6, 1, 7)


DEMO_PREFIX = "ceylon-demo"
KEEP = 86400
"""Seconds the demo's keys are kept on a real Redis (its task hashes' result TTL)."""


async def run_demo(scale: float = 0.2, url: str | None = None,
                   prefix: str = DEMO_PREFIX) -> bool:
    """Run the example; print each result and the success rate. True when every task ended.

    The Redis is ``url``, else CEYLON_REDIS_URL / REDIS_URL, else localhost:6379, else the
    embedded one (said on stderr). On a real Redis every key it leaves expires in a day.
    """
    chosen = resolve_url(url, allow_embedded=True, announce=False)
    embedded = chosen.startswith("embedded://")
    if embedded and not (url or url_from_env()):
        print(f"no Redis at {redact_url(DEFAULT_URL)}: running on an embedded in-process "
              "Redis (fakeredis); nothing is kept", file=sys.stderr)
    playground = TaskProcessingPlayground(name="task_playground", port=8000, url=chosen,
                                          prefix=prefix)
    workers = [SkillWorker("Junior", 3, scale), SkillWorker("Intermediate", 6, scale),
               SkillWorker("Senior", 9, scale)]
    tasks = [WorkTask(i, f"Task {i}", d) for i, d in enumerate(DIFFICULTIES, 1)]
    results = []
    async with playground.play(workers=workers) as active:
        for work in tasks:
            result = await active.add_and_execute_task(
                task=Task(name=f"Task {work.id}", processor="worker", input_data={"data": work}),
                wait_for_completion=True)
            assert result is not None
            results.append(result)
            out = result.output or {}
            verdict = "succeeded" if result.success else "failed"
            print(f"Task {work.id} (difficulty {work.difficulty}) {verdict} on "
                  f"{out.get('worker', '?')}")
    if not embedded:
        await expire_leftovers(chosen, prefix, KEEP)
    done = sum(1 for r in results if r.success)
    print(f"Success rate: {done}/{len(results)} = {done / len(results):.0%}")
    return len(results) == len(tasks)


async def expire_leftovers(url: str, prefix: str, seconds: int) -> int:
    """Give every key of the namespace ``prefix`` (and its partitions) without a TTL one of
    ``seconds`` (streams, the roles set, statistics: a demo should not stay forever);
    returns how many. Keys that have one keep it (EXPIRE NX, each key on its own)."""
    async with AsyncClient(url, prefix) as client:
        r = client.redis
        keys = [k for match in ("{" + prefix + "}:*", "{" + prefix + "~*}:*")
                async for k in r.scan_iter(match=match, count=1000)]
        set_now = 0
        for key in keys:
            try:
                set_now += bool(await r.expire(key, seconds, nx=True))
            except redis.ResponseError:  # Redis before 7 has no NX
                if await r.ttl(key) == -1:
                    set_now += bool(await r.expire(key, seconds))
        return set_now
