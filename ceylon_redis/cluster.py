"""Redis Cluster: ``redis+cluster://`` URLs and the cluster clients behind them.

``redis+cluster://[user:password@]host:port[,host:port...]`` names one or more nodes to
start from; the client learns the rest and routes each command by its key's slot. Every
key of one prefix shares the hash tag ``{prefix}``, so each script runs on one shard and
different prefixes spread over the shards.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

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


def _options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _DROPPED}


def sync_cluster_client(url: str, **options: Any) -> sync_cluster.RedisCluster:
    """A blocking cluster client starting from the URL's nodes."""
    nodes, auth = _parse(url)
    return sync_cluster.RedisCluster(
        startup_nodes=[sync_cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                       for h, p in nodes],
        **auth, **_options(options))


def async_cluster_client(url: str, **options: Any) -> async_cluster.RedisCluster:
    """An asyncio cluster client starting from the URL's nodes."""
    nodes, auth = _parse(url)
    return async_cluster.RedisCluster(
        startup_nodes=[async_cluster.ClusterNode(h, p) for h, p in nodes],
        **auth, **_options(options))
