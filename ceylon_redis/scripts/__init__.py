"""The Lua scripts, one per state transition, loaded once and called by SHA.

Each ``.lua`` file here opens with a header naming its KEYS, ARGV and reply.
A line ``--!include NAME`` is replaced by ``includes/NAME`` at load time.
redis-py's Script objects run EVALSHA and load the script again after a
NOSCRIPT reply (SCRIPT FLUSH, a restarted or failed-over Redis).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)
NAMES = ("enqueue", "start", "finish", "requeue", "reap", "heartbeat", "watch", "cancel",
         "graph_retry", "stats", "promote", "dead_retry")


@functools.cache
def source(name: str) -> str:
    """The full text of script ``name`` with its includes spliced in."""
    root = resources.files(__name__)
    text = (root / f"{name}.lua").read_text()
    return _INCLUDE.sub(lambda m: (root / "includes" / m.group(1)).read_text(), text)


@functools.cache
def script_protocol() -> str:
    """A digest of every script: daemons that differ in it must not share a namespace."""
    digest = hashlib.sha1(usedforsecurity=False)
    for name in NAMES:
        digest.update(source(name).encode())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Scripts:
    """The scripts registered on one redis client (sync or asyncio)."""

    enqueue: Any
    start: Any
    finish: Any
    requeue: Any
    reap: Any
    heartbeat: Any
    watch: Any
    cancel: Any
    graph_retry: Any
    stats: Any
    promote: Any
    dead_retry: Any

    @classmethod
    def register(cls, redis: Any) -> Scripts:
        return cls(**{name: redis.register_script(source(name)) for name in NAMES})
