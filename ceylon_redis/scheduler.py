"""Promoting scheduled tasks (delayed enqueues, retries after a backoff) when they fall due,
and firing the ticks of periodic schedules.

Workers and coordinators all promote: ``promote.lua`` is atomic and idempotent,
so any number may, and a queue without a coordinator still runs its retries.
Coordinators (also one inside ``worker --coordinator`` or the playground) fire
ticks too: ``tick.lua`` claims a schedule's due ticks and enqueues their tasks in
one step, so any number may run and each tick is enqueued once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from .keys import Keys
from .outages import is_outage
from .schedules import Timing, due_ticks
from .scripts import Scripts
from .settings import Settings

PROMOTE_LIMIT = 1000
"""Most tasks one script call queues; a busy second is promoted in slices."""
TICK_BATCH = 100
"""Most schedules one tick.lua call claims; 10,000 due at once take 100 calls."""
BROKEN_RETRY_MS = 60_000
"""How long a schedule whose stored definition cannot be read (edited by hand) waits."""


async def promote_due(scripts: Scripts, keys: Keys) -> tuple[int, float]:
    """Queue the tasks that are due; returns (promoted, seconds until the next one or -1)."""
    promoted, next_ms, more = await scripts.promote(keys=[keys.base], args=[PROMOTE_LIMIT])
    if more:
        return int(promoted), 0.0
    return int(promoted), int(next_ms) / 1000 if int(next_ms) >= 0 else -1.0


async def fire_due_ticks(scripts: Scripts, keys: Keys, who: str = "scheduler",
                         ) -> tuple[int, float]:
    """Enqueue the due ticks of up to TICK_BATCH schedules; returns (tasks enqueued,
    seconds until the next tick, 0 if more are due now, or -1)."""
    reply = await scripts.schedules_due(keys=[keys.base], args=[TICK_BATCH])
    now, until = int(reply[0]), int(reply[1])
    work = [tuple(v.decode() if isinstance(v, bytes) else str(v) for v in reply[i:i + 7])
            for i in range(2, len(reply), 7)]
    # croniter walks in Python: off the event loop, which also beats the heartbeat.
    planned = await asyncio.to_thread(_plan_ticks, work, now, who) if work else []
    args: list[Any] = []
    count = 0
    for sid, score, version, ticks, next_ms, skipped in planned:
        args += [sid, score, version, next_ms, skipped, len(ticks), *ticks]
        count += 1
        if until != 0:
            until = next_ms - now if until < 0 else min(until, next_ms - now)
    enqueued = 0
    if count:
        _, enqueued = await scripts.tick(keys=[keys.base], args=[count, *args])
        if enqueued:
            logger.debug("{}: {} ticks enqueued", who, enqueued)
    return int(enqueued), until / 1000 if until >= 0 else -1.0


def _plan_ticks(work: list[tuple[str, ...]], now: int, who: str) -> list[tuple[Any, ...]]:
    """Per due schedule (id, score, version, cron, tz, every, missed): the ticks to enqueue,
    the next tick and how many were skipped."""
    out: list[tuple[Any, ...]] = []
    for sid, score, version, cron, tz, every, missed in work:
        try:
            timing = Timing(cron=cron, tz=tz or "UTC", every_ms=int(every or 0),
                            missed="all" if missed == "all" else "skip")
            ticks, next_ms, skipped = due_ticks(timing, int(float(score)), now)
        except Exception as exc:  # a definition edited by hand: say so, look again later
            logger.error("{}: schedule {} cannot be read ({}); retrying in {} s", who, sid,
                         exc, BROKEN_RETRY_MS // 1000)
            ticks, next_ms, skipped = [], now + BROKEN_RETRY_MS, 0
        if skipped:
            logger.info("{}: schedule {}: {} missed ticks skipped (missed={})", who, sid,
                        skipped, missed or "skip")
        out.append((sid, score, version, ticks, next_ms, skipped))
    return out


async def run_scheduler(scripts: Scripts, keys: Keys, settings: Settings,
                        stopping: asyncio.Event, who: str, ticks: bool = False) -> None:
    """Promote due tasks (and with ``ticks``, fire due schedules) until ``stopping`` is
    set, looking at least every schedule_poll."""
    backoff = 0.1
    while not stopping.is_set():
        try:
            promoted, until_next = await promote_due(scripts, keys)
            backoff = 0.1
            if promoted:
                logger.debug("{}: {} scheduled tasks queued", who, promoted)
            if ticks:
                _, until_tick = await fire_due_ticks(scripts, keys, who)
                until_next = until_tick if until_next < 0 else (
                    until_next if until_tick < 0 else min(until_next, until_tick))
            pause = settings.schedule_poll if until_next < 0 else min(settings.schedule_poll,
                                                                     until_next)
        except Exception as exc:
            # Not only outages: a loop that died here would stop this partition's retries
            # and ticks without a word, as nothing awaits it before the stop.
            if is_outage(exc):
                logger.warning("{}: could not promote scheduled tasks or fire ticks ({}); "
                               "retrying in {:.1f} s", who, exc, backoff)
            else:
                logger.opt(exception=exc).error("{}: promoting or ticking failed; retrying "
                                                "in {:.1f} s", who, backoff)
            pause, backoff = backoff, min(backoff * 2, 5.0)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=max(pause, 0.005))
        except asyncio.TimeoutError:
            pass
