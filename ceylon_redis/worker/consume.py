"""The consume loop: read a consumer's stream up to its free slots, start what it read.

A read reserves the consumer's share of the handler's slots while it is under way,
so readers of several partitions never overcommit them. An idle consumer blocks in
``XREADGROUP``; one whose last read filled every slot it asked for takes (reads and
starts in one script call) until a take comes back short. After a read or start
whose reply an outage lost, it adopts what Redis left pending for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from loguru import logger

from ..keys import GROUP, Keys
from ..outages import is_outage
from .state import Consumer, Runtime

Launch = Callable[[Consumer, list[bytes], list[Any]], Awaitable[None]]
"""Runs the attempts start.lua began (``Runner.launch``)."""


async def create_group(redis_client: Any, keys: Keys, role: str) -> None:
    """Make the role's consumer group (and stream) in ``keys``' partition, unless it exists."""
    try:
        await redis_client.xgroup_create(keys.stream(role), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Reader:
    """Reads for every consumer of one worker and hands what it started to ``launch``."""

    def __init__(self, rt: Runtime, launch: Launch) -> None:
        self.rt = rt
        self.launch = launch
        self.embedded = (rt.settings.url.startswith("embedded://")
                         or type(rt.redis).__module__.startswith("fakeredis"))

    async def consume(self, c: Consumer) -> None:
        rt = self.rt
        stream = c.keys.stream(c.role)
        backoff = 0.1
        # Readers that share slots with fewer slots than readers block briefly, so that one
        # holding the last slot on an empty partition lets it go soon.
        block = (rt.settings.block_ms if c.slots.concurrency >= c.slots.readers
                 else min(rt.settings.block_ms, 100))
        # The last read filled every slot it asked for, so more are likely waiting: the next
        # read is a take (read and start in one call) until one comes back short.
        busy = False
        while not rt.stopping.is_set():
            if c.adopt and not await self.adopt(c):
                await self.wait_either(asyncio.sleep(backoff))
                backoff = min(backoff * 2, 5.0)
                continue
            free = c.slots.share()
            if free <= 0:
                c.slots.slot_freed.clear()
                await self.wait_either(c.slots.slot_freed.wait())
                continue
            if self.embedded:
                # In-process Redis: whoever just finished a task would always read first;
                # a random pause shares the work among idle consumers as Redis' FIFO would.
                await self.wait_either(asyncio.sleep(random.uniform(0.002, 0.02)))
            if busy:
                c.slots.reserved += free
                try:
                    busy = await self.take(c, free)
                finally:
                    self.unreserve(c, free)
                continue
            began = time.monotonic()
            c.slots.reserved += free
            try:
                reply = await rt.redis.xreadgroup(GROUP, c.id, {stream: ">"}, count=free,
                                                  block=block)
                backoff = 0.1
            except Exception as exc:
                self.unreserve(c, free)
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    await create_group(rt.redis, c.keys, c.role)
                    continue
                if not is_outage(exc):
                    raise
                c.adopt = True  # the read may have been done, its reply lost
                logger.warning("worker {}: Redis unreachable ({}); retrying in {:.1f} s",
                               c.id, exc, backoff)
                await self.wait_either(asyncio.sleep(backoff))
                backoff = min(backoff * 2, 5.0)
                continue
            entries = reply[0][1] if reply else []
            if not entries:
                self.unreserve(c, free)
                if time.monotonic() - began < block / 2000:
                    await self.wait_either(asyncio.sleep(0.1))  # a read that did not block
                elif c.slots.readers > 1:  # let a reader woken by the unreserve go first
                    await self.wait_either(asyncio.sleep(0.005))
                continue
            try:
                if rt.fault:
                    rt.fault.reached("after-read")
                await self.start(c, entries)
                busy = len(entries) >= free
            finally:
                self.unreserve(c, free)

    @staticmethod
    def unreserve(c: Consumer, n: int) -> None:
        """Give back a read's reserved slots; readers of other partitions may take them."""
        c.slots.reserved -= n
        c.slots.slot_freed.set()

    async def wait_either(self, aw: Any) -> None:
        """Wait for ``aw`` or for stop(), whichever comes first."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.rt.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        for t in (task, stop):
            t.cancel()

    async def start(self, c: Consumer, entries: list[Any]) -> None:
        """Start the entries a blocking read returned, then launch their attempts."""
        args: list[Any] = [c.role, c.id]
        for entry_id, fields in entries:
            tid = fields.get(b"id", b"") if isinstance(fields, dict) else b""
            args.extend((entry_id, tid))
        for _ in range(5):
            try:
                items = await self.rt.scripts.start(keys=[c.keys.base], args=args)
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("worker {}: Redis unreachable while starting ({}); retrying",
                               c.id, exc)
                await asyncio.sleep(0.5)
        else:
            c.adopt = True  # the entries stay pending for us: adopted once Redis answers
            return
        await self.launch(c, [e for e, _ in entries], items)

    async def take(self, c: Consumer, count: int) -> bool:
        """Read and start up to ``count`` new entries in one call; whether it got that many
        (on a failure, entries it read stay pending for the heartbeat to give back)."""
        try:
            reply = await self.rt.scripts.start(keys=[c.keys.base],
                                                args=[c.role, c.id, ">", count])
        except Exception as exc:
            if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                return False  # the blocking read makes the group again
            if not is_outage(exc):
                raise
            c.adopt = True  # the take may have been done, its reply lost
            logger.warning("worker {}: Redis unreachable while reading ({}); retrying",
                           c.id, exc)
            return False
        if reply:
            await self.launch(c, reply[0::2], reply[1::2])
        return len(reply) // 2 >= count

    async def adopt(self, c: Consumer) -> bool:
        """Start the entries pending for this consumer that it does not know of (a read or
        start whose reply an outage lost), as start.lua began them: a started attempt is
        returned as it was, so it runs once, now, not after the heartbeat gives it back.
        Whether Redis answered."""
        stream = c.keys.stream(c.role)
        try:
            rows = await self.rt.redis.xpending_range(stream, GROUP, "-", "+", 1000,
                                                      consumername=c.id)
            known = set(c.inflight) | set(c.recording)
            lost = [r["message_id"] for r in rows if r["message_id"].decode() not in known]
            entries: list[Any] = []
            if lost:
                async with self.rt.redis.pipeline(transaction=False) as pipe:
                    # claimed to itself first: fresh, so the heartbeat does not give them
                    # back as orphans while they start here
                    pipe.xclaim(stream, GROUP, c.id, 0, lost, justid=True)
                    for entry in lost:
                        pipe.xrange(stream, entry, entry)
                    found = (await pipe.execute())[1:]
                entries = [page[0] for page in found if page]
        except Exception as exc:
            if not is_outage(exc):
                raise
            return False
        c.adopt = False  # start() sets it again if this start is lost too
        if lost and entries:
            logger.info("worker {}: adopting {} entries an outage left pending for it", c.id,
                        len(entries))
            await self.start(c, entries)
        return True
