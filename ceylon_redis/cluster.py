"""Redis Cluster: ``redis+cluster://`` URLs and the cluster clients behind them.

``redis+cluster://[user:password@]host:port[,host:port...]`` names one or more nodes to
start from; the client learns the rest and routes each command by its key's slot. Every
key of one prefix shares the hash tag ``{prefix}``, so each script runs on one shard and
different prefixes spread over the shards.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio.cluster as async_cluster
import redis.cluster as sync_cluster

from .errors import ValidationError
from .settings import redact_url

SCHEME = "redis+cluster"
_DROPPED = ("timeout", "health_check_interval")
"""Pool options of ours that cluster clients do not take."""


def is_cluster_url(url: str) -> bool:
    """True for a ``redis+cluster://`` URL."""
    return url.lower().startswith(SCHEME + "://")


def _parse(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    parts = urlsplit(url)
    creds, _, hosts = parts.netloc.rpartition("@")
    user, _, password = creds.partition(":")
    nodes = []
    for text in filter(None, hosts.split(",")):
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit():
            raise ValidationError(f"cluster node {text!r} in {redact_url(url)!r} must be "
                                  "host:port")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes or parts.path.strip("/") not in ("", "0") or parts.query:
        raise ValidationError(f"a Cluster URL reads {SCHEME}://[user:password@]host:port"
                              f"[,host:port...] (database 0 only), not {redact_url(url)!r}")
    auth = {"username": unquote(user) or None, "password": unquote(password) or None}
    return nodes, {k: v for k, v in auth.items() if v is not None}


def wrap_execute(pipe: Any, around: Callable[[], contextlib.AbstractContextManager[None]]) -> Any:
    """``pipe`` (sync or asyncio) with its ``execute`` run inside ``around()``."""
    execute = pipe.execute
    if inspect.iscoroutinefunction(execute):
        async def wrapped_async(*a: Any, **kw: Any) -> Any:
            with around():
                return await execute(*a, **kw)

        pipe.execute = wrapped_async
    else:
        def wrapped(*a: Any, **kw: Any) -> Any:
            with around():
                return execute(*a, **kw)

        pipe.execute = wrapped
    return pipe


@contextlib.contextmanager
def _unreachable_as_connection_error() -> Iterator[None]:
    """redis-py reports "no node reachable" as a RedisClusterException; make it the
    ConnectionError it is, so daemons wait it out and producers explain it as for one Redis."""
    try:
        yield
    except redis.exceptions.RedisClusterException as exc:
        if "cannot be connected" not in str(exc):
            raise
        raise redis.ConnectionError(str(exc)) from exc


class Cluster(sync_cluster.RedisCluster):
    """The blocking cluster client, whose unreachable cluster is a ConnectionError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with _unreachable_as_connection_error():
            super().__init__(*args, **kwargs)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _unreachable_as_connection_error():
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[no-untyped-call]
        return wrap_execute(pipe, _unreachable_as_connection_error)


class AsyncCluster(async_cluster.RedisCluster):
    """The asyncio cluster client, whose unreachable cluster is a ConnectionError."""

    async def initialize(self, *args: Any, **kwargs: Any) -> AsyncCluster:
        with _unreachable_as_connection_error():
            await super().initialize(*args, **kwargs)
        return self

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        return wrap_execute(super().pipeline(*args, **kwargs), _unreachable_as_connection_error)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _DROPPED}


def sync_cluster_client(url: str, client_class: type[Cluster] = Cluster,
                        **options: Any) -> Cluster:
    """A blocking cluster client starting from the URL's nodes."""
    nodes, auth = _parse(url)
    return client_class(
        startup_nodes=[sync_cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                       for h, p in nodes],
        **auth, **_options(options))


def async_cluster_client(url: str, client_class: type[AsyncCluster] = AsyncCluster,
                         **options: Any) -> AsyncCluster:
    """An asyncio cluster client starting from the URL's nodes."""
    nodes, auth = _parse(url)
    return client_class(
        startup_nodes=[async_cluster.ClusterNode(h, p) for h, p in nodes],
        **auth, **_options(options))
