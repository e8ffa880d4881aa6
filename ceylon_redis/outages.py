"""Which Redis errors are outages, and the error a producer raises instead of redis-py's.

Daemons wait out an outage and retry; producers raise RedisConnectionError or
RedisTimeoutError naming the (redacted) URL and the timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis

from .errors import RedisConnectionError, RedisTimeoutError
from .settings import redact_url

OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
"""Redis unreachable, restarting or loading its data: daemons wait and retry."""


def is_outage(exc: BaseException) -> bool:
    """True for OUTAGE_ERRORS and for BUSY (Redis is running a long script): both pass."""
    return isinstance(exc, OUTAGE_ERRORS) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith("BUSY "))


MAX_CONNECTIONS = 100
"""Connections one client opens at most; further commands wait for a free one (a producer
up to its socket_timeout, a daemon as long as it takes)."""


def explain_outage(exc: BaseException, url: str, timeout: float) -> Exception | None:
    """The error a producer raises instead of redis-py's ``exc``, naming the (redacted) URL
    and the timeout; None for errors left as they are (refused password, loading, ...)."""
    where = redact_url(url)
    if type(exc) is redis.TimeoutError:
        return RedisTimeoutError(f"Redis at {where} did not answer within {timeout:g} s ({exc})")
    if type(exc) is redis.ConnectionError:
        if "No connection available" in str(exc):
            return RedisConnectionError(
                f"no free connection to Redis at {where} within {timeout:g} s: all "
                f"{MAX_CONNECTIONS} are busy (is Redis answering slowly?)")
        return RedisConnectionError(f"cannot reach Redis at {where}: {exc}")
    return None


@contextlib.contextmanager
def explained_at(url: str, timeout: float | None) -> Iterator[None]:
    """Outage errors raised inside explained by explain_outage (none without a timeout)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        better = None if timeout is None else explain_outage(exc, url, timeout)
        if better is None:
            raise
        raise better from exc


def explained_for(client: Any) -> contextlib.AbstractContextManager[None]:
    """As explained_at, for a client's own URL and timeout (none yet while it is made)."""
    return explained_at(client.ceylon_url,
                         client.ceylon_timeout if client.ceylon_url else None)


def explanation_for(client: Any, exc: BaseException) -> Exception | None:
    """explain_outage for a client's own URL and timeout; None before it knows them."""
    return explain_outage(exc, client.ceylon_url, client.ceylon_timeout) \
        if client.ceylon_url else None
