"""The arq worker's settings: ``arq benchmarks.peers.arq_tasks.WorkerSettings``.

Imported by the worker process only; reads the Redis URL and ``max_jobs`` from the env.
"""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings
from arq.worker import func

#: env names as in benchmarks.peers.base (not imported, to keep the worker's import small)
URL_ENV = "BENCH_REDIS_URL"
CONCURRENCY_ENV = "BENCH_CONCURRENCY"
#: the worker's queue poll interval, seconds. arq's default 0.5 makes every round trip
#: ~500 ms; drains were alike from 0.5 to 0.002. A round trip takes about one interval
#: (10.7 ms at 0.01, 4.4 ms at 0.002) while an idle worker burns ~2% of a core at 0.01,
#: 4% at 0.005 and 9% at 0.002: 0.005 is the middle ground.
POLL_DELAY = 0.005


async def noop(ctx: dict[str, Any], value: int) -> int:
    """The no-op task: return its input (arq handlers are coroutines taking ``ctx`` first)."""
    return value


#: the arq CLI's own log config, at WARNING: its default INFO logs two lines per job
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"arq": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["arq"], "level": "WARNING"}},
}


class WorkerSettings:
    """Read by ``arq``'s CLI: one ``noop`` function, ``max_jobs`` from the env."""

    functions = [func(noop, name="noop")]
    redis_settings = RedisSettings.from_dsn(os.environ[URL_ENV])
    max_jobs = int(os.environ.get(CONCURRENCY_ENV, "100"))
    poll_delay = POLL_DELAY
