"""Opening Redis connections from a URL, and the embedded in-process Redis."""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.asyncio as aioredis
from loguru import logger

from .cluster import (
    AsyncCluster,
    Cluster,
    async_cluster_client,
    is_cluster_url,
    sync_cluster_client,
    wrap_execute,
)
from .errors import RedisConnectionError, ValidationError
from .lane import Lane
from .outages import MAX_CONNECTIONS, explained_at, explained_for, explanation_for
from .sentinel import SentinelTarget, is_sentinel_url
from .settings import redact_url

if TYPE_CHECKING:
    from .settings import Settings

_embedded_server: Any = None

EMBEDDED_EXTRA = "pip install 'ceylon-redis[embedded]'"
"""How to get the embedded Redis (fakeredis and lupa): an extra, not a dependency."""


class EmbeddedRedisWarning(UserWarning):
    """A playground given no URL found no Redis on localhost and runs on the embedded
    in-process Redis: no other process can reach it, and it keeps nothing after this one.
    Turn it into an error with ``warnings.simplefilter("error", EmbeddedRedisWarning)``."""


def embedded_installed() -> bool:
    """Whether the embedded Redis (fakeredis, the ``embedded`` extra) can be imported."""
    return importlib.util.find_spec("fakeredis") is not None


def _fakeredis() -> Any:
    """The fakeredis module, or a ValidationError saying how to install it."""
    try:
        import fakeredis
    except ImportError:
        raise ValidationError(f"embedded:// needs the embedded Redis, which is not installed: "
                              f"{EMBEDDED_EXTRA}") from None
    return fakeredis


class _Explaining:
    """What every explaining client shares: the URL and timeout its errors name, and its
    commands and pipelines raising explained errors (a mixin before the redis-py class)."""

    ceylon_url = ""
    ceylon_timeout = 0.0

    def explained(self) -> contextlib.AbstractContextManager[None]:
        """Outage errors raised inside (say, by a pub/sub subscription) explained."""
        return explained_for(self)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        with explained_for(self):
            return super().execute_command(*args, **options)  # type: ignore[misc]

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        return wrap_execute(super().pipeline(*args, **kwargs),  # type: ignore[misc]
                            lambda: explained_for(self))


