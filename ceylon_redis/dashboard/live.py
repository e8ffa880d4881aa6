"""What keeps the dashboard's Redis cost bounded however many tabs are open: one cached
read per view and query per ``ttl``, shared by every request, and one tail of the
lifecycle stream fanned out to every live page."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from loguru import logger

from ..client import AsyncClient
from ..models import TaskEvent

QUEUE_SIZE = 2_000
"""Events held for one slow page; past it the page is told to reload its view instead."""


class SharedCache:
    """A value per key, made at most once per ``ttl`` seconds, concurrent asks sharing one
    making (in a task of its own: a caller that goes away cancels nobody else's wait)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[str, tuple[float, Any]] = {}
        self._making: dict[str, asyncio.Task[Any]] = {}
        self._generation = 0
        self.made = 0

    def clear(self) -> None:
        """Forget every value, and any read under way: the next look reads Redis (after an
        action, whose effect a read begun before it would miss)."""
        self._values.clear()
        self._making.clear()
        self._generation += 1

    async def get(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._values.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        task = self._making.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make(key, make, self._generation))
            self._making[key] = task
        return await asyncio.shield(task)

    async def _make(self, key: str, make: Callable[[], Awaitable[Any]], generation: int) -> Any:
        try:
            value = await make()
        finally:
            if generation == self._generation:
                self._making.pop(key, None)
        if generation == self._generation:
            self.made += 1
            self._values[key] = (time.monotonic(), value)
            if len(self._values) > 1_000:  # many distinct queries: forget the oldest
                for old in sorted(self._values, key=lambda k: self._values[k][0])[:500]:
                    del self._values[old]
        return value


class EventHub:
    """One reader of the lifecycle stream while any page listens; each listener gets
    every event in a queue of its own (None when it fell behind and should reload)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._queues: set[asyncio.Queue[TaskEvent | None]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[TaskEvent | None]]:
        queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._tail(), name="dashboard-events")
        try:
            yield queue
        finally:
            self._queues.discard(queue)
            tail = self._task
            if not self._queues and tail is not None:
                tail.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await tail
                if self._task is tail:
                    self._task = None
                if self._queues and (self._task is None or self._task.done()):
                    # a page came while the tail stopped: it needs one
                    self._task = asyncio.create_task(self._tail(), name="dashboard-events")

    async def _tail(self) -> None:
        since = "$"
        while self._queues:
            try:
                async for event in self.client.events(since=since, follow=True):
                    since = event.id
                    for q in list(self._queues):
                        try:
                            q.put_nowait(event)
                        except asyncio.QueueFull:
                            q.get_nowait()
                            q.put_nowait(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the pages poll meanwhile
                logger.warning("dashboard: reading the lifecycle stream failed ({}); "
                               "again in 2 s", exc)
                await asyncio.sleep(2)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
