"""Staying registered: the heartbeat, the reaper of dead workers, and leaving at stop.

Each heartbeat refreshes every consumer's registration and its in-flight entries,
cancels attempts Redis says are no longer this worker's, and reports orphans it
gave back. The loop also reaps workers whose heartbeat lapsed. At stop, a worker
gives back what it still holds and deregisters.
"""

from __future__ import annotations

import os
import random
import socket
import time
from typing import Any

from loguru import logger

from ..keys import Keys
from ..lifecycle import paused
from ..outages import is_outage
from ..scripts import Scripts, script_protocol
from ..settings import Settings
from .state import Cancel, Runtime


async def reap_dead_workers(scripts: Scripts, keys: Keys, settings: Settings) -> int:
    """Give back the tasks of every worker whose heartbeat lapsed; returns how many were reaped."""
    reply = await scripts.reap(keys=[keys.base], args=[int(settings.worker_timeout * 1000),
                                                       settings.dead_letter_ttl])
    for i in range(0, len(reply), 3):
        logger.warning("worker {} presumed dead (no heartbeat for {} s): {} tasks re-queued, "
                       "{} failed (lost too often)", reply[i].decode(), settings.worker_timeout,
                       reply[i + 1], reply[i + 2])
    return len(reply) // 3


class Heartbeat:
    """Keeps one worker's consumers registered, reaps dead workers, deregisters at stop."""

    def __init__(self, rt: Runtime, cancel: Cancel, reap: bool) -> None:
        self.rt = rt
        self.cancel = cancel
        """Cancels an attempt the heartbeat found is no longer ours (``Worker.cancel_task``)."""
        self.reap = reap
        """Whether the loop also reaps dead workers."""
        self.started_at = str(time.time())

    async def beat(self) -> None:
        rt = self.rt
        arg_lists, sent = [], []
        for c in rt.consumers:
            info = {"roles": c.role, "name": c.handler.name, "host": socket.gethostname(),
                    "pid": os.getpid(), "concurrency": c.concurrency,
                    "started_at": self.started_at, "protocol": script_protocol(),
                    "processed": c.slots.processed,
                    "failed": c.slots.failed}
            args: list[Any] = [c.id, int(rt.settings.worker_timeout * 1000),
                                rt.settings.dead_letter_ttl, len(info)]
            for k, v in info.items():
                args.extend((k, v))
            running = dict(c.running)
            for tid, entry in running.items():
                args.extend((c.role, entry, tid))
            for entry, tid in list(c.recording.items()):
                args.extend((c.role, entry, tid))
            arg_lists.append((c, args))
            sent.append(running)
        replies = await rt.call_each(rt.scripts.heartbeat, arg_lists)
        for c, running, (_, gone, orphans) in zip(rt.consumers, sent, replies):
            for tid in map(bytes.decode, gone):
                # Only the attempt the heartbeat asked about: by the time the answer is back,
                # a recorded outcome may have been retried and started here again.
                if tid in running and c.running.get(tid) == running[tid]:
                    self.cancel(tid, "no longer this worker's: cancelled or reclaimed")
            if orphans:
                logger.warning("worker {} gave back {} tasks Redis still counted as its own but "
                               "it no longer ran (outcomes lost, say by a failover)", c.id,
                               orphans)

    async def loop(self) -> None:
        rt = self.rt
        interval = rt.settings.heartbeat_interval
        while not await paused(rt.winding_down, interval * random.uniform(0.8, 1.0)):
            try:
                await self.beat()
                if self.reap:
                    for keys in rt.parts.all:
                        await reap_dead_workers(rt.scripts, keys, rt.settings)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("heartbeat failed ({}); retrying", exc)

    async def give_back_and_deregister(self) -> None:
        rt = self.rt
        try:
            for c in rt.consumers:
                requeued, failed = await rt.scripts.requeue(
                    keys=[c.keys.base],
                    args=[c.id, f"worker {c.id} stopped", rt.settings.dead_letter_ttl,
                          len(c.unstarted), *c.unstarted, c.role])
                if requeued or failed:
                    logger.info("worker {} gave back {} tasks ({} failed, lost too often)",
                                c.id, requeued, failed)
                async with rt.redis.pipeline(transaction=False) as pipe:
                    pipe.zrem(c.keys.workers, c.id)
                    pipe.delete(c.keys.worker(c.id))
                    await pipe.execute()
                if c.keys.partition == 0:
                    logger.info("worker {} stopped: {} completed, {} failed", c.id,
                                c.slots.processed, c.slots.failed)
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.error("could not deregister ({}); the reaper will give back its tasks", exc)