class _AsyncExplaining(_Explaining):
    """_Explaining for asyncio clients (its pipeline wrapper serves both)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:  # not _explained(): a context manager per command costs on the hot path
            return await super(_Explaining, self).execute_command(  # type: ignore[misc]
                *args, **options)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            better = explanation_for(self, exc)
            if better is None:
                raise
            raise better from exc


class ExplainingRedis(_Explaining, redis.Redis):
    """A ``redis.Redis`` whose outage errors are RedisTimeoutError / RedisConnectionError."""


class AsyncExplainingRedis(_AsyncExplaining, aioredis.Redis):  # type: ignore[misc]
    """An asyncio ``Redis`` whose outage errors are RedisTimeoutError / RedisConnectionError.

    (The type: ignore is for a clash of two of redis-py's own command mixins.)
    """


class ExplainingCluster(_Explaining, Cluster):
    """A blocking cluster client whose outage errors are explained."""


class AsyncExplainingCluster(_AsyncExplaining, AsyncCluster):  # type: ignore[misc]
    """An asyncio cluster client whose outage errors are explained."""


class QuickBlockingPool(aioredis.BlockingConnectionPool):
    """A BlockingConnectionPool that hands out an idle connection at once when nobody waits
    for one, without its condition and timer: that costs about 10 us a command, a tenth of
    a one-at-a-time enqueue. Waiting for a free connection is redis-py's, unchanged."""

    _waiting = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._available_connections and not self._waiting:
            connection = self._available_connections.pop()
            self._in_use_connections.add(connection)
            try:
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
            return connection
        self._waiting += 1
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            self._waiting -= 1


def daemon_timeouts(settings: Settings) -> dict[str, float]:
    """Socket timeouts of a worker's or coordinator's connections: ``socket_timeout`` to
    connect, and that plus the blocking reads' ``block_ms`` for a reply."""
    return {"socket_connect_timeout": settings.socket_timeout,
            "socket_timeout": settings.socket_timeout + settings.block_ms / 1000}


def daemon_redis(settings: Settings) -> aioredis.Redis:
    """The asyncio client of a worker, coordinator or playground (see daemon_timeouts)."""
    return async_redis(settings.url, **daemon_timeouts(settings))


def _pool_options(timeout: float | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Connection pool options: ours, then the caller's, then ``timeout`` if given."""
    options: dict[str, Any] = {"health_check_interval": 30, "socket_keepalive": True, **kwargs}
    if timeout is not None:
        options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    return {**options, "max_connections": MAX_CONNECTIONS, "timeout": timeout}


def async_redis(url: str, *, timeout: float | None = None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (``embedded://`` for the in-process one).

    With ``timeout`` (a producer's ``socket_timeout``), connecting, each reply and a free
    pooled connection are each waited for at most that long, and outages raise
    RedisTimeoutError / RedisConnectionError naming the URL. Without, only ``kwargs`` limit.
    """
    if url.startswith("embedded://"):
        return cast(aioredis.Redis, _fakeredis().FakeAsyncRedis(
            server=embedded_server(), connection_pool_class=aioredis.BlockingConnectionPool,
            max_connections=MAX_CONNECTIONS, **kwargs))
    options = _pool_options(timeout, kwargs)
    client: Any
    client_class = aioredis.Redis if timeout is None else AsyncExplainingRedis
    if is_cluster_url(url):
        client = async_cluster_client(
            url, AsyncCluster if timeout is None else AsyncExplainingCluster, **options)
    elif is_sentinel_url(url):
        client = SentinelTarget.parse(url).async_client(client_class, **options)
    else:
        pool = QuickBlockingPool.from_url(url, **options)
        client = client_class.from_pool(pool)
    if timeout is not None:
        client.ceylon_url, client.ceylon_timeout = url, timeout
        if not is_cluster_url(url):
            client.ceylon_lane = Lane()
    return cast(aioredis.Redis, client)


def sync_redis(url: str, *, timeout: float | None = None, **kwargs: Any) -> redis.Redis:
    """A blocking Redis client for ``url`` (``embedded://`` for the in-process one).

    ``timeout``: as for async_redis.
    """
    if url.startswith("embedded://"):
        return cast(redis.Redis, _fakeredis().FakeRedis(
            server=embedded_server(), connection_pool_class=redis.BlockingConnectionPool,
            max_connections=MAX_CONNECTIONS, **kwargs))
    options = _pool_options(timeout, kwargs)
    client: Any
    client_class = redis.Redis if timeout is None else ExplainingRedis
    if is_cluster_url(url):
        with explained_at(url, timeout):
            client = sync_cluster_client(
                url, Cluster if timeout is None else ExplainingCluster, **options)
    elif is_sentinel_url(url):
        client = SentinelTarget.parse(url).sync_client(client_class, **options)
    else:
        client = client_class.from_pool(redis.BlockingConnectionPool.from_url(url, **options))
    if timeout is not None:
        client.ceylon_url, client.ceylon_timeout = url, timeout
        if not is_cluster_url(url):
            client.ceylon_lane = Lane()
    return cast(redis.Redis, client)


def embedded_server() -> Any:
    """The one in-process Redis (fakeredis) of this process, shared by every client of it."""
    global _embedded_server
    if _embedded_server is None:
        _embedded_server = _fakeredis().FakeServer()
    return _embedded_server


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    if url.startswith("embedded://"):
        return True
    try:
        client = sync_redis(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def resolve_url(url: str | None, *, allow_embedded: bool, announce: bool = True) -> str:
    """The URL to use: the one given, else the environment's, else localhost, else embedded.

    Falls back to the embedded Redis only when no URL was given anywhere and nothing
    answers on localhost; then, with ``announce``, warns (EmbeddedRedisWarning, at the
    caller's caller: the line of user code that asked) and logs it. Without the embedded
    extra installed, that is a RedisConnectionError saying how to get one or the other.
    """
    from .settings import DEFAULT_URL, url_from_env

    chosen = url or url_from_env()
    if chosen:
        return chosen
    if not allow_embedded or redis_answers(DEFAULT_URL):
        return DEFAULT_URL
    where = redact_url(DEFAULT_URL)
    if not embedded_installed():
        raise RedisConnectionError(
            f"no Redis answers at {where} and no URL is set (url=, CEYLON_REDIS_URL, "
            f"REDIS_URL); start one (docker run -p 6379:6379 redis:7), or run on the "
            f"embedded in-process Redis: {EMBEDDED_EXTRA}")
    if announce:
        warnings.warn(f"no Redis answers at {where} and no URL is set (url=, CEYLON_REDIS_URL, "
                      "REDIS_URL): running on the embedded in-process Redis (fakeredis), "
                      "which no other process can reach and which keeps nothing",
                      EmbeddedRedisWarning, stacklevel=4)
        logger.warning("no Redis at {}; running on an embedded in-process Redis (fakeredis)",
                       where)
    return "embedded://"
