"""The Dramatiq broker and its no-op actor: ``dramatiq benchmarks.peers.dramatiq_tasks:setup``.

:func:`setup` builds the worker's broker from the env (Redis URL, handler kind), so
importing this module does nothing: the producer imports :func:`make_broker` from it.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO
from dramatiq.middleware.group_callbacks import GroupCallbacks
from dramatiq.rate_limits.backends import RedisBackend as RedisRateLimiterBackend
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

#: env names as in benchmarks.peers.base (not imported, to keep the worker's import small)
URL_ENV = "BENCH_REDIS_URL"
#: env var telling the worker which handler kind the actor is ("async" or "sync")
KIND_ENV = "BENCH_HANDLER_KIND"
QUEUE = "bench"
#: the one actor, the same name and options for either handler kind and the producer.
#: No retries: a failed task should show as a failed result, not retry for hours.
ACTOR_OPTIONS: dict[str, Any] = {"actor_name": "noop", "queue_name": QUEUE,
                                 "store_results": True, "max_retries": 0}


def noop_sync(value: int) -> int:
    """The ``def`` actor (run on a worker thread): return its input."""
    return value


async def noop_async(value: int) -> int:
    """The ``async def`` actor (run on the AsyncIO middleware's event loop): return its input."""
    return value


def make_broker(url: str) -> RedisBroker:
    """A Redis broker with the Results (Redis backend), GroupCallbacks and AsyncIO middleware."""
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    results = Results(backend=RedisBackend(client=broker.client))  # type: ignore[no-untyped-call]
    broker.add_middleware(results)
    broker.add_middleware(GroupCallbacks(RedisRateLimiterBackend(client=broker.client)))
    broker.add_middleware(AsyncIO())
    return broker


def setup() -> None:
    """The worker's broker (as the global one) with the actor of the env's handler kind."""
    broker = make_broker(os.environ[URL_ENV])
    dramatiq.set_broker(broker)
    fn = noop_async if os.environ.get(KIND_ENV) == "async" else noop_sync
    dramatiq.actor(broker=broker, **ACTOR_OPTIONS)(fn)
