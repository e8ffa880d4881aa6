"""What every ``ceylon-redis`` command shares: the connection options, one error line
instead of a traceback, JSON output, and the /metrics server's start."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis

from ..codec import jsonable
from ..errors import CeylonRedisError, RedisConnectionError, RedisTimeoutError, did_you_mean
from ..metrics import MetricsServer, serve
from ..settings import Settings, redact_url

F = TypeVar("F", bound=Callable[..., Any])


priority_option = click.option(
    "--priority", type=click.IntRange(0, 9), default=None,
    help="0 (last) to 9 (first), default 5: a worker takes the highest waiting first.")


def connection_options(func: F) -> F:
    """--url and --prefix, each with its environment variable."""
    func = click.option("--prefix", envvar="CEYLON_REDIS_PREFIX", default=None,
                        help="Key namespace [env CEYLON_REDIS_PREFIX; default ceylon].")(func)
    func = click.option("--url", envvar=["CEYLON_REDIS_URL", "REDIS_URL"], default=None,
                        help="Redis URL [env CEYLON_REDIS_URL, REDIS_URL; "
                             "default redis://localhost:6379/0].")(func)
    return func


def friendly_errors(func: F) -> F:
    """Turn errors into one readable line and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.AuthenticationError as exc:  # a ConnectionError: before that one
            url = kwargs.get("url") or Settings.from_env().url
            click.echo(f"error: Redis at {redact_url(url)} refused the credentials: {exc}",
                       err=True)
            sys.exit(1)
        except (RedisConnectionError, RedisTimeoutError) as exc:  # these name the URL
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            url = kwargs.get("url") or Settings.from_env().url
            click.echo(f"error: cannot reach Redis at {redact_url(url)}: {exc}", err=True)
            sys.exit(1)
        except (CeylonRedisError, redis.RedisError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except ValueError as exc:  # redis-py's word on a malformed URL
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 task``, ``2 tasks``: a count and its noun, agreeing."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def unknown_role(role: str, known: list[str]) -> click.UsageError:
    """The usage error for a role this namespace has never seen, naming the closest one."""
    return click.UsageError(f"no role {role!r} in this namespace"
                            f"{did_you_mean(role, known)}; roles: "
                            f"{', '.join(known) if known else 'none yet'}")


def dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(jsonable(value), indent=indent)


def emit(as_json: bool, data: Callable[[], Any], text: Callable[[], str]) -> None:
    click.echo(dumps(data(), indent=2) if as_json else text())


def serve_or_exit(settings: Settings, port: int, host: str) -> MetricsServer:
    """Start the /metrics server, or print one error line and exit 1 (port taken, ...)."""
    try:
        return serve(settings, port=port, host=host)
    except OSError as exc:
        click.echo(f"error: cannot serve metrics on {host}:{port}: {exc}", err=True)
        sys.exit(1)
