"""Retries with backoff, delayed tasks, time limits, cancelling running tasks, dead letters.

Workers run in-process on fakeredis; the daemons' versions are in test_reliability_daemons.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import pytest

from ceylon_redis import (
    AsyncClient,
    Coordinator,
    ProcessRequest,
    ProcessWorker,
    Retry,
    Settings,
    TaskDef,
    TaskStatus,
    ValidationError,
    Worker,
    current_task,
)


def settings_for(prefix: str, **changes: Any) -> Settings:
    changes.setdefault("retry_backoff", 0.05)
    return Settings(prefix=prefix, block_ms=50, schedule_poll=0.05, **changes)


@pytest.fixture
async def client(fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(redis=fake_async, settings=settings_for(prefix))
    yield c
    await c.close()


@pytest.fixture
def run_worker(fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def run(handler: Any, role: str | None = "role", **options: Any) -> AsyncIterator[Worker]:
        settings = settings_for(prefix, **options.pop("settings", {}))
        worker = Worker(handler, role=role, redis_client=fake_async, settings=settings, **options)
        task = asyncio.create_task(worker.run())
        await worker.ready.wait()
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)

    return run


class Clock:
    """When each attempt of each task started."""

    def __init__(self) -> None:
        self.starts: dict[Any, list[float]] = {}

    def mark(self, key: Any) -> int:
        self.starts.setdefault(key, []).append(time.monotonic())
        return len(self.starts[key])

    async def handler(self, data: Any) -> None:
        self.mark(data)

    def first(self, key: Any) -> float:
        return self.starts[key][0]

    def gaps(self, key: Any) -> list[float]:
        s = self.starts[key]
        return [b - a for a, b in itertools.pairwise(s)]


# --- retries -------------------------------------------------------------------------------


async def test_failed_attempts_are_retried_after_a_growing_backoff(
        client: AsyncClient, run_worker: Any) -> None:
    clock = Clock()
    seen: list[TaskStatus] = []

    async def flaky(data: Any) -> int:
        if clock.mark(data) < 3:
            raise RuntimeError("not yet")
        return current_task().attempt

    tid = await client.enqueue("role", "x", max_attempts=3, backoff=0.3)
    async with run_worker(flaky):
        while len(clock.starts.get("x", [])) < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        seen.append((await client.get(tid)).status)
        queues = await client.queues()
        result = await client.wait(tid, timeout=5)
    assert (result.success, result.output) == (True, 3)
    assert seen == [TaskStatus.SCHEDULED]
    assert queues[0].scheduled == 1
    first, second = clock.gaps("x")
    # jitter 0.5: the first wait is 0.15-0.3 s, the second 0.3-0.6 s (plus polling)
    assert 0.14 <= first <= 0.3 + 0.3
    assert 0.29 <= second <= 0.6 + 0.3
    assert not await client.dead_letters()


async def test_a_task_out_of_attempts_is_dead_lettered_with_its_last_error(
        client: AsyncClient, run_worker: Any) -> None:
    async def broken(data: Any) -> None:
        raise ValueError(f"bad input on attempt {current_task().attempt}")

    tid = await client.enqueue("role", 1, max_attempts=2, name="the broken one")
    async with run_worker(broken):
        result = await client.wait(tid, timeout=5)
    assert result.status is TaskStatus.FAILED
    (dead,) = await client.dead_letters()
    assert (dead.task_id, dead.role, dead.name, dead.attempts) == (tid, "role", "the broken one", 2)
    assert dead.reason == "out of attempts (2 of 2)"
    assert "bad input on attempt 2" in dead.error
    assert (await client.dead_letter(tid)).id == dead.id == (await client.get(tid)).dead_letter


async def test_a_handler_can_ask_for_a_retry_with_its_own_delay(
        client: AsyncClient, run_worker: Any) -> None:
    clock = Clock()

    async def polite(data: Any) -> str:
        if clock.mark(data) == 1:
            raise Retry("rate limited", delay=0.4)
        return "done"

    async with run_worker(polite):
        result = await client.wait(await client.enqueue("role", "r", max_attempts=2), timeout=5)
        limited = await client.enqueue("role", "never", max_attempts=1)
        failed = await client.wait(limited, timeout=5)
    assert result.output == "done"
    assert clock.gaps("r")[0] >= 0.39
    assert failed.status is TaskStatus.FAILED and "Retry: rate limited" in (failed.error or "")
    assert (await client.dead_letter(limited)).reason == "out of attempts (1 of 1)"


async def test_a_processors_false_result_is_an_outcome_not_retried_nor_dead_lettered(
        client: AsyncClient, run_worker: Any) -> None:
    calls = 0

    class Refuser(ProcessWorker):
        async def _processor(self, request: ProcessRequest, time: int) -> Any:
            nonlocal calls
            calls += 1
            return False, {"why": "no"}

    async with run_worker(Refuser("r", "refuse"), role=None):
        tid = await client.enqueue("refuse", {"data": 1}, max_attempts=3)
        result = await client.wait(tid, timeout=5)
    assert (result.success, result.output, calls) == (False, {"why": "no"}, 1)
    assert await client.dead_letters() == []


def test_retry_rejects_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="Retry delay"):
        Retry(delay=-1)


# --- delayed tasks -------------------------------------------------------------------------


async def test_delayed_and_at_tasks_wait_for_their_time(
        client: AsyncClient, run_worker: Any) -> None:
    clock = Clock()

    began = time.monotonic()
    later = await client.enqueue("role", "later", delay=0.5)
    at = await client.enqueue("role", "at", at=dt.datetime.now(dt.timezone.utc)
                              + dt.timedelta(seconds=0.3))
    now = await client.enqueue("role", "now")
    assert (await client.get(later)).status is TaskStatus.SCHEDULED
    assert (await client.get(later)).due_at is not None
    async with run_worker(clock.handler):
        await client.wait_many([later, at, now], timeout=5)
    assert clock.first("now") - began < 0.3
    assert clock.first("at") - began >= 0.25
    assert clock.first("later") - began >= 0.45


async def test_a_delayed_dependent_waits_for_both_its_prerequisite_and_its_time(
        client: AsyncClient, run_worker: Any) -> None:
    clock = Clock()

    began = time.monotonic()
    first = await client.enqueue("role", "first")
    second = await client.enqueue("role", "second", depends_on=[first], delay=0.4)
    assert (await client.get(second)).status is TaskStatus.WAITING
    async with run_worker(clock.handler):
        await client.wait(second, timeout=5)
    assert clock.first("second") - began >= 0.39
    assert clock.first("first") < clock.first("second")


async def test_the_coordinator_alone_promotes_due_tasks(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    tid = await client.enqueue("role", 1, delay=0.1)
    coordinator = Coordinator(settings=settings_for(prefix), redis_client=fake_async)
    running = asyncio.create_task(coordinator.run())
    try:
        for _ in range(100):
            if (await client.get(tid)).status is TaskStatus.QUEUED:
                break
            await asyncio.sleep(0.02)
        assert (await client.get(tid)).status is TaskStatus.QUEUED
    finally:
        coordinator.stop()
        await asyncio.wait_for(running, 5)


@pytest.mark.parametrize(("options", "message"), [
    ({"delay": -1}, "delay must be at least 0"),
    ({"delay": "soon"}, "delay must be a number"),
    ({"at": dt.datetime(2030, 1, 1)}, "no time zone"),
    ({"delay": 1, "at": 5.0}, "not both"),
    ({"timeout": 0}, "timeout must be positive"),
    ({"backoff": -0.5}, "backoff must be at least 0"),
    ({"max_attempts": 0}, "max_attempts"),
])
async def test_bad_scheduling_options_are_refused_and_nothing_is_written(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis, options: dict[str, Any],
        message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        await client.enqueue("role", 1, **options)
    assert await fake_async.keys("*") == []


# --- time limits ---------------------------------------------------------------------------


async def test_an_async_handler_past_its_time_limit_is_cancelled_and_retried(
        client: AsyncClient, run_worker: Any) -> None:
    cancelled: list[int] = []

    async def slow(data: Any) -> str:
        attempt = current_task().attempt
        if attempt == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(attempt)
                raise
        return "quick the second time"

    tid = await client.enqueue("role", None, timeout=0.2, max_attempts=2)
    async with run_worker(slow):
        result = await client.wait(tid, timeout=5)
    assert result.output == "quick the second time" and cancelled == [1]


async def test_a_sync_handler_past_its_time_limit_fails_but_keeps_its_slot(
        client: AsyncClient, run_worker: Any) -> None:
    release = threading.Event()
    started: list[Any] = []

    def stuck(data: Any) -> str:
        started.append(data)
        if data == "stuck":
            release.wait(10)
        return "ok"

    async with run_worker(stuck, concurrency=1, settings={"task_timeout": 0.2}) as worker:
        first = await client.enqueue("role", "stuck")
        result = await client.wait(first, timeout=5)
        assert result.status is TaskStatus.FAILED and "TaskTimeout" in (result.error or "")
        second = await client.enqueue("role", "next")
        await asyncio.sleep(0.3)
        assert started == ["stuck"]               # the one slot is still the stuck thread's
        assert worker.consumers[0].slots.stragglers == 1
        release.set()
        assert (await client.wait(second, timeout=5)).output == "ok"


# --- cancelling a running task -------------------------------------------------------------


async def test_cancel_interrupts_a_running_async_handler_and_its_dependents(
        client: AsyncClient, run_worker: Any) -> None:
    running, interrupted = asyncio.Event(), asyncio.Event()

    async def long(data: Any) -> str:
        if data == "long":
            running.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                interrupted.set()
                raise
        return data

    tid = await client.enqueue("role", "long")
    child = await client.enqueue("role", "child", depends_on=[tid])
    async with run_worker(long) as worker:
        await asyncio.wait_for(running.wait(), 5)
        assert await client.cancel(tid, "user changed their mind") is True
        await asyncio.wait_for(interrupted.wait(), 5)
        assert (await client.wait(await client.enqueue("role", "after"), timeout=5)).success
        consumer = worker.consumers[0]
        assert consumer.inflight == {} and consumer.slots.failed == 0
    info = await client.get(tid)
    assert (info.status, info.error) == (TaskStatus.CANCELLED, "user changed their mind")
    assert (await client.get(child)).status is TaskStatus.CANCELLED
    assert await client.dead_letters() == []


async def test_a_missed_cancel_message_is_caught_by_the_heartbeat(
        client: AsyncClient, run_worker: Any, fake_async: fakeredis.FakeAsyncRedis) -> None:
    running, interrupted = asyncio.Event(), asyncio.Event()

    async def long(data: Any) -> None:
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise

    tid = await client.enqueue("role", None)
    async with run_worker(long, settings={"heartbeat_interval": 0.1, "worker_timeout": 5}):
        await asyncio.wait_for(running.wait(), 5)
        # as if the cancel were published while the worker's subscription was down
        await fake_async.hset(client.keys.task(tid), "status", "CANCELLED")
        await asyncio.wait_for(interrupted.wait(), 5)


async def test_an_outcome_awaiting_its_recording_is_not_taken_back_as_an_orphan(
        client: AsyncClient, run_worker: Any, fake_async: fakeredis.FakeAsyncRedis) -> None:
    """A finish held up past worker_timeout (Redis slow or briefly away) while the worker
    heartbeats: the heartbeat must not give the entry back, or the task would run twice
    and its first result be refused."""
    runs = 0

    async def quick(data: Any) -> Any:
        nonlocal runs
        runs += 1
        return data

    async with run_worker(quick, settings={"heartbeat_interval": 0.05,
                                           "worker_timeout": 0.2}) as worker:
        record = worker._recorder.record

        async def held_up(batch: Any) -> None:
            await asyncio.sleep(1.0)  # five worker timeouts, twenty heartbeats
            await record(batch)

        worker._recorder.record = held_up  # type: ignore[method-assign]
        result = await client.wait(await client.enqueue("role", 7), timeout=5)
    assert (result.output, runs) == (7, 1)
    assert await fake_async.hget(client.keys.base + "counters", "fenced") is None


# --- dead letters --------------------------------------------------------------------------


async def test_retry_dead_gives_a_fresh_budget_and_removes_the_letter(
        client: AsyncClient, run_worker: Any) -> None:
    healed = False

    async def until_healed(data: Any) -> str:
        if not healed:
            raise RuntimeError("still broken")
        return f"ok on attempt {current_task().attempt}"

    async with run_worker(until_healed):
        ids = [await client.enqueue("role", i, max_attempts=2) for i in range(3)]
        await client.wait_many(ids, timeout=5)
        assert len(await client.dead_letters()) == 3
        healed = True
        report = await client.retry_dead([ids[0], "no-such-task"])
        assert report.retried == 1
        assert report.skipped == {"no-such-task": "unknown task (never enqueued, or its "
                                                  "result expired)"}
        assert (await client.wait(ids[0], timeout=5)).output == "ok on attempt 1"
        assert {d.task_id for d in await client.dead_letters()} == set(ids[1:])
        assert (await client.retry_dead()).retried == 2
        assert [r.success for r in await client.wait_many(ids, timeout=5)] == [True] * 3
    assert await client.dead_letters() == []
    assert (await client.retry_dead([ids[0]])).skipped == {
        ids[0]: "not dead-lettered (status COMPLETED)"}


async def test_retry_dead_of_a_graph_task_reruns_what_its_failure_cancelled(
        client: AsyncClient, run_worker: Any) -> None:
    healed = False

    async def step(data: Any) -> str:
        if data == "flaky" and not healed:
            raise RuntimeError("down")
        return data

    graph = await client.enqueue_graph([TaskDef("role", "flaky", id="a"),
                                        TaskDef("role", "after", id="b", depends_on=["a"])])
    async with run_worker(step):
        await graph.wait(timeout=5)
        assert (await client.get("b")).status is TaskStatus.CANCELLED
        healed = True
        assert (await client.retry_dead(["a"])).retried == 2
        assert [r.output for r in await client.wait_many(["a", "b"], timeout=5)] == [
            "flaky", "after"]
    assert await client.dead_letters() == []


async def test_a_garbage_stream_entry_is_dead_lettered_and_the_worker_carries_on(
        client: AsyncClient, run_worker: Any, fake_async: fakeredis.FakeAsyncRedis) -> None:
    async def echo(data: Any) -> Any:
        return data

    async with run_worker(echo):
        await fake_async.xadd(client.keys.stream("role"), {"garbage": "\x00\xff"})
        await fake_async.xadd(client.keys.stream("role"), {"id": "never-enqueued"})
        assert (await client.wait(await client.enqueue("role", 7), timeout=5)).output == 7
    reasons = sorted(d.reason for d in await client.dead_letters())
    assert reasons == ["entry names unknown task never-enqueued", "malformed entry: no id field"]
    report = await client.retry_dead()
    assert report.retried == 0 and len(report.skipped) == 2
    assert await client.purge_dead() == 2
    assert await client.dead_letters() == []
