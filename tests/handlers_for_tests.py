"""Handlers that the integration tests' worker daemons load as ``tests.handlers_for_tests:NAME``.

The daemons run with ``CEYLON_REDIS_URL`` and ``CEYLON_REDIS_PREFIX`` set (see
``conftest.spawn_worker``); the recording handlers write their bookkeeping
under the test's own namespace, ``{prefix}:test:...``, so conftest deletes it.
It goes to ``CEYLON_TEST_LEDGER_URL`` instead where set: a Redis the test does not
fail over or cut off, so the bookkeeping survives what the queue's Redis goes through.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from ceylon_redis import ProcessRequest, ProcessWorker, current_task

_async_client: aioredis.Redis | None = None
_sync_client: redis.Redis | None = None


def _base() -> str:
    return "{" + os.environ["CEYLON_REDIS_PREFIX"] + "}:test:"


def runs_key(prefix: str, task_id: str) -> str:
    """How many times a task's handler was entered (INCR at the start of each run)."""
    return "{" + prefix + "}:test:runs:" + task_id


def who_key(prefix: str, task_id: str) -> str:
    """The worker ids that ran a task, one list element per run."""
    return "{" + prefix + "}:test:who:" + task_id


def _ledger_url() -> str:
    return os.environ.get("CEYLON_TEST_LEDGER_URL") or os.environ["CEYLON_REDIS_URL"]


def _aredis() -> aioredis.Redis:
    global _async_client
    if _async_client is None:  # one daemon runs one event loop: one client is enough
        _async_client = aioredis.Redis.from_url(_ledger_url())
    return _async_client


def _sredis() -> redis.Redis:
    global _sync_client
    if _sync_client is None:  # thread-safe: a connection pool behind it
        _sync_client = redis.Redis.from_url(_ledger_url())
    return _sync_client


def _sleep_of(data: Any) -> float:
    if isinstance(data, dict):
        return float(data.get("sleep", 0))
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    return 0.0


async def echo(data: Any) -> Any:
    """Async no-op: hands the payload back."""
    return {"echo": data}


def double_sync(data: Any) -> Any:
    """A plain (sync) function, run in the worker's thread pool."""
    return data * 2


async def slow(data: Any) -> Any:
    """Sleeps ``data`` seconds (or ``data['sleep']``), then returns the payload."""
    await asyncio.sleep(_sleep_of(data))
    return data


async def boom(data: Any) -> Any:
    """Always fails."""
    raise ValueError(f"boom on {data!r}")


async def difficulty(data: Any) -> Any:
    """Takes a dataclass payload by attribute; returns a computed value and the payload itself."""
    return {"double": data.difficulty * 2, "label": data.label.upper(),
            "inner_x": data.inner.x, "payload": data}


@dataclass
class Point:
    x: int
    y: int


async def make_point(data: Any) -> Any:
    """Returns a dataclass (it reaches the client as a Record unless registered there)."""
    return Point(int(data["x"]), int(data["y"]))


def order_key(prefix: str) -> str:
    """The tasks ``note_order`` ran, in the order they started (their data)."""
    return "{" + prefix + "}:test:order"


async def note_order(data: Any) -> Any:
    """Appends the task's priority and id to one list per namespace: the order of starts."""
    ctx = current_task()
    await _aredis().rpush(_base() + "order", f"{data}:{ctx.id}")
    return data


def spans_key(prefix: str) -> str:
    """``start <task> <attempt> <time>`` and ``end ...`` of every ``span`` run, in order."""
    return "{" + prefix + "}:test:spans"


async def span(data: Any) -> Any:
    """Notes when it starts and ends (wall clock, shared by the daemons of one machine),
    sleeping ``data`` seconds between: the test rebuilds how many ran at once."""
    ctx = current_task()
    r = _aredis()
    await r.rpush(_base() + "spans", f"start {ctx.id} {ctx.attempt} {time.time():.6f}")
    await asyncio.sleep(_sleep_of(data))
    await r.rpush(_base() + "spans", f"end {ctx.id} {ctx.attempt} {time.time():.6f}")
    return data


