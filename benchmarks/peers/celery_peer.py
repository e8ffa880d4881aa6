"""Celery: Redis broker and Redis result backend, ``celery worker`` processes."""

from __future__ import annotations

import gc
import uuid
from typing import Any, ClassVar

from celery import canvas, states
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult, ResultSet

from benchmarks.peers.base import Peer, WrongResult, console_script
from benchmarks.peers.celery_tasks import TASK, make_app

#: seconds a round trip may take before it counts as lost
ROUND_TRIP_TIMEOUT = 30.0


class Celery(Peer):
    name = "celery"
    package = "celery"
    # Celery runs only ``def`` tasks (an ``async def`` task would return a coroutine)
    handler_kinds = ("sync",)
    dag_kind = "sync"
    # The solo pool runs each task inline in the worker's main process: on no-op tasks it
    # used 10-20% less worker CPU per task than "--pool threads -c 10" and drained faster;
    # prefork (-c 2) used ~60% more, for the hand-off to its child processes.
    pool: ClassVar[str] = "solo"
    concurrency: ClassVar[dict[str, int]] = {"sync": 1}
    #: Celery's optimizing guide: "lots of short tasks ... say 64, or 128" (default 4)
    prefetch_multiplier: ClassVar[int] = 64
    notes = ("no asyncio producer, no async def tasks; bulk: group(...).apply_async() "
             "(one LPUSH per task, one producer); results: Redis backend, read with "
             "ResultSet.get (one MGET, then its pub/sub channels); worker: --pool solo, "
             "prefetch multiplier 64; JSON serializer; dependencies: chain, chord")

    def open(self) -> None:
        self.app = make_app(self.url)
        self.task = self.app.tasks[TASK]

    def close(self) -> None:
        # collect dropped handles first: their __del__ unsubscribes from the results' channels
        gc.collect()
        self.app.backend.result_consumer.stop()
        self.app.close()

    def _sig(self, value: Any) -> canvas.Signature:
        return self.task.si(value)

    def enqueue_one(self, value: int) -> AsyncResult:
        return self.task.apply_async((value,))

    def enqueue_bulk(self, values: list[int]) -> list[AsyncResult]:
        return list(canvas.group(self._sig(v) for v in values).apply_async().results)

    def is_done(self, handle: AsyncResult) -> bool:
        # the backend's state, not handle.ready(): a handle made ready before its ResultSet
        # exists is counted twice by the set's barrier, whose get() then misses a result
        return self.app.backend.get_state(handle.id) in states.READY_STATES

    def outputs(self, handles: list[AsyncResult], timeout: float) -> list[Any]:
        """Every output, through one ResultSet: an MGET, then the results' pub/sub channels.

        Each handle must not have been read yet: celery 5.6's ResultSet counts an already
        read one twice, stops one result early, and that task's output comes back None.
        """
        try:
            return list(ResultSet(handles, app=self.app).get(timeout=timeout))
        except CeleryTimeout as exc:
            raise TimeoutError(f"{self.name}: results not in after {timeout:.0f} s") from exc
        except Exception as exc:  # a failed task's own exception, re-raised by get()
            raise WrongResult(f"{self.name}: a task failed: {exc!r}") from exc

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        # gossip, mingle and heartbeat are worker-to-worker chatter the benchmark does
        # not use (mingle alone waits ~1 s at start-up); a unique node name per process
        return [console_script("celery"), "-A", "benchmarks.peers.celery_tasks", "worker",
                "--pool", self.pool, "--concurrency", str(concurrency),
                "--prefetch-multiplier", str(self.prefetch_multiplier),
                "--hostname", f"bench-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]

    def round_trip(self, value: int) -> Any:
        return self.task.delay(value).get(timeout=ROUND_TRIP_TIMEOUT)

    def chain(self, depth: int, timeout: float) -> None:
        result = canvas.chain(self._sig(i) for i in range(depth)).apply_async()
        self._check(result, timeout, depth - 1)

    def fan_in(self, width: int, timeout: float) -> None:
        children = canvas.chord((self._sig(i) for i in range(width)), self._sig(width))
        workflow = self._sig(-1) | children
        self._check(workflow.apply_async(), timeout, width)

    def _check(self, result: AsyncResult, timeout: float, want: int) -> None:
        try:
            got = result.get(timeout=timeout)
        except CeleryTimeout as exc:
            raise TimeoutError(f"{self.name}: last task not done after {timeout:.0f} s") from exc
        except Exception as exc:
            raise WrongResult(f"{self.name}: last task failed: {exc!r}") from exc
        if got != want:
            raise WrongResult(f"{self.name}: last task returned {got!r}, expected {want!r}")
