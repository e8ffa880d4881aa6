"""The worker runtime: read a role's stream through its consumer group, run, record.

One ``Worker`` hosts one consumer per handler. Each consumer reads in batches
up to its free slots, starts the batch with one script call, runs handlers as
asyncio tasks (sync ones in a thread pool), and hands outcomes to a finisher
that records them in batches. A heartbeat loop keeps the consumers registered
and their in-flight entries fresh; a reaper gives back the tasks of workers
whose heartbeat lapsed. ``stop()`` drains: no new reads, in-flight tasks get
``grace`` seconds, whatever is left goes back on the stream.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from loguru import logger

from .codec import decode
from .connection import daemon_redis, is_outage
from .coordinator import Coordinator
from .errors import ProtocolMismatchError, ValidationError
from .faults import MID_RUN_DELAY, fault_from_env
from .handlers import FINAL, NOT_RETRYABLE, Handler, Outcome, handlers_from
from .keys import GROUP, Keys
from .lifecycle import (
    STEP_WAIT,
    arm_exit_deadline,
    install_stack_dumps,
    shutdown_budget,
    wait_or_abandon,
)
from .partitions import Partitions
from .process import TaskContext
from .protocol import parse_started
from .scheduler import run_scheduler
from .scripts import Scripts, run_each_async, script_protocol
from .settings import Settings, redact_url
from .threads import Call, ThreadRunner

_IDLE_READ = 30.0
"""Seconds one read of the control channel waits for a message before waiting again."""


def _worker_id(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:32] or "worker"
    return f"{safe}-{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(eq=False)
class _Slots:
    """One handler's concurrency, shared by its consumers of every partition."""

    concurrency: int
    readers: int = 1
    """Consumers sharing these slots, one per partition."""
    prefetch: int = 0
    """Tasks taken beyond ``concurrency``; they wait for a free ``permits`` slot to start."""
    busy: int = 0
    """Attempts running or waiting to start, in every partition."""
    reserved: int = 0
    """Slots held by reads under way (each reader's share), so readers never overcommit."""
    stragglers: int = 0
    """Sync handler threads still running after their attempt ended (timeout, cancel)."""
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    processed: int = 0
    failed: int = 0
    permits: asyncio.Semaphore | None = None
    """With prefetch: ``concurrency`` permits, one per attempt running (or straggling)."""

    def __post_init__(self) -> None:
        if self.prefetch:
            self.permits = asyncio.Semaphore(self.concurrency)

    @property
    def free(self) -> int:
        return self.concurrency + self.prefetch - self.busy - self.reserved - self.stragglers

    def share(self) -> int:
        """Slots one reader may take now: all that are free with one partition, else its
        share of them, so that every partition gets read."""
        if self.readers == 1:
            return self.free
        return max(0, min(self.free, -(-(self.concurrency + self.prefetch) // self.readers)))


@dataclass(eq=False)
class _Consumer:
    handler: Handler
    id: str
    keys: Keys
    """The partition this consumer reads (the namespace itself without partitions)."""
    slots: _Slots
    inflight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    """Running attempts by entry id."""
    running: dict[str, str] = field(default_factory=dict)
    """Entry id of each running attempt by task id."""
    recording: dict[str, str] = field(default_factory=dict)
    """Task id by entry id of attempts whose outcome awaits recording: still in flight for
    the heartbeat, so it neither lets their entries idle nor gives them back as orphans."""
    cancel_requested: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)
    """Entry ids of prefetched attempts waiting for a permit: taken, not started."""
    unstarted: list[str] = field(default_factory=list)
    """Entry ids of prefetched attempts a stop cancelled before they started."""

    @property
    def concurrency(self) -> int:
        return self.slots.concurrency

    @property
    def role(self) -> str:
        return self.handler.role


@dataclass
class _Done:
    consumer: _Consumer
    task_id: str
    entry: str
    attempt: int
    outcome: Outcome


class Worker:
    """Run handlers for tasks of their roles until ``stop()``; see the module docstring."""

    def __init__(self, handlers: Any, *, role: str | None = None,
                 concurrency: int | None = None, prefetch: int | None = None,
                 url: str | None = None, prefix: str | None = None,
                 settings: Settings | None = None, redis_client: Any = None,
                 grace: float = 30.0, reap: bool = True, coordinator: bool = False) -> None:
        self.settings = Settings.resolve(settings, url, prefix)
        self.keys = Keys(self.settings.prefix)
        self.parts = Partitions(self.settings.prefix, self.settings.partitions)
        self.redis: Any = (redis_client if redis_client is not None
                           else daemon_redis(self.settings))
        self._owns_redis = redis_client is None
        self.scripts = Scripts.register(self.redis)
        if concurrency is not None and concurrency < 1:
            raise ValidationError(f"concurrency must be at least 1, not {concurrency}")
        if prefetch is not None and prefetch < 0:
            raise ValidationError(f"prefetch must not be negative, not {prefetch}")
        # Default: a ProcessWorker takes one task at a time, as in Ceylon; a function ten.
        # One consumer per handler and partition, under one id, sharing the handler's slots.
        self.consumers = []
        for h in handlers_from(handlers, role):
            wid = _worker_id(h.name)
            n = concurrency or (1 if h.process_worker is not None else 10)
            slots = _Slots(n, readers=self.parts.count,
                           prefetch=prefetch if prefetch is not None else default_prefetch(h, n))
            self.consumers += [_Consumer(h, wid, keys, slots) for keys in self.parts.all]
        self.grace = grace
        self.reap = reap
        self.coordinator = (Coordinator(settings=self.settings, redis_client=self.redis)
                            if coordinator else None)
        """The coordinator this daemon also runs (``--coordinator``), if any."""
        self._threads: ThreadRunner | None = None
        """Runs sync handlers; made in run(), on the loop it hands results to."""
        self._done: asyncio.Queue[_Done] = asyncio.Queue(
            maxsize=2 * sum(c.concurrency for c in self._firsts))
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once every consumer is registered and about to read."""
        self._started_at = str(time.time())
        s = self.settings
        self._retry_defaults = [s.max_attempts, round(s.retry_backoff * 1000),
                                round(s.retry_backoff_max * 1000), s.retry_jitter,
                                s.dead_letter_ttl]
        """The finish script's worker defaults: attempts, backoff, its cap, jitter, DLQ TTL."""
        self._fault = fault_from_env()
        self._embedded = (self.settings.url.startswith("embedded://")
                          or type(self.redis).__module__.startswith("fakeredis"))

    @property
    def _firsts(self) -> list[_Consumer]:
        """Each handler's consumer of partition 0: one per handler."""
        return [c for c in self.consumers if c.keys.partition == 0]

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self._firsts]

    def stop(self) -> None:
        """Stop reading new tasks; ``run()`` returns once in-flight work is settled."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until ``stop()``; then drain, give back leftovers and deregister."""
        self._threads = ThreadRunner(asyncio.get_running_loop(),
                                     max(4, sum(c.concurrency for c in self._firsts)))
        await self.parts.check_async(self.redis)
        await self._check_protocol()
        await self._ensure_groups()
        await self._heartbeat()
        for c in self._firsts:
            logger.info("worker {} started: role={} concurrency={} redis={}{}", c.id, c.role,
                        c.concurrency, redact_url(self.settings.url),
                        f" partitions={self.parts.count}" if self.parts.count > 1 else "")
        coordinating = (asyncio.create_task(self.coordinator.run(), name="ceylon-redis-coordinator")
                        if self.coordinator else None)
        if self.coordinator is not None:
            await self.coordinator.ready.wait()
        self.ready.set()
        finisher = asyncio.create_task(self._finisher(), name="ceylon-redis-finisher")
        beat = asyncio.create_task(self._heartbeat_loop(), name="ceylon-redis-heartbeat")
        control = asyncio.create_task(self._listen_for_cancels(), name="ceylon-redis-control")
        schedulers = [asyncio.create_task(
            run_scheduler(self.scripts, keys, self.settings, self._stopping,
                          self.consumers[0].id), name="ceylon-redis-scheduler")
            for keys in self.parts.all]
        readers = [asyncio.create_task(self._consume(c), name=f"ceylon-redis-read-{c.id}")
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
            await self._settle_outcomes(finisher)
            for t in (finisher, beat, control):
                t.cancel()
            await wait_or_abandon({finisher, beat, control, *schedulers}, STEP_WAIT,
                                  "background tasks")
            await self._give_back_and_deregister()
            if coordinating is not None:
                await wait_or_abandon({coordinating}, self.shutdown_budget(), "coordinator")
            if self._threads is not None:
                self._threads.shutdown()
            if self._owns_redis:
                await wait_or_abandon({asyncio.create_task(self.redis.aclose())}, STEP_WAIT,
                                      "closing connections")

    def shutdown_budget(self) -> float:
        """Seconds a stop may take at most: the grace, then recording through an outage."""
        return shutdown_budget(self.settings, self.grace)

    async def _settle_outcomes(self, finisher: asyncio.Task[None]) -> None:
        """Wait until every outcome handed over is recorded (or given up on)."""
        joined = asyncio.create_task(self._done.join())
        await asyncio.wait({joined, finisher}, timeout=self.shutdown_budget(),
                           return_when=asyncio.FIRST_COMPLETED)
        if joined.done():
            return
        joined.cancel()
        left = self._done.qsize()
        if finisher.done() and not finisher.cancelled() and finisher.exception():
            logger.error("recording outcomes failed ({!r}); {} left unrecorded: the reaper "
                         "re-runs those tasks", finisher.exception(), left)
        else:
            logger.error("outcomes still unrecorded after {:.0f} s ({} left): the reaper "
                         "re-runs those tasks", self.shutdown_budget(), left)

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
            await self._create_group(keys, role)
            await self.redis.sadd(keys.roles, role)
        for c in self.consumers:  # visible in XINFO CONSUMERS before the first delivery
            await self.redis.execute_command(
                "XGROUP", "CREATECONSUMER", c.keys.stream(c.role), GROUP, c.id)

    async def _create_group(self, keys: Keys, role: str) -> None:
        try:
            await self.redis.xgroup_create(keys.stream(role), GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _consume(self, c: _Consumer) -> None:
        stream = c.keys.stream(c.role)
        backoff = 0.1
        # Readers that share slots with fewer slots than readers block briefly, so that one
        # holding the last slot on an empty partition lets it go soon.
        block = (self.settings.block_ms if c.slots.concurrency >= c.slots.readers
                 else min(self.settings.block_ms, 100))
        # The last read filled every slot it asked for, so more are likely waiting: the next
        # read is a take (read and start in one call) until one comes back short.
        busy = False
        while not self._stopping.is_set():
            free = c.slots.share()
            if free <= 0:
                c.slots.slot_freed.clear()
                await self._wait_either(c.slots.slot_freed.wait())
                continue
            if self._embedded:
                # In-process Redis: whoever just finished a task would always read first;
                # a random pause shares the work among idle consumers as Redis' FIFO would.
                await self._wait_either(asyncio.sleep(random.uniform(0.002, 0.02)))
            if busy:
                c.slots.reserved += free
                try:
                    busy = await self._take(c, free)
                finally:
                    self._unreserve(c, free)
                continue
            began = time.monotonic()
            c.slots.reserved += free
            try:
                reply = await self.redis.xreadgroup(GROUP, c.id, {stream: ">"}, count=free,
                                                    block=block)
                backoff = 0.1
            except Exception as exc:
                self._unreserve(c, free)
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    await self._create_group(c.keys, c.role)
                    continue
                if not is_outage(exc):
                    raise
                logger.warning("worker {}: Redis unreachable ({}); retrying in {:.1f} s",
                               c.id, exc, backoff)
                await self._wait_either(asyncio.sleep(backoff))
                backoff = min(backoff * 2, 5.0)
                continue
            entries = reply[0][1] if reply else []
            if not entries:
                self._unreserve(c, free)
                if time.monotonic() - began < block / 2000:
                    await self._wait_either(asyncio.sleep(0.1))  # a read that did not block
                elif c.slots.readers > 1:  # let a reader woken by the unreserve go first
                    await self._wait_either(asyncio.sleep(0.005))
                continue
            try:
                if self._fault:
                    self._fault.reached("after-read")
                await self._start(c, entries)
                busy = len(entries) >= free
            finally:
                self._unreserve(c, free)

    @staticmethod
    def _unreserve(c: _Consumer, n: int) -> None:
        """Give back a read's reserved slots; readers of other partitions may take them."""
        c.slots.reserved -= n
        c.slots.slot_freed.set()

    async def _wait_either(self, aw: Any) -> None:
        """Wait for ``aw`` or for stop(), whichever comes first."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        for t in (task, stop):
            t.cancel()

    async def _start(self, c: _Consumer, entries: list[Any]) -> None:
        args: list[Any] = [c.role, c.id]
        for entry_id, fields in entries:
            tid = fields.get(b"id", b"") if isinstance(fields, dict) else b""
            args.extend((entry_id, tid))
        for _ in range(5):
            try:
                items = await self.scripts.start(keys=[c.keys.base], args=args)
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("worker {}: start failed ({}); retrying", c.id, exc)
                await asyncio.sleep(0.5)
        else:
            return  # the entries stay pending for us and are given back at exit or by the reaper
        await self._launch(c, [e for e, _ in entries], items)

    async def _take(self, c: _Consumer, count: int) -> bool:
        """Read and start up to ``count`` new entries in one call; whether it got that many
        (on a failure, entries it read stay pending for the heartbeat to give back)."""
        try:
            reply = await self.scripts.start(keys=[c.keys.base], args=[c.role, c.id, ">", count])
        except Exception as exc:
            if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                return False  # the blocking read makes the group again
            if not is_outage(exc):
                raise
            logger.warning("worker {}: reading failed ({}); retrying", c.id, exc)
            return False
        if reply:
            await self._launch(c, reply[0::2], reply[1::2])
        return len(reply) // 2 >= count

    async def _launch(self, c: _Consumer, entry_ids: list[bytes], items: list[Any]) -> None:
        """Run the attempts start.lua began; skip what it refused."""
        if self._fault:
            self._fault.reached("after-start")
        for entry_id, item in zip(entry_ids, items):
            entry = entry_id.decode()
            started = parse_started(item)
            tid, attempt = started.task_id, started.attempt
            if attempt == 0:
                logger.warning("worker {}: skipped entry {}: {}", c.id, entry, started.reason)
                continue
            try:
                deps = {k: decode(v) if v else None for k, v in (started.outputs or {}).items()}
                data = decode(started.data) if started.data else None
            except Exception as exc:  # bad data fails its task, not the worker
                logger.error("worker {}: task {} has undecodable data: {}", c.id, tid, exc)
                await self._done.put(_Done(c, tid, entry, attempt, Outcome(
                    "FAILED", b"", f"undecodable task data: {exc}", NOT_RETRYABLE)))
                continue
            ctx = TaskContext(id=tid, role=c.role, name=started.name, attempt=attempt,
                              worker=c.id, dependency_data=deps,
                              failed_dependencies=started.failed or {})
            timeout = started.timeout or self.settings.task_timeout
            c.running[tid] = entry
            c.slots.busy += 1
            c.inflight[entry] = asyncio.create_task(self._run(c, ctx, entry, data, timeout))

    async def _run(self, c: _Consumer, ctx: TaskContext, entry: str, data: Any,
                   timeout: float | None) -> None:
        threads: list[Call] = []
        permits, holding = c.slots.permits, False
        mid_run = None
        try:
            try:
                if permits is not None:
                    await self._take_permit(c, permits, entry)
                    holding = True
                if self._fault:
                    mid_run = asyncio.get_running_loop().call_later(
                        MID_RUN_DELAY, self._fault.reached, "mid-run")
                assert self._threads is not None  # made by run(), before any read
                outcome = await c.handler.run(ctx, data, self._threads, timeout, threads.append)
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
                await self._done.put(_Done(c, ctx.id, entry, ctx.attempt, outcome))
            except BaseException:
                c.recording.pop(entry, None)
                raise
        finally:
            if mid_run is not None:
                mid_run.cancel()
            # A sync thread that runs on keeps its slot (and permit) until it returns.
            if threads and not threads[0].done():
                self._hold_slot(c, ctx.id, threads[0])
            elif holding and permits is not None:
                permits.release()
            self._end_attempt(c, ctx.id, entry)

    @staticmethod
    async def _take_permit(c: _Consumer, permits: asyncio.Semaphore, entry: str) -> None:
        """Wait for a free permit; while waiting, the entry counts as taken but not started."""
        c.waiting.add(entry)
        try:
            await permits.acquire()
        finally:
            c.waiting.discard(entry)

    @staticmethod
    def _end_attempt(c: _Consumer, task_id: str, entry: str) -> None:
        """Free an attempt's slot once its outcome is handed over (or it never started), so
        the next read overlaps with recording this batch."""
        if c.inflight.pop(entry, None) is not None:
            c.slots.busy -= 1
        c.running.pop(task_id, None)
        c.cancel_requested.discard(task_id)
        c.slots.slot_freed.set()

    def _hold_slot(self, c: _Consumer, task_id: str, thread: Call) -> None:
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

        assert self._threads is not None
        self._threads.on_done(thread, lambda _: loop.call_soon_threadsafe(release))

    def cancel_task(self, task_id: str, why: str) -> bool:
        """Cancel the running attempt of ``task_id`` here, if any (its outcome is dropped)."""
        for c in self.consumers:
            task = c.inflight.get(c.running.get(task_id, ""))
            if task is not None and not task.done():
                c.cancel_requested.add(task_id)
                task.cancel()
                logger.info("worker {}: task {} cancelled while running ({})", c.id, task_id,
                            why)
                return True
        return False

    async def _listen_for_cancels(self) -> None:
        """Cancel running attempts as ``cancel`` announces them on the control channel."""
        ids = set(self.ids)
        backoff = 0.5
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*(keys.control for keys in self.parts.all))
                backoff = 0.5
                while True:
                    # A read with its own timeout, not listen(): redis-py 5 cuts an idle
                    # listen() at the socket timeout.
                    msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=_IDLE_READ)
                    if msg is None or msg["type"] != "message":
                        continue
                    verb, _, rest = msg["data"].decode().partition(" ")
                    wid, _, tid = rest.partition(" ")
                    if verb == "cancel" and wid in ids:
                        self.cancel_task(tid, "cancel requested")
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("control channel lost ({}); resubscribing in {:.1f} s", exc,
                               backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await pubsub.aclose()

    async def _finisher(self) -> None:
        """Record outcomes in batches: one script call per role for whatever has piled up."""
        while True:
            batch = [await self._done.get()]
            while not self._done.empty() and len(batch) < 500:
                batch.append(self._done.get_nowait())
            if self._fault:
                self._fault.reached("before-finish")
            try:
                await self._record(batch)
            finally:
                for d in batch:
                    d.consumer.recording.pop(d.entry, None)
                    self._done.task_done()

    async def _record(self, batch: list[_Done]) -> None:
        by_consumer: dict[_Consumer, list[Any]] = {}
        for d in batch:
            o = d.outcome
            if d.consumer not in by_consumer:
                by_consumer[d.consumer] = [d.consumer.role, d.consumer.id,
                                           random.getrandbits(31), *self._retry_defaults]
            by_consumer[d.consumer].extend(
                (d.task_id, d.entry, d.attempt, o.status, o.output, o.error, o.retry))
        backoff, began = 0.1, time.monotonic()
        while True:
            try:
                replies = await self._call_each(self.scripts.finish, list(by_consumer.items()))
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if self._stopping.is_set() and time.monotonic() - began > self.grace:
                    logger.error("could not record {} results in {} s ({}); giving up: the "
                                 "reaper re-runs those tasks", len(batch), self.grace, exc)
                    return
                logger.warning("could not record {} results ({}); retrying in {:.1f} s",
                               len(batch), exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if self._fault:
            self._fault.reached("after-finish")
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

    async def _call_each(self, script: Any,
                         calls: list[tuple[_Consumer, list[Any]]]) -> list[Any]:
        """Run ``script`` once per consumer's argument list, in its partition (see run_each);
        the replies in order."""
        by_keys: dict[Keys, list[int]] = {}
        for i, (c, _) in enumerate(calls):
            by_keys.setdefault(c.keys, []).append(i)
        replies: list[Any] = [None] * len(calls)
        for keys, indexes in by_keys.items():
            got = await run_each_async(self.redis, script, [keys.base],
                                       [calls[i][1] for i in indexes])
            for i, reply in zip(indexes, got):
                replies[i] = reply
        return replies

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

    async def _give_back_and_deregister(self) -> None:
        try:
            for c in self.consumers:
                requeued, failed = await self.scripts.requeue(
                    keys=[c.keys.base],
                    args=[c.id, f"worker {c.id} stopped", self.settings.dead_letter_ttl,
                          len(c.unstarted), *c.unstarted, c.role])
                if requeued or failed:
                    logger.info("worker {} gave back {} tasks ({} failed, lost too often)",
                                c.id, requeued, failed)
                async with self.redis.pipeline(transaction=False) as pipe:
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

    async def _heartbeat(self) -> None:
        arg_lists, sent = [], []
        for c in self.consumers:
            info = {"roles": c.role, "name": c.handler.name, "host": socket.gethostname(),
                    "pid": os.getpid(), "concurrency": c.concurrency,
                    "started_at": self._started_at, "protocol": script_protocol(),
                    "processed": c.slots.processed,
                    "failed": c.slots.failed}
            args: list[Any] = [c.id, int(self.settings.worker_timeout * 1000),
                                self.settings.dead_letter_ttl, len(info)]
            for k, v in info.items():
                args.extend((k, v))
            running = dict(c.running)
            for tid, entry in running.items():
                args.extend((c.role, entry, tid))
            for entry, tid in list(c.recording.items()):
                args.extend((c.role, entry, tid))
            arg_lists.append((c, args))
            sent.append(running)
        replies = await self._call_each(self.scripts.heartbeat, arg_lists)
        for c, running, (_, gone, orphans) in zip(self.consumers, sent, replies):
            for tid in map(bytes.decode, gone):
                # Only the attempt the heartbeat asked about: by the time the answer is back,
                # a recorded outcome may have been retried and started here again.
                if tid in running and c.running.get(tid) == running[tid]:
                    self.cancel_task(tid, "no longer this worker's: cancelled or reclaimed")
            if orphans:
                logger.warning("worker {} gave back {} tasks Redis still counted as its own but "
                               "it no longer ran (outcomes lost, say by a failover)", c.id,
                               orphans)

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.0))
            try:
                await self._heartbeat()
                if self.reap:
                    for keys in self.parts.all:
                        await reap_dead_workers(self.scripts, keys, self.settings)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("heartbeat failed ({}); retrying", exc)


def default_prefetch(handler: Handler, concurrency: int) -> int:
    """Tasks a consumer takes beyond its concurrency unless told: as many again for a sync
    function (its threads never wait on Redis between short tasks), none otherwise."""
    return 0 if handler.is_async else concurrency


def _last_line(error: str) -> str:
    """A traceback's last line: the exception and its message."""
    return error.strip().splitlines()[-1][:300] if error.strip() else ""


def _uncancel() -> None:
    """Forget a cancellation this task has handled (Python 3.11+ counts them)."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


async def reap_dead_workers(scripts: Scripts, keys: Keys, settings: Settings) -> int:
    """Give back the tasks of every worker whose heartbeat lapsed; returns how many were reaped."""
    reply = await scripts.reap(keys=[keys.base], args=[int(settings.worker_timeout * 1000),
                                                       settings.dead_letter_ttl])
    for i in range(0, len(reply), 3):
        logger.warning("worker {} presumed dead (no heartbeat for {} s): {} tasks re-queued, "
                       "{} failed (lost too often)", reply[i].decode(), settings.worker_timeout,
                       reply[i + 1], reply[i + 2])
    return len(reply) // 3


async def run_worker(handlers: Any, **options: Any) -> None:
    """Run a Worker until SIGINT or SIGTERM, then drain and exit (for the CLI)."""
    import signal

    worker = Worker(handlers, **options)
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signame: str) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.info("{} received: finishing in-flight tasks, then exiting", signame)
            arm_exit_deadline(worker.shutdown_budget() + 10, "worker")
            worker.stop()
        else:
            logger.warning("{} received again: cancelling in-flight tasks", signame)
            worker.grace = 0
            worker.stop()
            for c in worker.consumers:
                for t in c.inflight.values():
                    t.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    install_stack_dumps()
    await worker.run()
    abandoned = sum(c.slots.stragglers for c in worker._firsts)
    if abandoned:  # daemon threads: the process exits without waiting for them
        logger.warning("exiting without {} sync handler threads that still run (their tasks "
                       "were given back)", abandoned)


