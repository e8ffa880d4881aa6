"""Redis Sentinel: ``redis+sentinel://`` URLs and the connection pools that follow a failover.

``redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>]``
names the sentinels to ask and the master they watch; ``user``/``password`` are the
data nodes' credentials, ``?sentinel_username=&sentinel_password=`` the sentinels'.
Every new connection asks the sentinels where the master is now; a connection to a
demoted master fails (READONLY becomes a ConnectionError), so daemons, which retry
outages, carry on against the promoted replica.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as async_sentinel
import redis.sentinel as sync_sentinel

from .errors import ValidationError
from .settings import redact_url

SCHEME = "redis+sentinel"


def is_sentinel_url(url: str) -> bool:
    """True for a ``redis+sentinel://`` URL."""
    return url.lower().startswith(SCHEME + "://")


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelTarget:
        """Parse ``url``; a ValidationError names what is wrong with it."""
        if not is_sentinel_url(url):
            raise ValidationError(f"not a {SCHEME}:// URL: {url!r}")
        parts = urlsplit(url)
        creds, _, hosts = parts.netloc.rpartition("@")
        user, _, password = creds.partition(":")
        sentinels = tuple(_host_port(h, url) for h in hosts.split(",") if h)
        path = [p for p in parts.path.split("/") if p]
        if not sentinels or not path or len(path) > 2:
            raise ValidationError(
                f"a Sentinel URL reads {SCHEME}://[user:password@]host:port[,host:port...]"
                f"/<master name>[/<db>], not {redact_url(url)!r}")
        if len(path) == 2 and not path[1].isdigit():
            raise ValidationError(f"database {path[1]!r} in {redact_url(url)!r} is not a number")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"sentinel_username", "sentinel_password"}
        if unknown:
            raise ValidationError(f"unknown Sentinel URL option(s): {', '.join(sorted(unknown))}")
        return cls(sentinels=sentinels, master=unquote(path[0]),
                   db=int(path[1]) if len(path) == 2 else 0,
                   username=unquote(user) or None, password=unquote(password) or None,
                   sentinel_username=query.get("sentinel_username"),
                   sentinel_password=query.get("sentinel_password"))

    def _sentinel_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        timeouts = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout")
                    if options.get(k) is not None}
        auth = {"username": self.sentinel_username, "password": self.sentinel_password}
        return {**timeouts, **{k: v for k, v in auth.items() if v is not None}}

    def _node_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        auth = {"username": self.username, "password": self.password}
        return {**options, "db": self.db, **{k: v for k, v in auth.items() if v is not None}}

    def sync_client(self, client_class: type[redis.Redis], **options: Any) -> redis.Redis:
        """A blocking client of the current master, of ``client_class``."""
        manager = sync_sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs(options))
        client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            self.master, redis_class=client_class,
            connection_pool_class=_BlockingSyncPool, **self._node_kwargs(options))
        return client

    def async_client(self, client_class: type[aioredis.Redis], **options: Any) -> aioredis.Redis:
        """An asyncio client of the current master, of ``client_class``."""
        manager = async_sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs(options))
        client: aioredis.Redis = manager.master_for(
            self.master, redis_class=client_class,
            connection_pool_class=_BlockingAsyncPool, **self._node_kwargs(options))
        return client


class _BlockingSyncPool(sync_sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel pool that waits for a free connection, as our other pools do."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        """Close connections after a master change; redis-py before 6 has a blocking pool
        whose disconnect takes no argument (it closes them all)."""
        if "inuse_connections" in inspect.signature(super().disconnect).parameters:
            super().disconnect(inuse_connections=inuse_connections)
        else:
            super().disconnect()  # type: ignore[call-arg, unused-ignore]


class _BlockingAsyncPool(async_sentinel.SentinelConnectionPool,
                         aioredis.BlockingConnectionPool):
    """A Sentinel pool that waits for a free connection, as our other pools do."""


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValidationError(f"sentinel address {text!r} in {redact_url(url)!r} "
                              "must be host:port")
    return host.strip("[]"), int(port)
