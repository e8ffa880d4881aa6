"""Typed configuration: where Redis is, which namespace, and the timers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

from .errors import ValidationError
from .keys import check_name

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PREFIX = "ceylon"


def url_from_env() -> str | None:
    """The Redis URL the environment names: CEYLON_REDIS_URL, then REDIS_URL."""
    return os.environ.get("CEYLON_REDIS_URL") or os.environ.get("REDIS_URL") or None


@dataclass(frozen=True)
class Settings:
    """Everything a client, worker or coordinator needs to agree on."""

    url: str = DEFAULT_URL
    """Redis URL: ``redis://``, ``rediss://`` (TLS) or ``unix://``; user and password in it."""
    prefix: str = DEFAULT_PREFIX
    """Namespace of every key; two prefixes in one Redis never see each other's tasks."""
    result_ttl: int = 24 * 3600
    """Seconds a finished task's hash (status, result) is kept."""
    max_attempts: int = 1
    """Attempts a task gets by default (a worker crash counts as one)."""
    worker_timeout: float = 30.0
    """Seconds without a heartbeat after which a worker is presumed dead and its tasks re-queued."""
    heartbeat_interval: float = 5.0
    """Seconds between a worker's heartbeats (and keep-alives of its in-flight entries)."""
    block_ms: int = 1000
    """How long one blocking stream read waits before the worker checks for shutdown."""
    max_payload_bytes: int = 16 * 1024 * 1024
    """Largest encoded payload accepted by enqueue."""

    def __post_init__(self) -> None:
        check_name("prefix", self.prefix)
        if self.result_ttl <= 0:
            raise ValidationError("result_ttl must be positive")
        if self.max_attempts < 1:
            raise ValidationError("max_attempts must be at least 1")
        if self.heartbeat_interval <= 0 or self.worker_timeout <= self.heartbeat_interval:
            raise ValidationError("worker_timeout must exceed heartbeat_interval, both positive")

    @classmethod
    def from_env(cls, url: str | None = None, prefix: str | None = None,
                 **overrides: Any) -> Settings:
        """Settings from arguments, then CEYLON_REDIS_* / REDIS_URL variables, then defaults."""
        env = os.environ
        values: dict[str, Any] = {
            "url": url or url_from_env() or DEFAULT_URL,
            "prefix": prefix or env.get("CEYLON_REDIS_PREFIX") or DEFAULT_PREFIX,
        }
        for name, conv in (("result_ttl", int), ("max_attempts", int),
                           ("worker_timeout", float), ("heartbeat_interval", float)):
            raw = env.get(f"CEYLON_REDIS_{name.upper()}")
            if raw:
                values[name] = conv(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for logs and CLI output."""
    url = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}" if user else f"{scheme}://***@{host}"
