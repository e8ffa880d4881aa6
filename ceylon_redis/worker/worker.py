"""The ``Worker``: makes the parts of a worker, runs them, and stops them in order."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

from loguru import logger

from ..connection import daemon_redis
from ..coordinator import Coordinator
from ..errors import ProtocolMismatchError, ValidationError
from ..faults import fault_from_env
from ..handlers import handlers_from
from ..keys import GROUP, Keys
from ..lifecycle import STEP_WAIT, shutdown_budget, wait_or_abandon
from ..partitions import Partitions
from ..scheduler import run_scheduler
from ..scripts import Scripts, script_protocol
from ..settings import Settings, redact_url
from ..threads import ThreadRunner
from .cancels import CancelListener
from .consume import Reader, create_group
from .heartbeat import Heartbeat
from .outcomes import Recorder
from .progress import ProgressWriter
from .running import Runner
from .state import Consumer, Runtime, Slots, default_prefetch


def _worker_id(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:32] or "worker"
    return f"{safe}-{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Run handlers for tasks of their roles until ``stop()``; see the package docstring."""

    def __init__(self, handlers: Any, *, role: str | None = None,
                 concurrency: int | None = None, prefetch: int | None = None,
                 url: str | None = None, prefix: str | None = None,
                 settings: Settings | None = None, redis_client: Any = None,
                 grace: float = 30.0, reap: bool = True, coordinator: bool = False) -> None:
        settings = Settings.resolve(settings, url, prefix)
        keys = Keys(settings.prefix)
        parts = Partitions(settings.prefix, settings.partitions)
        redis_conn: Any = redis_client if redis_client is not None else daemon_redis(settings)
        self._owns_redis = redis_client is None
        scripts = Scripts.register(redis_conn, settings.events_maxlen)
        if concurrency is not None and concurrency < 1:
            raise ValidationError(f"concurrency must be at least 1, not {concurrency}")
        if prefetch is not None and prefetch < 0:
            raise ValidationError(f"prefetch must not be negative, not {prefetch}")
        # Default: a ProcessWorker takes one task at a time, as in Ceylon; a function ten.
        # One consumer per handler and partition, under one id, sharing the handler's slots.
        consumers = []
        for h in handlers_from(handlers, role):
            wid = _worker_id(h.name)
            n = concurrency or (1 if h.process_worker is not None else 10)
            slots = Slots(n, readers=parts.count,
                          prefetch=prefetch if prefetch is not None else default_prefetch(h, n))
            consumers += [Consumer(h, wid, part, slots) for part in parts.all]
        self.coordinator = (Coordinator(settings=settings, redis_client=redis_conn)
                            if coordinator else None)
        """The coordinator this daemon also runs (``--coordinator``), if any."""
        self._runtime = Runtime(settings, keys, parts, redis_conn, scripts, consumers, grace,
                                fault=fault_from_env())
        self.ready = asyncio.Event()
        """Set once every consumer is registered and about to read."""
        self._heartbeat = Heartbeat(self._runtime, self.cancel_task, reap)
        self._recorder = Recorder(self._runtime)
        self._progress = ProgressWriter(self._runtime)
        self._runner = Runner(self._runtime, self._progress)
        self._reader = Reader(self._runtime, self._runner.launch)
        self._cancels = CancelListener(self._runtime, self.cancel_task)

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    @property
    def keys(self) -> Keys:
        return self._runtime.keys

    @property
    def parts(self) -> Partitions:
        return self._runtime.parts

    @property
    def redis(self) -> Any:
        return self._runtime.redis

    @property
    def scripts(self) -> Scripts:
        return self._runtime.scripts

    @property
    def consumers(self) -> list[Consumer]:
        return self._runtime.consumers

    @property
    def grace(self) -> float:
        """Seconds in-flight tasks get to finish at a stop."""
        return self._runtime.grace

    @grace.setter
    def grace(self, seconds: float) -> None:
        self._runtime.grace = seconds

    @property
    def reap(self) -> bool:
        """Whether this worker also reaps dead workers."""
        return self._heartbeat.reap

    @reap.setter
    def reap(self, on: bool) -> None:
        self._heartbeat.reap = on

    @property
    def _firsts(self) -> list[Consumer]:
        """Each handler's consumer of partition 0: one per handler."""
        return self._runtime.firsts

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self._firsts]

    def stop(self) -> None:
        """Stop reading new tasks; ``run()`` returns once in-flight work is settled."""
        self._runtime.stopping.set()

    def cancel_task(self, task_id: str, why: str) -> bool:
        """Cancel the running attempt of ``task_id`` here, if any (its outcome is dropped)."""
        return self._runner.cancel(task_id, why)

    def shutdown_budget(self) -> float:
        """Seconds a stop may take at most: the grace, then recording through an outage."""
        return shutdown_budget(self.settings, self.grace)

    async def run(self) -> None:
        """Consume until ``stop()``; then drain, give back leftovers and deregister."""
        rt = self._runtime
        rt.threads = ThreadRunner(asyncio.get_running_loop(),
                                  max(4, sum(c.concurrency for c in self._firsts)))
        await self.parts.check_async(self.redis)
        await self._check_protocol()
        await self._ensure_groups()
        await self._heartbeat.beat()
        for c in self._firsts:
            logger.info("worker {} started: role={} concurrency={} redis={}{}", c.id, c.role,
                        c.concurrency, redact_url(self.settings.url),
                        f" partitions={self.parts.count}" if self.parts.count > 1 else "")
        coordinating = (asyncio.create_task(self.coordinator.run(), name="ceylon-redis-coordinator")
                        if self.coordinator else None)
        if self.coordinator is not None:
            await self.coordinator.ready.wait()
        self.ready.set()
        finisher = asyncio.create_task(self._recorder.finisher(), name="ceylon-redis-finisher")
        beat = asyncio.create_task(self._heartbeat.loop(), name="ceylon-redis-heartbeat")
        control = asyncio.create_task(self._cancels.listen(), name="ceylon-redis-control")
        progress = asyncio.create_task(self._progress.loop(), name="ceylon-redis-progress")
        schedulers = [asyncio.create_task(
            run_scheduler(self.scripts, keys, self.settings, rt.stopping,
                          self.consumers[0].id), name="ceylon-redis-scheduler")
            for keys in self.parts.all]
        readers = [asyncio.create_task(self._reader.consume(c), name=f"ceylon-redis-read-{c.id}")
                   for c in self.consumers]
        try:
            await asyncio.gather(*readers)
        finally:
            if self.coordinator is not None:
                self.coordinator.stop()  # its last blocking read ends while we drain
            for r in readers:
                r.cancel()
            await wait_or_abandon(readers, STEP_WAIT, "readers")
            await self._drain()
            await self._recorder.settle(finisher, self.shutdown_budget)
            rt.winding_down.set()  # the loops end on it even if a cancel below is lost
            for t in (finisher, beat, control, progress):
                t.cancel()
            await wait_or_abandon({finisher, beat, control, progress, *schedulers}, STEP_WAIT,
                                  "background tasks")
            await self._heartbeat.give_back_and_deregister()
            if coordinating is not None:
                await wait_or_abandon({coordinating}, self.shutdown_budget(), "coordinator")
            if rt.threads is not None:
                rt.threads.shutdown()
            if self._owns_redis:
                await wait_or_abandon({asyncio.create_task(self.redis.aclose())}, STEP_WAIT,
                                      "closing connections")

    async def _check_protocol(self) -> None:
        """Refuse to start beside a live worker whose scripts differ (another version)."""
        sec, usec = await self.scripts.clock(keys=[self.keys.base])
        fresh = sec * 1000 + usec // 1000 - self.settings.worker_timeout * 1000
        live = await self.redis.zrangebyscore(self.keys.workers, fresh, "+inf")
        async with self.redis.pipeline(transaction=False) as pipe:
            for wid in live:
                pipe.hmget(self.keys.worker(wid.decode()), "protocol", "pid")
            theirs = await pipe.execute()
        # No pid: the hash went since the ZRANGEBYSCORE, a worker that just stopped.
        others = [(w.decode(), (p or b"none").decode()) for w, (p, pid) in zip(live, theirs)
                  if pid is not None and (p or b"").decode() != script_protocol()]
        if others:
            wid, p = others[0]
            raise ProtocolMismatchError(
                f"{len(others)} live workers of prefix {self.settings.prefix!r} run other "
                f"scripts (e.g. {wid}: protocol {p}, this one {script_protocol()}): another "
                "ceylon-redis version; stop them before starting this one")

    async def _ensure_groups(self) -> None:
        for keys, role in {(c.keys, c.role) for c in self.consumers}:
            await create_group(self.redis, keys, role)
            await self.redis.sadd(keys.roles, role)
        for c in self.consumers:  # visible in XINFO CONSUMERS before the first delivery
            await self.redis.execute_command(
                "XGROUP", "CREATECONSUMER", c.keys.stream(c.role), GROUP, c.id)

    async def _drain(self) -> None:
        for c in self.consumers:  # prefetched, never started: given back as they were
            for entry in list(c.waiting):
                c.unstarted.append(entry)
                c.inflight[entry].cancel()
        inflight = [t for c in self.consumers for t in c.inflight.values()]
        if not inflight:
            return
        logger.info("draining {} in-flight tasks (grace {} s)", len(inflight), self.grace)
        _, pending = await asyncio.wait(inflight, timeout=self.grace)
        if pending:
            logger.warning("{} tasks still running after {} s: cancelled and given back",
                           len(pending), self.grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
