"""``ceylon-redis metrics``: serve the Prometheus metrics of a namespace (or print them once)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from loguru import logger
from prometheus_client import generate_latest

from ..metrics import DEFAULT_PORT, CeylonCollector, registry_for
from ..settings import Settings
from .common import connection_options, friendly_errors, serve_or_exit


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT,
              show_default=True, envvar="CEYLON_REDIS_METRICS_PORT",
              help="Port to serve /metrics on (0: any free one) [env CEYLON_REDIS_METRICS_PORT].")
@click.option("--host", default="0.0.0.0", show_default=True, envvar="CEYLON_REDIS_METRICS_HOST",
              help="Address to bind [env CEYLON_REDIS_METRICS_HOST].")
@click.option("--once", is_flag=True, help="Print the metrics (text format) and exit.")
@connection_options
@friendly_errors
def metrics(port: int, host: str, once: bool, url: str | None, prefix: str | None) -> None:
    """Serve Prometheus metrics of the namespace over HTTP until SIGTERM or SIGINT.

    Queue depths, dead letters, live workers, completed/failed/cancelled/retried
    counters and wait and run time histograms per role, read from Redis at each scrape.
    """
    settings = Settings.from_env(url=url, prefix=prefix)
    if once:
        collector = CeylonCollector(settings=settings, raise_errors=True)
        try:
            click.echo(generate_latest(registry_for(collector)).decode(), nl=False)
        finally:
            collector.close()
        return
    server = serve_or_exit(settings, port, host)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    while not stopping.wait(1.0):
        pass
    server.stop()
    logger.info("metrics server stopped")
