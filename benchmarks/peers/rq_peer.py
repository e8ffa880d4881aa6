"""RQ: ``Queue`` producer, ``rq worker`` (SimpleWorker) processes, RQ's own result streams.

This module is also what the workers import: :data:`noop` is the one task, bound at
import to the ``def`` or the ``async def`` handler by the ``BENCH_HANDLER_KIND`` env
var, so the producer enqueues one function path whatever the worker's kind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, ClassVar

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.results import Result

from benchmarks.peers.base import MISSING, Peer, WrongResult, collect, console_script

#: env var telling a worker which handler kind ``noop`` is
KIND_ENV = "BENCH_HANDLER_KIND"
QUEUE = "bench"
#: what RQ stores as the job's function and the worker imports
FUNC = f"{__name__}.noop"
#: seconds a round trip may take before it counts as lost
ROUND_TRIP_TIMEOUT = 30


def noop_sync(value: int) -> int:
    """The ``def`` task: return its input."""
    return value


async def noop_async(value: int) -> int:
    """The ``async def`` task (RQ runs it with ``asyncio.run`` per job): return its input."""
    return value


noop: Callable[[int], Any] = noop_async if os.environ.get(KIND_ENV) == "async" else noop_sync


class RQ(Peer):
    name = "rq"
    package = "rq"
    # An RQ worker runs one job at a time ("if you want to perform jobs concurrently,
    # simply start more workers"), so one worker process is one ``rq worker``; the
    # harness's "processes" rows are how RQ scales. ``rq worker-pool -n N`` (N forked
    # SimpleWorkers) is what worker_argv gives for a concurrency above 1: on 2,000 no-op
    # tasks it drained about 350/s at N=1, 490/s at 2, 540/s at 4 and 560/s at 8 (2 cores,
    # noisy); two separate ``rq worker`` processes gave about the same 480/s as N=2.
    concurrency: ClassVar[dict[str, int]] = {"async": 1, "sync": 1}
    dag_kind = "sync"
    notes = ("no asyncio producer; bulk: Queue.enqueue_many (one pipeline); "
             "results: RQ's result streams (XREVRANGE, pipelined), waits with "
             "Job.latest_result(timeout); worker: rq worker --worker-class SimpleWorker "
             "(no fork per job), one job at a time per process (RQ's model); async def "
             "tasks run with asyncio.run per job; pickle serializer (RQ's default); "
             "dependencies: depends_on (fan-in is quadratic in width: each child's "
             "completion re-reads the status of all the sink's dependencies)")

    def open(self) -> None:
        self.redis = Redis.from_url(self.url)
        self.queue = Queue(QUEUE, connection=self.redis)

    def close(self) -> None:
        self.redis.close()

    # ----- producer

    def enqueue_one(self, value: int) -> Job:
        return self.queue.enqueue(FUNC, value)

    def enqueue_bulk(self, values: list[int]) -> list[Job]:
        return self.queue.enqueue_many([Queue.prepare_data(FUNC, (v,)) for v in values])

    # ----- results

    def is_done(self, handle: Job) -> bool:
        return handle.latest_result() is not None

    def outputs(self, handles: list[Job], timeout: float) -> list[Any]:
        return collect(len(handles), lambda idx: self._fetch([handles[i] for i in idx]),
                       lambda i, wait: handles[i].latest_result(timeout=wait) is not None,
                       timeout, self.name)

    def _fetch(self, jobs: list[Job]) -> list[Any]:
        """Latest results of ``jobs`` in one pipeline: each its output, or MISSING."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xrevrange(Result.get_key(job.id), "+", "-", count=1)  # type: ignore[no-untyped-call]
            replies = pipe.execute()
        return [self._output(job, reply[0]) if reply else MISSING
                for job, reply in zip(jobs, replies)]

    def _output(self, job: Job, entry: tuple[bytes, dict[bytes, bytes]]) -> Any:
        return self._value(job, Result.restore(job.id, entry[0].decode(), entry[1],
                                               connection=self.redis, serializer=job.serializer))

    def _value(self, job: Job, result: Result) -> Any:
        """A successful result's return value; WrongResult (the exception's line) if not."""
        if result.type != Result.Type.SUCCESSFUL:
            lines = (result.exc_string or "").strip().splitlines()
            error = lines[-1] if lines else "no exception stored"
            raise WrongResult(f"{self.name}: job {job.id} {result.type.name}: {error}")
        return result.return_value

    # ----- workers

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        common = ["--url", self.url, "--worker-class", "rq.SimpleWorker", "--quiet"]
        if concurrency == 1:
            return [console_script("rq"), "worker", *common, QUEUE]
        return [console_script("rq"), "worker-pool", *common, "--num-workers",
                str(concurrency), QUEUE]

    def worker_env(self, kind: str, concurrency: int) -> dict[str, str]:
        env = super().worker_env(kind, concurrency)
        env[KIND_ENV] = kind
        return env

    # ----- round trip and dependencies

    def round_trip(self, value: int) -> Any:
        return self._wait(self.queue.enqueue(FUNC, value), ROUND_TRIP_TIMEOUT)

    def chain(self, depth: int, timeout: float) -> None:
        self.queue.enqueue_many([
            Queue.prepare_data(FUNC, (i,), job_id=f"c{i}", depends_on=f"c{i - 1}" if i else None)
            for i in range(depth)])
        self._check(f"c{depth - 1}", timeout, depth - 1)

    def fan_in(self, width: int, timeout: float) -> None:
        children: list[Any] = [f"f{i}" for i in range(width)]
        self.queue.enqueue_many([
            Queue.prepare_data(FUNC, (-1,), job_id="root"),
            *(Queue.prepare_data(FUNC, (i,), job_id=c, depends_on="root")
              for i, c in enumerate(children)),
            Queue.prepare_data(FUNC, (width,), job_id="sink", depends_on=children)])
        self._check("sink", timeout, width)

    def _wait(self, job: Job, timeout: float) -> Any:
        """The job's output, waiting for it with RQ's blocking ``latest_result``."""
        result = job.latest_result(timeout=max(1, math.ceil(timeout)))
        if result is None:
            raise TimeoutError(f"{self.name}: job {job.id} not done after {timeout:.0f} s")
        return self._value(job, result)

    def _check(self, job_id: str, timeout: float, want: int) -> None:
        got = self._wait(Job(job_id, connection=self.redis), timeout)
        if got != want:
            raise WrongResult(f"{self.name}: job {job_id} returned {got!r}, expected {want!r}")


#: what a fetch gives for a task whose result is not stored yet