async def record(data: Any) -> Any:
    """Counts each run of a task (INCR), notes who ran it, sleeps if asked, reports itself."""
    ctx = current_task()
    r = _aredis()
    async with r.pipeline(transaction=False) as pipe:
        pipe.incr(_base() + "runs:" + ctx.id)
        pipe.rpush(_base() + "who:" + ctx.id, ctx.worker)
        await pipe.execute()
    await asyncio.sleep(_sleep_of(data))
    return {"task": ctx.id, "worker": ctx.worker, "attempt": ctx.attempt, "data": data}


def record_sync(data: Any) -> Any:
    """``record`` as a sync function: ``current_task()`` also works in the thread pool."""
    ctx = current_task()
    r = _sredis()
    with r.pipeline(transaction=False) as pipe:
        pipe.incr(_base() + "runs:" + ctx.id)
        pipe.rpush(_base() + "who:" + ctx.id, ctx.worker)
        pipe.execute()
    time.sleep(_sleep_of(data))
    return {"task": ctx.id, "worker": ctx.worker, "attempt": ctx.attempt, "data": data}


class Doubler(ProcessWorker):
    """A Ceylon-style ProcessWorker: doubles ``input_data`` (a number)."""

    async def _processor(self, request: ProcessRequest, time: int) -> Any:
        return True, request.input_data * 2


class Failer(ProcessWorker):
    """A ProcessWorker whose processor raises."""

    async def _processor(self, request: ProcessRequest, time: int) -> Any:
        raise RuntimeError(f"failer refuses {request.input_data!r}")


# One daemon serving two roles: ``worker tests.handlers_for_tests:PROCESSORS``.
PROCESSORS = [Doubler("doubler", "dbl"), Failer("failer", "bad")]


async def node(data: Any) -> Any:
    """A DAG node: counts its runs and who ran it, fails when ``data['fail']``, else returns
    its value plus its completed prerequisites' sums, and which prerequisites failed."""
    ctx = current_task()
    async with _aredis().pipeline(transaction=False) as pipe:
        pipe.incr(_base() + "runs:" + ctx.id)
        pipe.rpush(_base() + "who:" + ctx.id, ctx.worker)
        await pipe.execute()
    data = data or {}
    await asyncio.sleep(_sleep_of(data))
    if data.get("fail"):
        raise RuntimeError(f"node {ctx.id} told to fail")
    total = int(data.get("value", 1)) + sum(
        int(out["sum"]) for out in ctx.dependency_data.values() if isinstance(out, dict))
    return {"sum": total, "failed": sorted(ctx.failed_dependencies)}


async def flaky(data: Any) -> Any:
    """Fails while the key ``{prefix}:test:fail:<task id>`` exists; fails its first attempt
    when ``data['fail_first']``; counts runs like ``node``."""
    ctx = current_task()
    r = _aredis()
    await r.incr(_base() + "runs:" + ctx.id)
    await asyncio.sleep(_sleep_of(data))
    if await r.exists(_base() + "fail:" + ctx.id):
        raise RuntimeError(f"{ctx.id} is told to fail")
    if isinstance(data, dict) and data.get("fail_first") and ctx.attempt == 1:
        raise RuntimeError(f"{ctx.id} fails its first attempt")
    return {"task": ctx.id, "attempt": ctx.attempt}


async def progressing(data: Any) -> Any:
    """Reports ``data['steps']`` progress steps ``data['sleep']`` seconds apart (with the
    step as info); fails its first attempt when ``data['fail_first']``."""
    ctx = current_task()
    steps, pause = int(data.get("steps", 10)), float(data.get("sleep", 0))
    for i in range(1, steps + 1):
        ctx.progress(i / steps, {"step": i})
        await asyncio.sleep(pause)
    if data.get("fail_first") and ctx.attempt == 1:
        raise RuntimeError(f"{ctx.id} fails its first attempt")
    return steps
