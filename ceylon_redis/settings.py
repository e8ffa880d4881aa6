"""Typed configuration: where Redis is, which namespace, and the timers."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .errors import ValidationError
from .keys import check_name

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PREFIX = "ceylon"
MAX_PARTITIONS = 64
DEFAULT_EVENTS_MAXLEN = 250_000
"""Entries the lifecycle stream keeps by default: a day of some 70,000 tasks moved one at a
time (about 3.5 entries each, 68 bytes an entry: 17 MB); an entry holds up to 16 tasks'
transitions, so at most about 160 MB (docs/architecture.md, Progress and events)."""

URL_ENV = ("CEYLON_REDIS_URL", "REDIS_URL")
"""Variables naming the Redis URL, the first set one winning."""
PREFIX_ENV = "CEYLON_REDIS_PREFIX"
_NUMBERS_FROM_ENV: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("result_ttl", int), ("max_attempts", int), ("worker_timeout", float),
    ("heartbeat_interval", float), ("retry_backoff", float), ("retry_backoff_max", float),
    ("retry_jitter", float), ("task_timeout", float), ("dead_letter_ttl", int),
    ("socket_timeout", float), ("wait_replicas", int), ("wait_timeout", float),
    ("partitions", int), ("events_maxlen", int), ("progress_interval", float),
    ("recent_per_role", int))
"""Fields ``Settings.from_env`` reads from ``CEYLON_REDIS_<FIELD>``, with their types."""
ENV_VARS: tuple[str, ...] = (*URL_ENV, PREFIX_ENV,
                             *(f"CEYLON_REDIS_{name.upper()}" for name, _ in _NUMBERS_FROM_ENV))
"""Every environment variable ``Settings.from_env`` reads (the CLI's options read more)."""


def url_from_env() -> str | None:
    """The Redis URL the environment names: CEYLON_REDIS_URL, then REDIS_URL."""
    return next((url for url in map(os.environ.get, URL_ENV) if url), None)


@dataclass(frozen=True)
class Settings:
    """Everything a client, worker or coordinator needs to agree on."""

    url: str = DEFAULT_URL
    """Redis URL: ``redis://``, ``rediss://`` (TLS), ``unix://``, ``redis+sentinel://``
    (see sentinel.py) or ``redis+cluster://`` (see cluster.py); user and password in it."""
    prefix: str = DEFAULT_PREFIX
    """Namespace of every key; two prefixes in one Redis never see each other's tasks."""
    result_ttl: int = 24 * 3600
    """Seconds a finished task's hash (status, result) is kept."""
    max_attempts: int = 1
    """Attempts a task gets unless enqueued with its own: the worker's setting applies.
    Attempts lost to a crashed worker have their own budget (3) apart from these."""
    retry_backoff: float = 1.0
    """Seconds before the first retry of a failed attempt, doubling each retry (0: at once)."""
    retry_backoff_max: float = 600.0
    """Longest wait between two attempts, in seconds."""
    retry_jitter: float = 0.5
    """Fraction of each backoff taken off at random, so failed tasks do not retry in step."""
    task_timeout: float | None = None
    """Seconds an attempt may run unless enqueued with its own ``timeout`` (None: no limit)."""
    dead_letter_ttl: int = 7 * 24 * 3600
    """Seconds a dead-lettered task's hash is kept (if longer than its result TTL)."""
    schedule_poll: float = 0.5
    """Most seconds between two looks for due scheduled tasks (delayed ones, retries)."""
    worker_timeout: float = 30.0
    """Seconds without a heartbeat after which a worker is presumed dead and its tasks re-queued."""
    heartbeat_interval: float = 5.0
    """Seconds between a worker's heartbeats (and keep-alives of its in-flight entries)."""
    block_ms: int = 1000
    """How long one blocking stream read waits before the worker checks for shutdown."""
    max_payload_bytes: int = 16 * 1024 * 1024
    """Largest encoded payload accepted by enqueue."""
    socket_timeout: float = 10.0
    """Seconds a client waits to connect, for a reply and for a free pooled connection before
    raising RedisTimeoutError / RedisConnectionError. Daemons allow ``block_ms`` more per
    reply (their blocking reads) and retry; idle pub/sub listening is never cut by it."""

    wait_replicas: int = 0
    """Replicas that must acknowledge each enqueue (Redis WAIT) before it returns; 0 does not
    wait. With asynchronous replication a failover loses the writes no replica had yet; this
    closes that window for enqueues (see docs/operations.md for its cost)."""
    wait_timeout: float = 1.0
    """Seconds an enqueue waits for ``wait_replicas`` acknowledgements before raising
    ReplicationError (the tasks stay enqueued on the master)."""

    partitions: int = 1
    """Partitions the namespace is split into, each a hash tag (Cluster slot) of its own, so
    one busy role can use every shard. Recorded in Redis by the first process; every process
    of the namespace must agree (see partitions.py)."""

    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    """Entries kept in the lifecycle stream ``{P}:lifecycle``, trimmed approximately (MAXLEN
    ~); 0 writes no lifecycle events. Every process of a namespace should agree: each
    writes the transitions its own script calls make."""
    progress_interval: float = 0.25
    """Seconds between a worker's writes of the progress its running tasks report: reports
    in between are coalesced, the latest one per task written."""
    recent_per_role: int = 10_000
    """Finished tasks the coordinators list per role, newest first, in ``{P}:recent:<role>``,
    and as many failed or cancelled ones in ``{P}:failures:<role>`` (the dashboard's lists
    by status; about 40 bytes each); 0 keeps none."""

    def __post_init__(self) -> None:
        check_name("prefix", self.prefix)
        if not isinstance(self.partitions, int) or not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ValidationError(f"partitions must be a whole number from 1 to "
                                  f"{MAX_PARTITIONS}, not {self.partitions!r}")
        if self.result_ttl <= 0:
            raise ValidationError("result_ttl must be positive")
        if self.max_attempts < 1:
            raise ValidationError("max_attempts must be at least 1")
        if self.heartbeat_interval <= 0 or self.worker_timeout <= self.heartbeat_interval:
            raise ValidationError("worker_timeout must exceed heartbeat_interval, both positive")
        if self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ValidationError("retry_backoff and retry_backoff_max must not be negative")
        if not 0 <= self.retry_jitter <= 1:
            raise ValidationError("retry_jitter must be between 0 and 1")
        if self.task_timeout is not None and self.task_timeout <= 0:
            raise ValidationError("task_timeout must be positive (or None for no limit)")
        if self.dead_letter_ttl <= 0 or self.schedule_poll <= 0:
            raise ValidationError("dead_letter_ttl and schedule_poll must be positive")
        if self.wait_replicas < 0 or not 0 < self.wait_timeout < math.inf:
            raise ValidationError("wait_replicas must not be negative and wait_timeout must be "
                                  "a positive number of seconds")
        if self.wait_replicas and self.url.lower().startswith("redis+cluster://"):
            raise ValidationError("wait_replicas is not supported on a Redis Cluster (a WAIT "
                                  "must share the connection of the writes it waits for)")
        if (not isinstance(self.events_maxlen, int) or isinstance(self.events_maxlen, bool)
                or self.events_maxlen < 0):
            raise ValidationError(f"events_maxlen must be a whole number, 0 or more (0: no "
                                  f"lifecycle events), not {self.events_maxlen!r}")
        if (not isinstance(self.recent_per_role, int) or isinstance(self.recent_per_role, bool)
                or self.recent_per_role < 0):
            raise ValidationError(f"recent_per_role must be a whole number, 0 or more, not "
                                  f"{self.recent_per_role!r}")
        if not 0 < self.progress_interval < math.inf:
            raise ValidationError("progress_interval must be a positive number of seconds")
        if not 0 < self.socket_timeout < math.inf:  # also rejects NaN
            raise ValidationError("socket_timeout must be a positive number of seconds")

    @classmethod
    def from_env(cls, url: str | None = None, prefix: str | None = None,
                 **overrides: Any) -> Settings:
        """Settings from arguments, then CEYLON_REDIS_* / REDIS_URL variables, then defaults."""
        env = os.environ
        values: dict[str, Any] = {
            "url": url or url_from_env() or DEFAULT_URL,
            "prefix": prefix or env.get(PREFIX_ENV) or DEFAULT_PREFIX,
        }
        for name, conv in _NUMBERS_FROM_ENV:
            raw = env.get(f"CEYLON_REDIS_{name.upper()}")
            if raw:
                try:
                    values[name] = conv(raw)
                except ValueError:
                    raise ValidationError(
                        f"CEYLON_REDIS_{name.upper()}={raw!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def resolve(cls, settings: Settings | None, url: str | None = None,
                prefix: str | None = None) -> Settings:
        """``settings`` (else the environment's), with ``url`` and ``prefix`` if given."""
        if settings is None:
            return cls.from_env(url=url, prefix=prefix)
        return settings.with_(**{k: v for k, v in (("url", url), ("prefix", prefix)) if v})

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for logs and CLI output."""
    url = re.sub(r"(?i)([?&](?:sentinel_)?password=)[^&#]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}" if user else f"{scheme}://***@{host}"
