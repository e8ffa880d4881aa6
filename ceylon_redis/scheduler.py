"""Promoting scheduled tasks (delayed enqueues, retries after a backoff) when they fall due.

Workers and coordinators all run this loop: ``promote.lua`` is atomic and
idempotent, so any number may, and a queue without a coordinator still runs
its retries.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from .keys import Keys
from .outages import is_outage
from .scripts import Scripts
from .settings import Settings

PROMOTE_LIMIT = 1000
"""Most tasks one script call queues; a busy second is promoted in slices."""


async def promote_due(scripts: Scripts, keys: Keys) -> tuple[int, float]:
    """Queue the tasks that are due; returns (promoted, seconds until the next one or -1)."""
    promoted, next_ms, more = await scripts.promote(keys=[keys.base], args=[PROMOTE_LIMIT])
    if more:
        return int(promoted), 0.0
    return int(promoted), int(next_ms) / 1000 if int(next_ms) >= 0 else -1.0


async def run_scheduler(scripts: Scripts, keys: Keys, settings: Settings,
                        stopping: asyncio.Event, who: str) -> None:
    """Promote due tasks until ``stopping`` is set, looking at least every schedule_poll."""
    backoff = 0.1
    while not stopping.is_set():
        try:
            promoted, until_next = await promote_due(scripts, keys)
            backoff = 0.1
            if promoted:
                logger.debug("{}: {} scheduled tasks queued", who, promoted)
            pause = settings.schedule_poll if until_next < 0 else min(settings.schedule_poll,
                                                                     until_next)
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.warning("{}: could not promote scheduled tasks ({}); retrying in {:.1f} s",
                           who, exc, backoff)
            pause, backoff = backoff, min(backoff * 2, 5.0)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=max(pause, 0.005))
        except asyncio.TimeoutError:
            pass
