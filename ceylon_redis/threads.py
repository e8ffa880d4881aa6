"""Sync handlers run on a thread pool; their results reach the event loop in batches.

``asyncio.wrap_future`` wakes the loop once per finished call (a write to its
self-pipe each time); when many short sync tasks finish together, one wake-up
hands over all of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any


class ThreadRunner:
    """A thread pool whose calls are awaited through one batched hand-over per loop wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=max_workers,
                                           thread_name_prefix="ceylon-redis-sync")
        self._loop = loop
        self._lock = threading.Lock()
        self._landed: list[tuple[asyncio.Future[Any], Future[Any]]] = []
        self._scheduled = False

    def submit(self, func: Callable[[Any], Any], arg: Any,
               ) -> tuple[Future[Any], asyncio.Future[Any]]:
        """Run ``func(arg)`` on a thread, in a copy of the caller's context.

        Returns the thread's future (it cannot be stopped once running) and an
        asyncio future for its outcome; cancelling the latter cancels the call if
        it has not started yet.
        """
        thread = self.executor.submit(contextvars.copy_context().run, func, arg)
        fut: asyncio.Future[Any] = self._loop.create_future()
        fut.add_done_callback(partial(_cancel_if_cancelled, thread))
        thread.add_done_callback(partial(self._land, fut))
        return thread, fut

    def _land(self, fut: asyncio.Future[Any], thread: Future[Any]) -> None:
        with self._lock:
            self._landed.append((fut, thread))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._hand_over)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _hand_over(self) -> None:
        with self._lock:
            landed, self._landed = self._landed, []
            self._scheduled = False
        for fut, thread in landed:
            if fut.done():
                continue
            if thread.cancelled():
                fut.cancel()
                continue
            exc = thread.exception()
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(thread.result())

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _cancel_if_cancelled(thread: Future[Any], fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        thread.cancel()
