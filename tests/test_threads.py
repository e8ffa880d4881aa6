"""The sync handlers' thread pool: calls run, fail, cancel and spread as the worker needs."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from ceylon_redis.threads import ThreadRunner

_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ceylon-redis-sync")]


async def test_calls_return_raise_and_see_the_callers_context() -> None:
    runner = ThreadRunner(asyncio.get_running_loop(), 4)
    _who.set("caller")

    def fail(_: object) -> None:
        raise ValueError("bad input")

    try:
        outcomes = [runner.submit(lambda x: (x * 2, _who.get()), i)[1] for i in range(50)]
        assert await asyncio.gather(*outcomes) == [(i * 2, "caller") for i in range(50)]
        with pytest.raises(ValueError, match="bad input"):
            await runner.submit(fail, None)[1]
    finally:
        runner.shutdown()


async def test_calls_that_block_spread_over_every_thread() -> None:
    # Four calls that only return once all four run at once: one thread short, they hang.
    before = set(_pool_threads())
    runner = ThreadRunner(asyncio.get_running_loop(), 4)
    barrier = threading.Barrier(4, timeout=5)
    try:
        for _ in range(3):  # the first round starts the threads, the others wake them idle
            outcomes = [runner.submit(lambda _: barrier.wait(), None)[1] for _ in range(4)]
            assert sorted(await asyncio.gather(*outcomes)) == [0, 1, 2, 3]
            await asyncio.sleep(0.05)
        assert len(set(_pool_threads()) - before) <= 4
    finally:
        runner.shutdown()


async def test_a_cancelled_call_that_no_thread_took_never_runs() -> None:
    runner = ThreadRunner(asyncio.get_running_loop(), 1)
    gate, ran = threading.Event(), []
    try:
        first, first_out = runner.submit(lambda _: gate.wait(5), None)
        second, second_out = runner.submit(ran.append, "second")
        second_out.cancel()
        await asyncio.sleep(0)
        assert second.done() and not first.done()
        gate.set()
        assert await first_out is True
        await runner.submit(ran.append, "third")[1]
        assert ran == ["third"]
    finally:
        runner.shutdown()


async def test_on_done_fires_when_the_thread_returns_or_at_once_after() -> None:
    runner = ThreadRunner(asyncio.get_running_loop(), 2)
    gate, seen = threading.Event(), []
    try:
        call, outcome = runner.submit(lambda _: gate.wait(5), None)
        runner.on_done(call, lambda c: seen.append(("later", c.done())))
        assert seen == []
        gate.set()
        await outcome
        runner.on_done(call, lambda c: seen.append(("now", c.done())))
        assert seen == [("later", True), ("now", True)]
    finally:
        runner.shutdown()


async def test_shutdown_drops_queued_calls_and_ends_idle_threads() -> None:
    before = set(_pool_threads())  # other tests' pools may still be winding down
    runner = ThreadRunner(asyncio.get_running_loop(), 1)
    gate, ran = threading.Event(), []
    running, _ = runner.submit(lambda _: gate.wait(5), None)
    queued, _ = runner.submit(ran.append, "queued")
    runner.shutdown()
    assert queued.done() and not running.done()
    gate.set()
    deadline = time.monotonic() + 5
    while set(_pool_threads()) - before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not set(_pool_threads()) - before and ran == []
    with pytest.raises(RuntimeError, match="shut down"):
        runner.submit(ran.append, "late")
