"""arq: ``ArqRedis.enqueue_job`` producer, ``arq`` worker processes, results in ``arq:result:*``.

arq is asyncio only: no sync producer, no sync handlers, no bulk enqueue, no dependencies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import result_key_prefix
from arq.jobs import Job, JobStatus, deserialize_result

from benchmarks.peers.base import MISSING, Peer, WrongResult, collect_async, console_script

TASK = "noop"
#: enqueue_job calls in flight at once in a bulk enqueue: each holds a connection of its
#: own for its WATCH/MULTI, so unbounded means one connection per task; 20 to 1,000 in flight
#: enqueued alike (~3,600/s), 10 slower (~2,700/s)
IN_FLIGHT = 50
#: seconds between result polls of a batch (outputs)
RESULT_POLL = 0.005
#: seconds between polls of Job.result in a round trip (its default is 0.5)
ROUND_TRIP_POLL = 0.001


class Arq(Peer):
    """arq through its own API; async handlers only, as arq's worker runs only coroutines."""

    name = "arq"
    package = "arq"
    handler_kinds = ("async",)
    # max_jobs: 10 (arq's default) to 500 drained alike here (the worker is CPU-bound at
    # ~1 ms of CPU a job, whatever max_jobs), so 100, as for the other asyncio peers
    concurrency: ClassVar[dict[str, int]] = {"async": 100}
    notes = ("no bulk API: bulk = asyncio.gather of enqueue_job (50 in flight); results: "
             "pipelined GETs of arq:result:*, decoded by arq's deserialize_result; pickle "
             "(arq's default); worker max_jobs 100, poll_delay 0.005 s (default 0.5), "
             "log level WARNING; no sync API, no dependencies")

    def open(self) -> None:
        self.redis: ArqRedis = self.aw(create_pool(RedisSettings.from_dsn(self.url)))

    def close(self) -> None:
        self.aw(self.redis.close(close_connection_pool=True))

    async def enqueue_one_async(self, value: int) -> Job:
        return await self._enqueue(value)

    async def enqueue_bulk_async(self, values: list[int]) -> list[Job]:
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one(value: int) -> Job:
            async with sem:
                return await self._enqueue(value)

        return await asyncio.gather(*(one(v) for v in values))

    async def _enqueue(self, value: int) -> Job:
        job = await self.redis.enqueue_job(TASK, value)
        if job is None:  # only when a job of the same id exists; ids here are random
            raise WrongResult(f"{self.name}: enqueue_job returned None")
        return job

    async def is_done(self, handle: Job) -> bool:
        return await handle.status() == JobStatus.complete

    async def outputs(self, handles: list[Job], timeout: float) -> list[Any]:
        """Poll the oldest pending result keys, one pipeline of GETs of a window at a time
        (arq has no batch read: ``Job.result`` polls one key)."""

        async def fetch(window: Sequence[int]) -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in window:
                    pipe.get(result_key_prefix + handles[i].job_id)
                raws = await pipe.execute()
            out = []
            for i, raw in zip(window, raws):
                if raw is None:
                    out.append(MISSING)
                    continue
                result = deserialize_result(raw, deserializer=self.redis.job_deserializer)
                if not result.success:
                    raise WrongResult(f"{self.name}: task #{i} failed: {result.result!r}")
                out.append(result.result)
            return out

        return await collect_async(len(handles), fetch, RESULT_POLL, timeout, self.name)

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        # concurrency (max_jobs) travels in the env, read by arq_tasks.WorkerSettings
        return [console_script("arq"), "benchmarks.peers.arq_tasks.WorkerSettings",
                "--custom-log-dict", "benchmarks.peers.arq_tasks.LOG_CONFIG"]

    async def round_trip(self, value: int) -> Any:
        job = await self._enqueue(value)
        return await job.result(timeout=30, poll_delay=ROUND_TRIP_POLL)

