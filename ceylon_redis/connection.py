"""Opening Redis connections from a URL, and the embedded in-process Redis."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from loguru import logger

from .settings import redact_url

_embedded_server: Any = None


OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
"""Redis unreachable, restarting or loading its data: daemons wait and retry."""


def is_outage(exc: BaseException) -> bool:
    """True for OUTAGE_ERRORS and for BUSY (Redis is running a long script): both pass."""
    return isinstance(exc, OUTAGE_ERRORS) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith("BUSY "))


MAX_CONNECTIONS = 100
"""Connections one client opens at most; further commands wait for a free one, never fail."""


def async_redis(url: str, **kwargs: Any) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (``embedded://`` for the in-process one)."""
    if url.startswith("embedded://"):
        import fakeredis

        return fakeredis.FakeAsyncRedis(
            server=embedded_server(), connection_pool_class=aioredis.BlockingConnectionPool,
            max_connections=MAX_CONNECTIONS, **kwargs)
    kwargs.setdefault("health_check_interval", 30)
    kwargs.setdefault("socket_keepalive", True)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=None, **kwargs)
    return aioredis.Redis.from_pool(pool)


def sync_redis(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking Redis client for ``url`` (``embedded://`` for the in-process one)."""
    if url.startswith("embedded://"):
        import fakeredis

        return fakeredis.FakeRedis(
            server=embedded_server(), connection_pool_class=redis.BlockingConnectionPool,
            max_connections=MAX_CONNECTIONS, **kwargs)
    kwargs.setdefault("health_check_interval", 30)
    kwargs.setdefault("socket_keepalive", True)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=None, **kwargs)
    return redis.Redis.from_pool(pool)


def embedded_server() -> Any:
    """The one in-process Redis (fakeredis) of this process, shared by every client of it."""
    global _embedded_server
    if _embedded_server is None:
        import fakeredis

        _embedded_server = fakeredis.FakeServer()
    return _embedded_server


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    if url.startswith("embedded://"):
        return True
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def resolve_url(url: str | None, *, allow_embedded: bool) -> str:
    """The URL to use: the one given, else the environment's, else localhost, else embedded.

    Falls back to the embedded Redis only when no URL was given anywhere and
    nothing answers on localhost, and says so in one log line.
    """
    from .settings import DEFAULT_URL, url_from_env

    chosen = url or url_from_env()
    if chosen:
        return chosen
    if not allow_embedded or redis_answers(DEFAULT_URL):
        return DEFAULT_URL
    logger.warning("no Redis at {}; running on an embedded in-process Redis (fakeredis)",
                   redact_url(DEFAULT_URL))
    return "embedded://"
