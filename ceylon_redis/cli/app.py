"""The ``ceylon-redis`` group itself: its options and the logging they set up.

The commands are defined standalone in the other modules of this package and added
to the group by ``ceylon_redis/cli/__init__.py``.
"""

from __future__ import annotations

import sys

import click
from loguru import logger


def configure_logging(level: str, json_logs: bool = False) -> None:
    logger.remove()
    logger.enable("ceylon_redis")
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message}"
    logger.add(sys.stderr, level=level.upper(), format=fmt, serialize=json_logs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ceylon-redis")
@click.option("--log-level", envvar="CEYLON_REDIS_LOG_LEVEL", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Log level of daemons [env CEYLON_REDIS_LOG_LEVEL].")
@click.option("--log-json", is_flag=True, envvar="CEYLON_REDIS_LOG_JSON",
              help="Log one JSON object per line, for log shippers.")
def main(log_level: str, log_json: bool) -> None:
    """A Redis Streams job queue: workers, producers and inspection."""
    configure_logging(log_level, log_json)
