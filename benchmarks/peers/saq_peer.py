"""SAQ: ``Queue.enqueue`` producer, ``saq`` worker processes, results kept on the job key.

SAQ is asyncio only on the producer side (no sync client, no bulk enqueue, no dependencies);
its workers run ``async def`` handlers on their loop and plain ``def`` ones in a thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from saq import Job, Queue, Status
from saq.job import TERMINAL_STATUSES
from saq.queue.base import JobError

from benchmarks.peers.base import MISSING, Peer, WrongResult, collect_async, console_script
from benchmarks.peers.saq_tasks import TASK

#: seconds between result polls of a batch (outputs)
RESULT_POLL = 0.005
#: seconds between polls of Queue.apply (its default is 0.5)
APPLY_POLL = 0.001
SETTINGS = {"async": "benchmarks.peers.saq_tasks.async_settings",
            "sync": "benchmarks.peers.saq_tasks.sync_settings"}


class Saq(Peer):
    """SAQ through its own API; one ``noop`` task, async or sync by the worker's settings."""

    name = "saq"
    package = "saq"
    # concurrency 10 (SAQ's default) to 200 drained alike here (the worker is CPU-bound at
    # ~1 ms of CPU a job): 100 for async handlers, 10 for sync ones, which SAQ runs in a
    # default ThreadPoolExecutor (min(32, cpus + 4) threads)
    concurrency: ClassVar[dict[str, int]] = {"async": 100, "sync": 10}
    notes = ("no bulk API: bulk = asyncio.gather of Queue.enqueue (SAQ itself keeps 20 "
             "in flight); results: Queue.jobs (MGET); round trip: Queue.apply polling every "
             "1 ms; JSON (SAQ's default); no sync producer, no dependencies")

    def open(self) -> None:
        self.queue = self.aw(self._aopen())

    async def _aopen(self) -> Queue:
        queue = Queue.from_url(self.url)
        await queue.connect()
        return queue

    def close(self) -> None:
        self.aw(self.queue.disconnect())

    async def enqueue_one_async(self, value: int) -> Job:
        return await self._enqueue(value)

    async def enqueue_bulk_async(self, values: list[int]) -> list[Job]:
        return await asyncio.gather(*(self._enqueue(v) for v in values))

    async def _enqueue(self, value: int) -> Job:
        job = await self.queue.enqueue(TASK, value=value)
        if job is None:  # only when a job of the same key exists; keys here are random
            raise WrongResult(f"{self.name}: enqueue returned None")
        return job

    async def is_done(self, handle: Job) -> bool:
        job = await self.queue.job(handle.key)
        return job is not None and job.status in TERMINAL_STATUSES

    async def outputs(self, handles: list[Job], timeout: float) -> list[Any]:
        """Poll the oldest pending jobs, one MGET (``Queue.jobs``) of a window at a time."""

        async def fetch(window: Sequence[int]) -> list[Any]:
            out = []
            for i, job in zip(window, await self.queue.jobs([handles[i].key for i in window])):
                if job is None:
                    raise WrongResult(f"{self.name}: task #{i} is gone")
                if job.status not in TERMINAL_STATUSES:
                    out.append(MISSING)
                elif job.status != Status.COMPLETE:
                    raise WrongResult(f"{self.name}: task #{i} {job.status}: {job.error}")
                else:
                    out.append(job.result)
            return out

        return await collect_async(len(handles), fetch, RESULT_POLL, timeout, self.name)

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        # concurrency travels in the env, read by the saq_tasks settings
        return [console_script("saq"), SETTINGS[kind]]

    async def round_trip(self, value: int) -> Any:
        # Queue.apply polls. Job.refresh(until_complete=...) waits on pub/sub instead, but
        # misses a completion published before it subscribes (saq issue #122): ~1 in 150
        # no-op round trips then hung until its timeout.
        try:
            return await self.queue.apply(TASK, timeout=30, poll_interval=APPLY_POLL,
                                          value=value)
        except JobError as e:
            raise WrongResult(f"{self.name}: {e}") from e
