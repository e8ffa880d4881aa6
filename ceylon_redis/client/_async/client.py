"""``AsyncClient``: the asyncio producer, made of the producing, graph, inspecting,
dead-letter, schedule, limit and event parts."""

from __future__ import annotations

from typing import Any

from ...connection import async_redis
from ...scripts import Scripts
from ...settings import Settings
from ...waiting import AsyncWaiter
from .dead_letters import AsyncDeadLetters
from .events import AsyncEvents
from .inspecting import AsyncInspecting
from .limits import AsyncLimits
from .schedules import AsyncSchedules


class AsyncClient(AsyncEvents, AsyncDeadLetters, AsyncInspecting, AsyncSchedules, AsyncLimits):
    """The asyncio producer: enqueue, wait, inspect."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 settings: Settings | None = None, redis: Any = None) -> None:
        super().__init__(url, prefix, settings)
        self.redis = (redis if redis is not None
                      else async_redis(self.settings.url, timeout=self.settings.socket_timeout))
        self._owns_redis = redis is None
        self.scripts = Scripts.register(self.redis, self.settings.events_maxlen)
        self._waiter = AsyncWaiter(self.redis, self.parts, self.scripts.watch)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening for results and close the connections this client opened."""
        await self._waiter.close()
        if self._owns_redis:
            await self.redis.aclose()
