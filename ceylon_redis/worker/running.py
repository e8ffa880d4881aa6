"""Running one attempt: from what start.lua began to an outcome handed to the finisher.

Each attempt is an asyncio task. With prefetch it first waits for one of the
handler's permits; then the handler runs under its time limit (sync ones in the
worker's threads). A cancelled attempt reports itself FAILED; the thread of a sync
attempt that ran past its end keeps its slot until it returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from loguru import logger

from ..codec import decode
from ..faults import MID_RUN_DELAY
from ..handlers import FINAL, NOT_RETRYABLE, Outcome
from ..process import TaskContext
from ..protocol import parse_started
from ..threads import Call
from ..tracing import attempt_span, mark_failed
from .progress import ProgressWriter
from .state import Consumer, Done, Runtime


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def _uncancel() -> None:
    """Forget a cancellation this task has handled (Python 3.11+ counts them)."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


class Runner:
    """Launches, runs, cancels and ends the attempts of one worker's consumers."""

    def __init__(self, rt: Runtime, progress: ProgressWriter) -> None:
        self.rt = rt
        self.progress = progress

    async def launch(self, c: Consumer, entry_ids: list[bytes], items: list[Any]) -> None:
        """Run the attempts start.lua began; skip what it refused."""
        rt = self.rt
        if rt.fault:
            rt.fault.reached("after-start")
        for entry_id, item in zip(entry_ids, items):
            entry = entry_id.decode()
            started = parse_started(item)
            tid, attempt = started.task_id, started.attempt
            if attempt == 0:
                if started.reason:  # none: a placeholder of a prioritized task cancelled
                    logger.warning("worker {}: skipped entry {}: {}", c.id, entry,
                                   started.reason)
                continue
            try:
                deps = {k: decode(v) if v else None for k, v in (started.outputs or {}).items()}
                data = decode(started.data) if started.data else None
            except Exception as exc:  # bad data fails its task, not the worker
                logger.error("worker {}: task {} has undecodable data: {}", c.id, tid, exc)
                await rt.done.put(Done(c, tid, entry, attempt, Outcome(
                    "FAILED", b"", f"undecodable task data: {exc}", NOT_RETRYABLE)))
                continue
            ctx = TaskContext(id=tid, role=c.role, name=started.name, attempt=attempt,
                              worker=c.id, dependency_data=deps,
                              failed_dependencies=started.failed or {},
                              scheduled_at=_utc(started.tick),
                              _report=self.progress.reporter(c, tid, attempt))
            timeout = started.timeout or rt.settings.task_timeout
            c.running[tid] = entry
            c.slots.busy += 1
            c.inflight[entry] = asyncio.create_task(self.run(c, ctx, entry, data, timeout,
                                                             started.trace))

    async def run(self, c: Consumer, ctx: TaskContext, entry: str, data: Any,
                  timeout: float | None, trace: str = "") -> None:
        rt = self.rt
        threads: list[Call] = []
        permits, holding = c.slots.permits, False
        mid_run = None
        try:
            try:
                if permits is not None:
                    await self.take_permit(c, permits, entry)
                    holding = True
                if rt.fault:
                    mid_run = asyncio.get_running_loop().call_later(
                        MID_RUN_DELAY, rt.fault.reached, "mid-run")
                assert rt.threads is not None  # made by run(), before any read
                with attempt_span(c.role, ctx.id, ctx.attempt, trace) as span:
                    outcome = await c.handler.run(ctx, data, rt.threads, timeout,
                                                  threads.append)
                    if outcome.status != "COMPLETED":
                        mark_failed(span, outcome.error)
            except asyncio.CancelledError:
                if ctx.id not in c.cancel_requested:
                    raise
                _uncancel()
                outcome = Outcome("FAILED", b"", "cancelled while running", FINAL)
            else:
                if outcome.status == "COMPLETED":
                    c.slots.processed += 1
                else:
                    c.slots.failed += 1
            # Waits when the finisher lags, so recording applies back-pressure to reading.
            c.recording[entry] = ctx.id
            try:
                await rt.done.put(Done(c, ctx.id, entry, ctx.attempt, outcome))
            except BaseException:
                c.recording.pop(entry, None)
                raise
        finally:
            self.progress.discard(c, ctx.id, ctx.attempt)
            if mid_run is not None:
                mid_run.cancel()
            # A sync thread that runs on keeps its slot (and permit) until it returns.
            if threads and not threads[0].done():
                self.hold_slot(c, ctx.id, threads[0])
            elif holding and permits is not None:
                permits.release()
            self.end_attempt(c, ctx.id, entry)

    @staticmethod
    async def take_permit(c: Consumer, permits: asyncio.Semaphore, entry: str) -> None:
        """Wait for a free permit; while waiting, the entry counts as taken but not started."""
        c.waiting.add(entry)
        try:
            await permits.acquire()
        finally:
            c.waiting.discard(entry)

    @staticmethod
    def end_attempt(c: Consumer, task_id: str, entry: str) -> None:
        """Free an attempt's slot once its outcome is handed over (or it never started), so
        the next read overlaps with recording this batch."""
        if c.inflight.pop(entry, None) is not None:
            c.slots.busy -= 1
        c.running.pop(task_id, None)
        c.cancel_requested.discard(task_id)
        c.slots.slot_freed.set()

    def hold_slot(self, c: Consumer, task_id: str, thread: Call) -> None:
        """Keep a slot taken until the thread of an abandoned sync attempt returns."""
        loop = asyncio.get_running_loop()
        c.slots.stragglers += 1
        logger.warning("worker {}: the thread of task {} runs on after its attempt ended "
                       "(sync handlers cannot be interrupted); its slot stays taken", c.id,
                       task_id)

        def release() -> None:
            c.slots.stragglers -= 1
            if c.slots.permits is not None:
                c.slots.permits.release()
            c.slots.slot_freed.set()

        assert self.rt.threads is not None
        self.rt.threads.on_done(thread, lambda _: loop.call_soon_threadsafe(release))

    def cancel(self, task_id: str, why: str) -> bool:
        """Cancel the running attempt of ``task_id`` here, if any (its outcome is dropped)."""
        for c in self.rt.consumers:
            task = c.inflight.get(c.running.get(task_id, ""))
            if task is not None and not task.done():
                c.cancel_requested.add(task_id)
                task.cancel()
                logger.info("worker {}: task {} cancelled while running ({})", c.id, task_id,
                            why)
                return True
        return False
