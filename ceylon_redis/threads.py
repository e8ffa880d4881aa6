"""Sync handlers run on a pool of threads of our own, woken one at a time.

A submitted call waits in one queue. An idle thread is woken for it only when no
thread is spare (awake and between calls, so bound to look at the queue), and a
thread that takes a call wakes the next if calls remain: a batch of short calls
is run by one or two threads, with a wake-up or two where a
``ThreadPoolExecutor`` wakes a thread per call, while calls that take time still
spread over every thread within a few wake-ups. Outcomes reach the event loop in
batches, one loop wake-up for all the calls that finished since the last.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from loguru import logger

_QUEUED, _RUNNING, _DONE, _CANCELLED = range(4)


class Call:
    """One sync call on the pool; ``done()`` once its thread returned (or it never ran)."""

    __slots__ = ("arg", "callbacks", "context", "error", "func", "outcome", "state", "value")

    def __init__(self, func: Callable[[Any], Any], arg: Any,
                 outcome: asyncio.Future[Any]) -> None:
        self.func = func
        self.arg = arg
        self.context = contextvars.copy_context()
        self.outcome = outcome
        self.state = _QUEUED
        self.value: Any = None
        self.error: BaseException | None = None
        self.callbacks: list[Callable[[Call], object]] = []

    def done(self) -> bool:
        return self.state in (_DONE, _CANCELLED)


class ThreadRunner:
    """Up to ``max_workers`` threads running sync calls, awaited from one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int) -> None:
        self._loop = loop
        self._max = max_workers
        self._lock = threading.Lock()
        """Guards the bookkeeping below (never held while a thread is woken or runs a call)."""
        self._queue: deque[Call] = deque()
        self._threads = 0
        self._parked: list[threading.Lock] = []
        """Idle threads, each asleep on a lock of its own (released to wake it)."""
        self._spare = 0
        """Threads awake and not running a call: they will look at the queue."""
        self._stopped = False
        self._landed: list[Call] = []
        self._scheduled = False

    def submit(self, func: Callable[[Any], Any], arg: Any) -> tuple[Call, asyncio.Future[Any]]:
        """Run ``func(arg)`` on a thread, in a copy of the caller's context.

        Returns the call (it cannot be stopped once running) and an asyncio future for
        its outcome; cancelling the latter drops the call if no thread took it yet.
        """
        fut: asyncio.Future[Any] = self._loop.create_future()
        call = Call(func, arg, fut)
        fut.add_done_callback(lambda f: self._drop_if_cancelled(call, f))
        with self._lock:
            if self._stopped:
                raise RuntimeError("the thread pool is shut down")
            self._queue.append(call)
            wake = self._wake_one()
        if wake is not None:
            wake()
        return call, fut

    def on_done(self, call: Call, callback: Callable[[Call], object]) -> None:
        """Call ``callback(call)`` when its thread returns (now, if it has): from that thread."""
        with self._lock:
            if not call.done():
                call.callbacks.append(callback)
                return
        callback(call)

    def shutdown(self) -> None:
        """Drop the calls no thread took; idle threads end, running ones end after their call."""
        with self._lock:
            self._stopped = True
            for call in self._queue:
                call.state = _CANCELLED
            self._queue.clear()
            parked, self._parked = self._parked, []
            self._spare += len(parked)  # woken, as by _wake_one: each then ends
        for lock in parked:
            lock.release()

    def _wake_one(self) -> Callable[[], None] | None:
        """With the lock held and a call queued: what wakes a thread for it, if one is needed
        (none when a spare thread will find it); called after the lock is let go."""
        if self._spare:
            return None
        self._spare += 1
        if self._parked:
            return self._parked.pop().release
        if self._threads < self._max:
            self._threads += 1
            thread = threading.Thread(target=self._serve, daemon=True,
                                      name=f"ceylon-redis-sync-{self._threads}")
            return thread.start
        self._spare -= 1  # every thread is busy: the first to finish takes it
        return None

    def _serve(self) -> None:
        parking = threading.Lock()
        while True:
            with self._lock:
                if not self._queue:
                    if self._stopped:
                        self._threads -= 1
                        self._spare -= 1
                        return
                    parking.acquire()
                    self._parked.append(parking)
                    self._spare -= 1
                    call = None
                else:
                    call = self._queue.popleft()
                    call.state = _RUNNING
                    self._spare -= 1
                    wake = self._wake_one() if self._queue else None
            if call is None:
                parking.acquire()  # until submit or shutdown releases it
                parking.release()
                continue
            if wake is not None:
                wake()
            try:
                call.value = call.context.run(call.func, call.arg)
            except BaseException as exc:  # handed to the awaiting task, not raised here
                call.error = exc
            with self._lock:
                call.state = _DONE
                callbacks, call.callbacks = call.callbacks, []
                self._landed.append(call)
                schedule = not self._scheduled
                self._scheduled = True
                self._spare += 1
            for callback in callbacks:
                try:
                    callback(call)
                except Exception:  # the thread serves on whatever a callback does
                    logger.exception("a callback of a finished sync call failed")
            if schedule:
                try:
                    self._loop.call_soon_threadsafe(self._hand_over)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass

    def _hand_over(self) -> None:
        with self._lock:
            landed, self._landed = self._landed, []
            self._scheduled = False
        for call in landed:
            fut = call.outcome
            if fut.done():
                continue
            if call.error is not None:
                fut.set_exception(call.error)
            else:
                fut.set_result(call.value)
            call.error = None  # no cycle through the traceback

    def _drop_if_cancelled(self, call: Call, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled():
            return
        with self._lock:
            if call.state != _QUEUED:
                return
            self._queue.remove(call)
            call.state = _CANCELLED
