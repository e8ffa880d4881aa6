"""Recording outcomes: the finisher takes what attempts handed over and records it in
batches, one finish script call per consumer, and logs what finish refused, retried
or dead-lettered."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from ..outages import is_outage
from .state import Consumer, Done, Runtime


def _last_line(error: str) -> str:
    """A traceback's last line: the exception and its message."""
    return error.strip().splitlines()[-1][:300] if error.strip() else ""


class Recorder:
    """Runs the finisher of one worker: records the outcomes in ``rt.done``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        self.retry_defaults = [s.max_attempts, round(s.retry_backoff * 1000),
                               round(s.retry_backoff_max * 1000), s.retry_jitter,
                               s.dead_letter_ttl]
        """The finish script's worker defaults: attempts, backoff, its cap, jitter, DLQ TTL."""

    async def finisher(self) -> None:
        """Record outcomes in batches: one script call per role for whatever has piled up."""
        rt = self.rt
        while True:
            batch = [await rt.done.get()]
            while not rt.done.empty() and len(batch) < 500:
                batch.append(rt.done.get_nowait())
            if rt.fault:
                rt.fault.reached("before-finish")
            try:
                await self.record(batch)
            finally:
                for d in batch:
                    d.consumer.recording.pop(d.entry, None)
                    rt.done.task_done()

    async def record(self, batch: list[Done]) -> None:
        rt = self.rt
        by_consumer: dict[Consumer, list[Any]] = {}
        for d in batch:
            o = d.outcome
            if d.consumer not in by_consumer:
                by_consumer[d.consumer] = [d.consumer.role, d.consumer.id,
                                           random.getrandbits(31), *self.retry_defaults]
            by_consumer[d.consumer].extend(
                (d.task_id, d.entry, d.attempt, o.status, o.output, o.error, o.retry))
        backoff, began = 0.1, time.monotonic()
        while True:
            try:
                replies = await rt.call_each(rt.scripts.finish, list(by_consumer.items()))
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if rt.stopping.is_set() and time.monotonic() - began > rt.grace:
                    logger.error("could not record {} results in {} s ({}); giving up: the "
                                 "reaper re-runs those tasks", len(batch), rt.grace, exc)
                    return
                logger.warning("could not record {} results ({}); retrying in {:.1f} s",
                               len(batch), exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if rt.fault:
            rt.fault.reached("after-finish")
        for refused, dead, retried in replies:
            for tid in refused:
                logger.warning("result of task {} refused: this attempt no longer owns it",
                               tid.decode())
            errors = {d.task_id: d.outcome.error for d in batch} if dead or retried else {}
            for i in range(0, len(retried), 4):
                tid = retried[i].decode()
                logger.info("task {} failed (attempt {} of {}); retrying in {:.1f} s: {}", tid,
                            retried[i + 1], retried[i + 2], retried[i + 3] / 1000,
                            _last_line(errors.get(tid, "")))
            for i in range(0, len(dead), 2):
                tid = dead[i].decode()
                logger.error("task {} dead-lettered: {}; last error: {}", tid,
                             dead[i + 1].decode(), errors.get(tid, "")[:500])

    async def settle(self, finisher: asyncio.Task[None], budget: Callable[[], float]) -> None:
        """Wait until every outcome handed over is recorded (or given up on), at most
        ``budget()`` seconds (the worker's shutdown budget)."""
        rt = self.rt
        joined = asyncio.create_task(rt.done.join())
        await asyncio.wait({joined, finisher}, timeout=budget(),
                           return_when=asyncio.FIRST_COMPLETED)
        if joined.done():
            return
        joined.cancel()
        left = rt.done.qsize()
        if finisher.done() and not finisher.cancelled() and finisher.exception():
            logger.error("recording outcomes failed ({!r}); {} left unrecorded: the reaper "
                         "re-runs those tasks", finisher.exception(), left)
        else:
            logger.error("outcomes still unrecorded after {:.0f} s ({} left): the reaper "
                         "re-runs those tasks", budget(), left)
