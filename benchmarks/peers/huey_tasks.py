"""Huey's app and its one task: ``huey_consumer benchmarks.peers.huey_tasks.huey``.

Imported by the producer and by the consumer process; reads the Redis URL from the env.
"""

from __future__ import annotations

import os

from huey import RedisHuey

#: env name as in benchmarks.peers.base (not imported, to keep the consumer's import small)
URL_ENV = "BENCH_REDIS_URL"

huey = RedisHuey("bench", url=os.environ.get(URL_ENV, "redis://localhost:6379/0"))


@huey.task()
def noop(value: int) -> int:
    """The no-op task: return its input."""
    return value
