"""The SAQ worker's settings: ``saq benchmarks.peers.saq_tasks.async_settings`` (or ``sync_``).

Imported by the worker process only; the settings are callables, so the Redis URL and the
concurrency are read from the env when the worker starts, not at import.
"""

from __future__ import annotations

import os
from typing import Any

from saq import Queue
from saq.types import SettingsDict

#: env names as in benchmarks.peers.base (not imported, to keep the worker's import small)
URL_ENV = "BENCH_REDIS_URL"
CONCURRENCY_ENV = "BENCH_CONCURRENCY"
#: the task name both kinds of worker register their handler under
TASK = "noop"


async def noop_async(ctx: dict[str, Any], *, value: int) -> int:
    """The async no-op task: return its input (SAQ passes the job's kwargs after ``ctx``)."""
    return value


def noop_sync(ctx: dict[str, Any], *, value: int) -> int:
    """The sync no-op task, run by SAQ in its worker's thread pool."""
    return value


def _settings(handler: Any) -> SettingsDict[Any]:
    return {
        "queue": Queue.from_url(os.environ[URL_ENV]),
        "functions": [(TASK, handler)],
        "concurrency": int(os.environ.get(CONCURRENCY_ENV, "10")),
    }


def async_settings() -> SettingsDict[Any]:
    """Settings of a worker running the ``async def`` handler."""
    return _settings(noop_async)


def sync_settings() -> SettingsDict[Any]:
    """Settings of a worker running the plain ``def`` handler."""
    return _settings(noop_sync)
