"""The Lua scripts, one per state transition, loaded once and called by SHA.

Each ``.lua`` file here opens with a header naming its KEYS, ARGV and reply.
A line ``--!include NAME`` is replaced by ``includes/NAME`` at load time.
redis-py's Script objects run EVALSHA and load the script again after a
NOSCRIPT reply (SCRIPT FLUSH, a restarted or failed-over Redis). Every script
that includes common.lua takes the lifecycle stream's cap (Settings.events_maxlen)
as its first argument: ``Scripts`` prepends it, so call sites pass only their own.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
import redis.asyncio as aioredis

from ..lane import arun_script, run_script
from ..settings import DEFAULT_EVENTS_MAXLEN

_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)
NAMES = ("enqueue", "start", "finish", "requeue", "reap", "heartbeat", "watch", "cancel",
         "graph_retry", "stats", "promote", "dead_retry", "clock", "link", "release",
         "schedule", "schedules_due", "tick", "limit", "progress")


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


class CappedScript:
    """A registered script whose every call carries the lifecycle cap ahead of its own
    arguments (lane.py sends ``head`` too)."""

    __slots__ = ("head", "script", "sha")

    def __init__(self, script: Any, events_maxlen: int) -> None:
        self.script = script
        self.head = [events_maxlen]
        self.sha = script.sha

    def __call__(self, keys: list[Any] | None = None, args: list[Any] | None = None,
                 client: Any = None) -> Any:
        return self.script(keys=keys, args=[*self.head, *(args or ())], client=client)


def takes_cap(name: str) -> bool:
    """Whether script ``name`` includes common.lua, so takes the lifecycle cap first."""
    return "--!include common.lua" in (resources.files(__name__) / f"{name}.lua").read_text()


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
    clock: Any
    link: Any
    release: Any
    schedule: Any
    schedules_due: Any
    tick: Any
    limit: Any
    progress: Any

    @classmethod
    def register(cls, redis: Any, events_maxlen: int = DEFAULT_EVENTS_MAXLEN) -> Scripts:
        """Register every script on ``redis``; ``events_maxlen`` caps the lifecycle stream
        (0: no lifecycle events)."""
        made = {}
        for name in NAMES:
            script = redis.register_script(source(name))
            made[name] = CappedScript(script, events_maxlen) if _CAPPED[name] else script
        return cls(**made)


_CAPPED = {name: takes_cap(name) for name in NAMES}


def is_cluster(client: Any) -> bool:
    """True for a Redis Cluster client, whose pipelines cannot carry scripts."""
    return isinstance(client, (redis.RedisCluster, aioredis.RedisCluster))


def run_each(client: Any, script: Any, keys: list[str], arg_lists: list[list[Any]],
             raise_on_error: bool = True) -> list[Any]:
    """Run ``script`` once per argument list (blocking client): one call alone, pipelined
    for several, one by one on a Cluster. With ``raise_on_error=False`` a call's error is
    returned in its place."""
    if len(arg_lists) == 1 or is_cluster(client):
        out = []
        for args in arg_lists:
            try:
                out.append(run_script(client, script, keys, args))
            except redis.ResponseError as exc:
                if raise_on_error:
                    raise
                out.append(exc)
        return out
    with client.pipeline(transaction=False) as pipe:
        for args in arg_lists:
            script(keys=keys, args=args, client=pipe)
        return list(pipe.execute(raise_on_error=raise_on_error))


async def run_each_async(client: Any, script: Any, keys: list[str],
                         arg_lists: list[list[Any]], raise_on_error: bool = True) -> list[Any]:
    """run_each for an asyncio client."""
    if len(arg_lists) == 1 or is_cluster(client):
        out = []
        for args in arg_lists:
            try:
                out.append(await arun_script(client, script, keys, args))
            except redis.ResponseError as exc:
                if raise_on_error:
                    raise
                out.append(exc)
        return out
    async with client.pipeline(transaction=False) as pipe:
        for args in arg_lists:
            await script(keys=keys, args=args, client=pipe)
        return list(await pipe.execute(raise_on_error=raise_on_error))
