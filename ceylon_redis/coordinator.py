"""The coordinator: folds the outcome events of finished tasks into statistics.

Every final outcome (``finish``, ``cancel``, a crash budget spent) appends an
event to ``{P}:events`` once a coordinator has created that stream. Any
number of coordinators read it through the consumer group ``coordinators``;
``scripts/stats.lua`` applies an event only together with its XACK, so each
is counted exactly once. A coordinator that dies leaves its unacknowledged
events pending; a live one claims them after ``worker_timeout`` seconds.

It also queues scheduled tasks as they fall due (as workers do too) and
trims dead letters older than ``dead_letter_ttl``.

Releasing dependents within a partition is not the coordinator's job:
``finish`` does it atomically (see docs/architecture.md), so a DAG flows with
no coordinator. A namespace with partitions is different: a finish can only
write its own partition, so it leaves releases for dependents elsewhere on
``{P~k}:releases``, and coordinators apply them (``release.lua``) in the
dependent's partition, then acknowledge them. A crash between the two only
means a release is applied again, which changes nothing.
Run one with ``ceylon-redis coordinator``, ``ceylon-redis worker --coordinator``,
or the playground (on by default).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from typing import Any

import redis
from loguru import logger

from .connection import daemon_redis
from .faults import fault_from_env
from .keys import COORDINATOR_GROUP, Keys
from .lifecycle import (
    STEP_WAIT,
    arm_exit_deadline,
    install_stack_dumps,
    paused,
    shutdown_budget,
    wait_or_abandon,
)
from .outages import is_outage
from .partitions import Partitions
from .scheduler import run_scheduler
from .scripts import Scripts
from .settings import Settings, redact_url
from .stats import stale_minute_fields

_BATCH = 500
_OUTCOMES_PER_CALL = 1000
"""At most this many outcomes (or one entry's, if more) in one stats.lua call: an entry
holds up to 50, so a read of _BATCH entries is applied in a few calls, each short."""


def outcome_args(entry_id: Any, f: dict[bytes, bytes] | None) -> list[Any]:
    """stats.lua's eight arguments per outcome of one {P}:events entry: finish writes up
    to 50 outcomes to an entry, its fields space-separated lists in the order of ``t``
    (an entry of one outcome, as older versions wrote, reads the same). An entry that is
    gone (claimed after its deletion) or whose lists disagree in length counts nothing,
    but is acknowledged."""
    nothing = [entry_id, "", "", "", "", "", "0", ""]
    if not f:
        return nothing
    ids = f.get(b"t", b"").split(b" ")
    role, at = f.get(b"r", b""), f.get(b"f", b"0")
    columns = [f.get(name, default).split(b" ") for name, default in
               ((b"s", b""), (b"a", b"0"), (b"w", b""), (b"x", b""))]
    if any(len(values) != len(ids) for values in columns):
        return nothing
    args: list[Any] = []
    for tid, status, attempt, wait, run in zip(ids, *columns):
        args.extend((entry_id, role, status, attempt, wait, run, at, tid))
    return args


class Coordinator:
    """Consume outcome events into ``{P}:stats:<role>`` until ``stop()``."""

    def __init__(self, *, url: str | None = None, prefix: str | None = None,
                 settings: Settings | None = None, redis_client: Any = None) -> None:
        self.settings = Settings.resolve(settings, url, prefix)
        self.keys = Keys(self.settings.prefix)
        self.parts = Partitions(self.settings.prefix, self.settings.partitions)
        self.redis: Any = (redis_client if redis_client is not None
                           else daemon_redis(self.settings))
        self._owns_redis = redis_client is None
        self.scripts = Scripts.register(self.redis, self.settings.events_maxlen)
        self.id = (f"coordinator-{socket.gethostname()[:24]}-{os.getpid()}-"
                   f"{uuid.uuid4().hex[:6]}")
        self.applied = 0
        self.claimed = 0
        self.released = 0
        """Releases from other partitions applied (some may have been applied before)."""
        self.ready = asyncio.Event()
        """Set once the events stream and group exist and this coordinator is registered."""
        self._stopping = asyncio.Event()
        self._fault = fault_from_env()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until ``stop()``; then deregister (pending events stay for others)."""
        await self.parts.check_async(self.redis)
        for stream in self._streams():
            await self._ensure_group(stream)
        await self._heartbeat()
        logger.info("coordinator {} started: redis={}{}", self.id, redact_url(self.settings.url),
                    f" partitions={self.parts.count}" if self.parts.count > 1 else "")
        self.ready.set()
        chores = asyncio.create_task(self._chores(), name="ceylon-redis-coordinator-chores")
        schedulers = {asyncio.create_task(
            run_scheduler(self.scripts, keys, self.settings, self._stopping, self.id, ticks=True),
            name="ceylon-redis-coordinator-scheduler") for keys in self.parts.all}
        try:
            await asyncio.gather(*(self._consume(stream) for stream in self._streams()))
        finally:
            chores.cancel()
            await wait_or_abandon({chores, *schedulers}, STEP_WAIT, "background tasks")
            try:
                await self.redis.zrem(self.keys.coordinators, self.id)
                for stream in self._streams():
                    await self._forget_consumer(stream, self.id)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.error("coordinator {} could not deregister: {}", self.id, exc)
            logger.info("coordinator {} stopped: {} events applied, {} claimed from others",
                        self.id, self.applied, self.claimed)
            if self._owns_redis:
                await wait_or_abandon({asyncio.create_task(self.redis.aclose())}, STEP_WAIT,
                                      "closing connections")

    def shutdown_budget(self) -> float:
        """Seconds a stop may take at most: a blocking read and deregistering, each
        through an outage."""
        return shutdown_budget(self.settings)

    def _streams(self) -> list[tuple[Keys, str]]:
        """The streams coordinators consume: each partition's events and, with partitions,
        its releases."""
        streams = [(keys, keys.events) for keys in self.parts.all]
        if self.parts.count > 1:
            streams += [(keys, keys.releases) for keys in self.parts.all]
        return streams

    async def _ensure_group(self, stream: tuple[Keys, str]) -> None:
        try:
            await self.redis.xgroup_create(stream[1], COORDINATOR_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _consume(self, stream: tuple[Keys, str]) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                reply = await self.redis.xreadgroup(
                    COORDINATOR_GROUP, self.id, {stream[1]: ">"}, count=_BATCH,
                    block=self.settings.block_ms)
                if reply and reply[0][1]:
                    if self._fault:
                        self._fault.reached("coordinator-after-read")
                    await self._apply(stream, reply[0][1])
                    if self._fault:
                        self._fault.reached("coordinator-after-apply")
                backoff = 0.1
            except Exception as exc:
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    await self._ensure_group(stream)
                    continue
                if not is_outage(exc):
                    raise
                logger.warning("coordinator {}: Redis unreachable ({}); retrying in {:.1f} s",
                               self.id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _apply(self, stream: tuple[Keys, str], entries: list[Any]) -> int:
        keys, name = stream
        if name == keys.releases:
            return await self._release(keys, entries)
        head: list[Any] = [COORDINATOR_GROUP, self.settings.recent_per_role,
                           int(self.settings.result_ttl)]
        applied, args = 0, list(head)
        for n, (entry_id, f) in enumerate(entries, 1):
            args.extend(outcome_args(entry_id, f))
            if len(args) - len(head) >= 8 * _OUTCOMES_PER_CALL or n == len(entries):
                applied += int(await self.scripts.stats(keys=[keys.base], args=args))
                args = list(head)
        self.applied += applied
        return applied

    async def _release(self, keys: Keys, entries: list[Any]) -> int:
        """Apply releases to their dependents' partitions, then acknowledge and delete them
        here: a crash in between has them applied again, harmlessly."""
        by_target: dict[str, list[Any]] = {}
        for _, f in entries:
            if f and f.get(b"to"):  # claimed after it was deleted: nothing to apply
                by_target.setdefault(f[b"to"].decode(), []).extend(
                    (f[b"t"], f[b"p"], f[b"s"], f.get(b"o", b"")))
        for base, args in by_target.items():
            await self.scripts.release(keys=[base], args=args)
        ids = [entry_id for entry_id, _ in entries]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(keys.releases, COORDINATOR_GROUP, *ids)
            pipe.xdel(keys.releases, *ids)
            await pipe.execute()
        self.released += len(ids)
        return len(ids)

    async def _chores(self) -> None:
        """Heartbeat, take over dead coordinators' events, prune old per-minute counts
        and dead letters older than ``dead_letter_ttl``; until ``stop()`` (lifecycle.paused)."""
        while not await paused(self._stopping,
                               self.settings.heartbeat_interval * random.uniform(0.8, 1.0)):
            try:
                await self._heartbeat()
                await self._claim_orphans()
                await self._prune()
                await self._trim_dead_letters()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("coordinator {}: chores failed ({}); retrying", self.id, exc)

    async def _trim_dead_letters(self) -> None:
        sec, _ = await self.scripts.clock(keys=[self.keys.base])
        oldest_ms = (sec - self.settings.dead_letter_ttl) * 1000
        for keys in self.parts.all:
            await self.redis.xtrim(keys.dead, minid=f"{oldest_ms}-0", approximate=True)

    async def _heartbeat(self) -> None:
        sec, usec = await self.scripts.clock(keys=[self.keys.base])
        await self.redis.zadd(self.keys.coordinators, {self.id: sec * 1000 + usec // 1000})

    async def _claim_orphans(self) -> None:
        idle_ms = int(self.settings.worker_timeout * 1000)
        for stream in self._streams():
            await self._claim_from(stream, idle_ms)
        sec, _ = await self.scripts.clock(keys=[self.keys.base])
        cutoff = sec * 1000 - idle_ms
        dead = await self.redis.zrangebyscore(self.keys.coordinators, "-inf", cutoff)
        for cid in dead:
            await self.redis.zrem(self.keys.coordinators, cid)
            for stream in self._streams():
                await self._forget_consumer(stream, cid.decode())
            logger.warning("coordinator {} presumed dead (no heartbeat for {} s)",
                           cid.decode(), self.settings.worker_timeout)

    async def _claim_from(self, stream: tuple[Keys, str], idle_ms: int) -> None:
        """Take over and apply the entries of ``stream`` a dead coordinator left pending."""
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(stream[1], COORDINATOR_GROUP, self.id,
                                                min_idle_time=idle_ms, start_id=start,
                                                count=_BATCH)
            start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if entries:
                self.claimed += len(entries)
                applied = await self._apply(stream, entries)
                logger.warning("coordinator {} took over {} entries of {} from a dead "
                               "coordinator ({} applied)", self.id, len(entries), stream[1],
                               applied)
            for entry_id in deleted:  # trimmed before anyone counted them
                await self.redis.xack(stream[1], COORDINATOR_GROUP, entry_id)
            if start in (b"0-0", "0-0"):
                break

    async def _forget_consumer(self, stream: tuple[Keys, str], consumer: str) -> None:
        """Drop a consumer from the group, unless it still holds entries someone must apply."""
        held = await self.redis.xpending_range(stream[1], COORDINATOR_GROUP, "-", "+", 1,
                                               consumername=consumer)
        if not held:
            await self.redis.xgroup_delconsumer(stream[1], COORDINATOR_GROUP, consumer)

    async def _prune(self) -> None:
        sec, _ = await self.scripts.clock(keys=[self.keys.base])
        minute = sec // 60
        for keys in self.parts.all:
            for role in await self.redis.smembers(keys.roles):
                key = keys.stats(role.decode())
                stale = stale_minute_fields(await self.redis.hkeys(key), minute)
                if stale:
                    await self.redis.hdel(key, *stale)


async def run_coordinator(**options: Any) -> None:
    """Run a Coordinator until SIGINT or SIGTERM (for the CLI)."""
    import signal

    coordinator = Coordinator(**options)
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not coordinator._stopping.is_set():  # the first signal arms the deadline
            arm_exit_deadline(coordinator.shutdown_budget() + 10, "coordinator")
        coordinator.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    install_stack_dumps()
    await coordinator.run()
