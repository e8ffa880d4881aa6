"""taskiq + taskiq-redis: ``RedisStreamBroker`` producer, ``taskiq worker`` processes,
results in ``RedisAsyncResultBackend``.

This module is also what the worker imports (``async_worker_broker`` /
``sync_worker_broker`` are broker factories for the ``taskiq worker`` command), so it
imports nothing heavier than taskiq itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, ClassVar, cast

from redis.asyncio import Redis
from taskiq import AsyncTaskiqDecoratedTask, AsyncTaskiqTask, TaskiqResult
from taskiq.compat import model_validate
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from benchmarks.peers.base import URL_ENV, Peer, WrongResult

TASK_NAME = "bench_noop"
QUEUE = "bench-taskiq"
#: connections the producer's broker and result backend may each open (their pools
#: are unbounded by default, and a gather of thousands of kiq() would open thousands).
#: 8 enqueued as fast as 16 or 50 (about 3,500/s; 1 gave 3,100/s), and each new
#: connection adds some 35 kB to Redis' used_memory, billed to the memory workload
PRODUCER_POOL = 8
#: results read per MGET by outputs()
RESULT_BATCH = 1000
#: seconds between two is_ready checks of the task outputs() waits for
POLL = 0.002


async def noop_async(value: int) -> int:
    """The async handler: returns its input."""
    return value


def noop_sync(value: int) -> int:
    """The sync handler (run in the worker's thread pool): returns its input."""
    return value


def make_broker(url: str, pool: int | None = None) -> RedisStreamBroker:
    """The stream broker with its Redis result backend, as producer and worker share it.

    ``consumer_id="0"``: the consumer group starts at the head of the stream, so tasks
    enqueued before the first worker ever started (or after the database was emptied) are delivered;
    the default ``"$"`` would skip them.
    """
    # the backend keeps taskiq's default serializer, pickle; results never expire
    backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(
        url, max_connection_pool_size=pool)
    broker = RedisStreamBroker(url, queue_name=QUEUE, consumer_id="0",
                               max_connection_pool_size=pool)
    return broker.with_result_backend(backend)


def _worker_broker(fn: Any) -> RedisStreamBroker:
    broker = make_broker(os.environ[URL_ENV])
    broker.register_task(fn, task_name=TASK_NAME)
    return broker


def async_worker_broker() -> RedisStreamBroker:
    """Broker factory for ``taskiq worker``: the async handler under TASK_NAME."""
    return _worker_broker(noop_async)


def sync_worker_broker() -> RedisStreamBroker:
    """Broker factory for ``taskiq worker``: the sync handler under TASK_NAME."""
    return _worker_broker(noop_sync)


class Taskiq(Peer):
    name = "taskiq"
    package = "taskiq"
    # async: --max-async-tasks 100 (taskiq's default). sync: a thread pool of 10, as the
    # other peers; see worker_argv for the settings tried
    concurrency: ClassVar[dict[str, int]] = {"async": 100, "sync": 10}
    notes = ("asyncio-only producer (kiq); bulk: gather of single kiq() (no bulk API); "
             "RedisStreamBroker; results: RedisAsyncResultBackend (pickle by default), "
             "read by MGET (one GET per get_result otherwise); no task dependencies in "
             "taskiq itself")

    def open(self) -> None:
        self.broker = make_broker(self.url, PRODUCER_POOL)
        self.task: AsyncTaskiqDecoratedTask[[int], Any] = self.broker.register_task(
            noop_async, task_name=TASK_NAME)
        self.backend = cast(RedisAsyncResultBackend[Any], self.broker.result_backend)
        self.aw(self.broker.startup())

    def close(self) -> None:
        self.aw(self.broker.shutdown())  # closes the broker's and the backend's pools

    async def enqueue_one_async(self, value: int) -> AsyncTaskiqTask[Any]:
        return await self.task.kiq(value)

    async def enqueue_bulk_async(self, values: list[int]) -> list[AsyncTaskiqTask[Any]]:
        # no bulk API: many kiq() at once, bounded by the producer's connection pool
        return list(await asyncio.gather(*(self.task.kiq(v) for v in values)))

    async def is_done(self, handle: AsyncTaskiqTask[Any]) -> bool:
        return await handle.is_ready()

    async def outputs(self, handles: list[AsyncTaskiqTask[Any]], timeout: float) -> list[Any]:
        """Read the results in order, a batch at a time; at the first missing, poll is_ready.

        The backend reads one result per call (a GET each, about 2,500/s from this
        harness, no faster than a worker drains), so a batch is one MGET on the
        backend's own pool, decoded as its get_result decodes.
        """
        deadline = time.perf_counter() + timeout
        out: list[Any] = []
        while len(out) < len(handles):
            for res in await self._results(handles[len(out):len(out) + RESULT_BATCH]):
                if res is None:
                    break
                if res.is_err:
                    raise WrongResult(f"{self.name}: task failed: {res.error!r}")
                out.append(res.return_value)
            else:
                continue
            while not await handles[len(out)].is_ready():
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{self.name}: {len(handles) - len(out)} results "
                                       f"missing after {timeout:.0f} s")
                await asyncio.sleep(POLL)
        return out

    async def _results(self, handles: list[AsyncTaskiqTask[Any]]
                       ) -> list[TaskiqResult[Any] | None]:
        """The stored results of these tasks, None where there is none yet."""
        backend = self.backend
        prefix = f"{backend.prefix_str}:" if backend.prefix_str else ""
        async with Redis(connection_pool=backend.redis_pool) as conn:
            raws = await conn.mget([prefix + h.task_id for h in handles])
        return [None if raw is None
                else model_validate(TaskiqResult[Any], backend.serializer.loadb(raw))
                for raw in raws]

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        # one child process (the default is 2) under taskiq's supervisor process. Log
        # level WARNING, as the other peers: at INFO taskiq logs a line per task.
        # Tried on 3,000-4,000 no-op tasks (a shared 2-core machine, so noisy), all
        # drained alike, 1,100-1,700/s: async --max-async-tasks 100 (the default),
        # 500, or 32 with --max-prefetch 32; sync --max-threadpool-threads 4, 10 or 32,
        # or 10 with --max-async-tasks 10. So taskiq's defaults, and 10 threads.
        argv = [sys.executable, "-m", "taskiq", "worker",
                f"benchmarks.peers.taskiq_peer:{kind}_worker_broker",
                "--workers", "1", "--log-level", "WARNING"]
        if kind == "async":
            return [*argv, "--max-async-tasks", str(concurrency)]
        return [*argv, "--max-threadpool-threads", str(concurrency)]

    async def round_trip(self, value: int) -> Any:
        # wait_result polls is_ready; its default interval, 0.2 s, would dominate
        result = await (await self.task.kiq(value)).wait_result(check_interval=0.001,
                                                                  timeout=30)
        if result.is_err:
            raise WrongResult(f"{self.name}: task failed: {result.error!r}")
        return result.return_value
