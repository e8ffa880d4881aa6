# Generated from ceylon_redis/client/_async/client.py by .ci/unasync.py: do not edit.
"""``Client``: the blocking producer, made of the producing, graph, inspecting,
dead-letter, schedule, limit and event parts."""

from __future__ import annotations

from typing import Any

from ...connection import sync_redis
from ...scripts import Scripts
from ...settings import Settings
from ...waiting import SyncWaiter
from .dead_letters import DeadLetters
from .events import Events
from .inspecting import Inspecting
from .limits import Limits
from .schedules import Schedules


class Client(Events, DeadLetters, Inspecting, Schedules, Limits):
    """The blocking producer, for scripts and web apps (Flask, Django)."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 settings: Settings | None = None, redis: Any = None) -> None:
        super().__init__(url, prefix, settings)
        self.redis = (redis if redis is not None
                      else sync_redis(self.settings.url, timeout=self.settings.socket_timeout))
        self._owns_redis = redis is None
        self.scripts = Scripts.register(self.redis, self.settings.events_maxlen)
        self._waiter = SyncWaiter(self.redis, self.parts, self.scripts.watch)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening for results and close the connections this client opened."""
        self._waiter.close()
        if self._owns_redis:
            self.redis.close()
