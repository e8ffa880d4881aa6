"""The long-running commands: ``worker``, ``coordinator`` and ``demo``."""

from __future__ import annotations

import asyncio
import sys

import click

from ..settings import Settings
from .common import connection_options, friendly_errors, serve_or_exit


@click.command()
@click.argument("target")
@click.option("--role", "-r", envvar="CEYLON_REDIS_ROLE", default=None,
              help="Role to consume (needed for plain functions) [env CEYLON_REDIS_ROLE].")
@click.option("--concurrency", "-c", type=click.IntRange(1, 10000), default=None,
              envvar="CEYLON_REDIS_CONCURRENCY",
              help="Tasks run at once per handler [env CEYLON_REDIS_CONCURRENCY; default 10 "
                   "for a function, 1 for a ProcessWorker].")
@click.option("--prefetch", type=click.IntRange(0, 100000), default=None,
              envvar="CEYLON_REDIS_PREFETCH",
              help="Tasks taken beyond --concurrency, started as slots free [env "
                   "CEYLON_REDIS_PREFETCH; default: as many as --concurrency for a sync "
                   "function, 0 otherwise; 0 for long tasks].")
@click.option("--grace", type=click.FloatRange(0), default=30.0, show_default=True,
              envvar="CEYLON_REDIS_GRACE", help="Seconds to finish in-flight tasks on SIGTERM.")
@click.option("--coordinator", "with_coordinator", is_flag=True,
              envvar="CEYLON_REDIS_COORDINATOR",
              help="Also run a coordinator (statistics) in this daemon.")
@click.option("--max-attempts", type=click.IntRange(1), default=None,
              help="Attempts of tasks enqueued without their own [env "
                   "CEYLON_REDIS_MAX_ATTEMPTS; default 1].")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds an attempt of a task without its own limit may run [env "
                   "CEYLON_REDIS_TASK_TIMEOUT; default none].")
@connection_options
@friendly_errors
def worker(target: str, role: str | None, concurrency: int | None, prefetch: int | None,
           grace: float,
           with_coordinator: bool, max_attempts: int | None, time_limit: float | None,
           url: str | None, prefix: str | None) -> None:
    """Run handlers from TARGET (MODULE:OBJECT) until SIGTERM or SIGINT.

    OBJECT is an async or sync function taking the task's data, a
    ProcessWorker, or a list of them.
    """
    import os

    from ..handlers import load_object
    from ..worker import run_worker

    sys.path.insert(0, os.getcwd())
    handlers = load_object(target)
    asyncio.run(run_worker(handlers, role=role, concurrency=concurrency, prefetch=prefetch,
                           grace=grace,
                           coordinator=with_coordinator,
                           settings=Settings.from_env(url=url, prefix=prefix,
                                                      max_attempts=max_attempts,
                                                      task_timeout=time_limit)))


@click.command()
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              envvar="CEYLON_REDIS_METRICS_PORT",
              help="Also serve Prometheus /metrics on this port (0: any free one) "
                   "[env CEYLON_REDIS_METRICS_PORT].")
@connection_options
@friendly_errors
def coordinator(metrics_port: int | None, url: str | None, prefix: str | None) -> None:
    """Keep statistics from finished tasks until SIGTERM or SIGINT.

    Any number may run; each event is counted once, and a dead coordinator's
    events are taken over. Dependents are released without one.
    """
    from ..coordinator import run_coordinator

    settings = Settings.from_env(url=url, prefix=prefix)
    server = None
    if metrics_port is not None:
        server = serve_or_exit(settings, metrics_port, "0.0.0.0")
    try:
        asyncio.run(run_coordinator(settings=settings))
    finally:
        if server is not None:
            server.stop()


@click.command()
@click.option("--scale", type=click.FloatRange(0, 10), default=0.2, show_default=True,
              help="Multiply the example's sleeps by this.")
@click.option("--url", envvar=["CEYLON_REDIS_URL", "REDIS_URL"], default=None,
              help="Redis URL [env CEYLON_REDIS_URL, REDIS_URL; default: localhost if a Redis "
                   "answers there, else an embedded one (pip install "
                   "'ceylon-redis[embedded]')].")
@click.option("--prefix", default="ceylon-demo", show_default=True,
              help="Key namespace of the demo (not CEYLON_REDIS_PREFIX: never your own).")
@friendly_errors
def demo(scale: float, url: str | None, prefix: str) -> None:
    """Run the skill-level example of Ceylon's tutorial and print each result.

    On a real Redis, every key it leaves expires in a day.
    """
    from ..demo import run_demo

    ok = asyncio.run(run_demo(scale=scale, url=url, prefix=prefix))
    sys.exit(0 if ok else 1)
