"""The Celery app and its no-op task: ``celery -A benchmarks.peers.celery_tasks worker``.

The worker reads the Redis URL and its concurrency from the env (``app`` is built on
first access, so the producer can import :func:`make_app` without that env).
"""

from __future__ import annotations

import functools
import os

from celery import Celery

#: env names as in benchmarks.peers.base (not imported, to keep the worker's import small)
URL_ENV = "BENCH_REDIS_URL"
CONCURRENCY_ENV = "BENCH_CONCURRENCY"
#: the one task name; Celery has no ``async def`` tasks, so there is one (sync) kind
TASK = "bench.noop"


def noop(value: int) -> int:
    """The no-op task: return its input."""
    return value


def make_app(url: str, concurrency: int | None = None) -> Celery:
    """A Celery app on ``url`` as broker and result backend, with ``noop`` registered."""
    app = Celery("bench", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        # JSON is Celery's default serializer (since 4.0); spelled out, as it is compared
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    if concurrency:
        app.conf.worker_concurrency = concurrency
    app.task(name=TASK)(noop)
    return app


@functools.cache
def _worker_app() -> Celery:
    return make_app(os.environ[URL_ENV], int(os.environ.get(CONCURRENCY_ENV, "0")) or None)


def __getattr__(name: str) -> Celery:
    """``app``, which the ``celery -A`` option looks up, built from the env on first use."""
    if name == "app":
        return _worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
