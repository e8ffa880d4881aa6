"""streaq: a ``Worker`` as asyncio producer, ``streaq run`` worker processes, results in
streaq's own result keys.

This module is also what the worker imports: ``async_worker`` and ``sync_worker`` are
built on first access (module ``__getattr__``) from the benchmark's env, so importing it
stays cheap and the producer never builds them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from typing import Any, ClassVar

from streaq import TaskStatus, Worker
from streaq.task import Task

from benchmarks.peers.base import CONCURRENCY_ENV, URL_ENV, Peer, WrongResult

QUEUE = "bench"
TASK_NAME = "noop"
#: result keys read per MGET by outputs()
RESULT_BATCH = 1000
#: seconds between two status checks of the task outputs() waits for
POLL = 0.002


async def noop_async(value: int) -> int:
    """The async handler: returns its input."""
    return value


def noop_sync(value: int) -> int:
    """The sync handler (run in anyio's worker threads): returns its input."""
    return value


def make_worker(url: str, kind: str, concurrency: int = 16) -> Worker[None]:
    """A Worker with the kind's handler registered as TASK_NAME.

    ``silent=True`` turns off streaq's two INFO log lines per task (the CLI has no log
    level option), as the other peers run their workers at WARNING. Serializer: streaq's
    default, pickle; results expire after the default task ttl, 5 minutes.
    """
    worker: Worker[None] = Worker(redis_url=url, queue_name=QUEUE, concurrency=concurrency)
    worker.task(name=TASK_NAME, silent=True)(noop_async if kind == "async" else noop_sync)
    return worker


def __getattr__(name: str) -> Worker[None]:
    """``async_worker`` / ``sync_worker`` for ``streaq run``, from the env."""
    kinds = {"async_worker": "async", "sync_worker": "sync"}
    if name not in kinds:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return make_worker(os.environ[URL_ENV], kinds[name], int(os.environ[CONCURRENCY_ENV]))


class Streaq(Peer):
    name = "streaq"
    package = "streaq"
    # async: 100 like the other asyncio peers (streaq's default is 16: 16, 32 and 100
    # drained alike here). sync: 10, which is also the thread limit (sync_concurrency
    # defaults to concurrency; 100 tasks on 10 threads drained no faster)
    concurrency: ClassVar[dict[str, int]] = {"async": 100, "sync": 10}
    notes = ("asyncio-only producer; bulk: Worker.enqueue_many (one pipeline); pickle "
             "(streaq's default); results: MGET of streaq's result keys, waiting by "
             "Task.status(); round trip: Task.result(), whose coredis pubsub teardown "
             "adds 0.1 s to every call; dependencies: Task.start(after=...), enqueued one "
             "by one as the docs advise")

    def open(self) -> None:
        self.worker = make_worker(self.url, "async")
        self.noop = self.worker.registry[TASK_NAME]
        self.aw(self._aopen())

    async def _aopen(self) -> None:
        # the Worker's async context (its coredis pool) must be entered and left by the
        # same asyncio task, so one long-lived task holds it open between primitives
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        self._holder = asyncio.ensure_future(self._hold(ready))
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({self._holder, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._holder.done():
            self._holder.result()  # raises what failed

    async def _hold(self, ready: asyncio.Event) -> None:
        async with self.worker:
            ready.set()
            await self._stop.wait()

    def close(self) -> None:
        self.aw(self._aclose())

    async def _aclose(self) -> None:
        self._stop.set()
        await self._holder

    async def enqueue_one_async(self, value: int) -> Task[Any, Any]:
        return await self.noop.enqueue(value)

    async def enqueue_bulk_async(self, values: list[int]) -> list[Task[Any, Any]]:
        tasks = [self.noop.enqueue(v) for v in values]
        await self.worker.enqueue_many(tasks)
        return tasks

    async def is_done(self, handle: Task[Any, Any]) -> bool:
        return await handle.status() == TaskStatus.DONE

    async def outputs(self, handles: list[Task[Any, Any]], timeout: float) -> list[Any]:
        """MGET the result keys in order; at the first missing one, poll its status.

        Not Task.result(): each call costs 100 ms more than the wait (see round_trip).
        """
        deadline = time.perf_counter() + timeout
        out: list[Any] = []
        while len(out) < len(handles):
            batch = handles[len(out):len(out) + RESULT_BATCH]
            raws = await self.worker.redis.mget([self.worker.results_key + t.id for t in batch])
            for raw in raws:
                if raw is None:
                    break
                out.append(self._output(await self.worker.deserialize(raw)))
            else:
                continue
            while await handles[len(out)].status() != TaskStatus.DONE:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{self.name}: {len(handles) - len(out)} results "
                                       f"missing after {timeout:.0f} s")
                await asyncio.sleep(POLL)
        return out

    def _output(self, data: dict[str, Any]) -> Any:
        if not data["s"]:
            raise WrongResult(f"{self.name}: task failed: {data['r']!r}")
        return data["r"]

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        # concurrency reaches the Worker through BENCH_CONCURRENCY (base.worker_env)
        return [sys.executable, "-m", "streaq", "run",
                f"benchmarks.peers.streaq_peer:{kind}_worker"]

    async def round_trip(self, value: int) -> Any:
        # Task.result() is streaq's enqueue-and-wait. It subscribes to the task's
        # channel, and leaving coredis's pubsub context waits out its
        # unsubscription_timeout (0.1 s) every time: a 100 ms floor streaq users get
        result = await (await self.noop.enqueue(value)).result(timeout=30)
        if not result.success:
            raise WrongResult(f"{self.name}: task failed: {result.exception!r}")
        return result.result

    async def chain(self, depth: int, timeout: float) -> None:
        tasks = [self.noop.enqueue(i) for i in range(depth)]
        await tasks[0]
        for prev, task in itertools.pairwise(tasks):
            await task.start(after=prev.id)
        await self._check(tasks[-1], depth - 1, timeout)

    async def fan_in(self, width: int, timeout: float) -> None:
        root = await self.noop.enqueue(-1)
        children = [self.noop.enqueue(i).start(after=root.id) for i in range(width)]
        # enqueued one by one, concurrently: each only names the root, already queued
        await asyncio.gather(*children)
        sink = await self.noop.enqueue(width).start(after=[c.id for c in children])
        await self._check(sink, width, timeout)

    async def _check(self, task: Task[Any, Any], want: int, timeout: float) -> None:
        (got,) = await self.outputs([task], timeout)
        if got != want:
            raise WrongResult(f"{self.name}: last task gave {got!r}, expected {want!r}")
