"""Where a task lives when a namespace is split into partitions (``Settings.partitions``).

Partition k is a namespace of its own (``Keys(prefix, k)``) whose keys share one hash
tag, so every script stays inside one Cluster slot while the partitions spread over the
shards. A task lives in the partition its id hashes to (CRC-32 mod N), so finding it
needs no lookup; a graph's tasks all live in the partition of the graph id, so that the
graph's scripts stay atomic, and are found there by the handle (by id, after a probe).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ValidationError
from .keys import Keys


def partition_of(name: str, partitions: int) -> int:
    """The partition a task id (or graph id) belongs to: CRC-32 of its UTF-8 bytes mod N."""
    return zlib.crc32(name.encode()) % partitions if partitions > 1 else 0


@dataclass(frozen=True)
class Partitions:
    """The key sets of every partition of one namespace."""

    prefix: str
    count: int = 1

    @functools.cached_property
    def all(self) -> list[Keys]:
        return [Keys(self.prefix, k) for k in range(self.count)]

    def home(self, name: str) -> Keys:
        """The keys of the partition a task id or graph id hashes to."""
        return self.all[partition_of(name, self.count)]

    def others(self, keys: Keys) -> list[Keys]:
        """Every partition but ``keys``', in order: where a graph's task may also be."""
        return [k for k in self.all if k.partition != keys.partition]

    def probes(self, ids: list[str],
               missing: Callable[[str], bool]) -> Iterator[tuple[Keys, list[str]]]:
        """Where to look for tasks: each id's home partition first, then, for the ids the
        caller still finds ``missing`` after each look (a graph's task lives in its graph's
        partition), every other partition in turn until found."""
        by_home: dict[Keys, list[str]] = {}
        for tid in ids:
            by_home.setdefault(self.home(tid), []).append(tid)
        yield from by_home.items()
        for keys in self.all if self.count > 1 else ():
            group = [t for t in ids if missing(t) and self.home(t) != keys]
            if group:
                yield keys, group

    def _mismatch(self, recorded: Any) -> ValidationError | None:
        theirs = int(recorded) if recorded is not None else 1
        if theirs == self.count:
            return None
        return ValidationError(
            f"prefix {self.prefix!r} has {theirs} partition(s) in Redis, but these settings "
            f"say {self.count} (Settings.partitions / CEYLON_REDIS_PARTITIONS): every process "
            "of a namespace must use the number it was created with")

    def check(self, redis: Any) -> None:
        """Record the partition count if none is (blocking client); raise if Redis has another."""
        key = Keys(self.prefix).partitions
        recorded = redis.get(key) if self.count == 1 else (
            redis.set(key, self.count, nx=True) and self.count) or redis.get(key)
        if (err := self._mismatch(recorded)) is not None:
            raise err

    async def check_async(self, redis: Any) -> None:
        """``check`` for an asyncio client."""
        key = Keys(self.prefix).partitions
        recorded = await redis.get(key) if self.count == 1 else (
            await redis.set(key, self.count, nx=True) and self.count) or await redis.get(key)
        if (err := self._mismatch(recorded)) is not None:
            raise err


@dataclass(frozen=True)
class Link:
    """One edge from a task to a prerequisite enqueued in another call, registered with the
    prerequisite (link.lua) before the task is enqueued in partition ``to``."""

    to: Keys
    task_id: str
    prerequisite: str
    code: str
    """The edge's policy letter (c, r, i)."""

    def group_args(self, group: list[Link]) -> list[str]:
        """link.lua's arguments for this edge's dependent and every edge in ``group``
        (``[self]`` for this edge alone)."""
        return [self.to.base, self.task_id,
                *(v for link in group for v in (link.prerequisite, link.code))]

    def settled(self, reply: Any) -> bool:
        """True once linked; False if the prerequisite is not in the partition asked; raises
        DependencyError if it failed on a cancel edge."""
        from .errors import DependencyError

        code = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if code == "DEPENDENCY":
            prerequisite, status = (v.decode() if isinstance(v, bytes) else str(v)
                                    for v in reply[1:3])
            raise DependencyError(
                f"prerequisite {prerequisite} of task {self.task_id} is {status}")
        return code == "OK"

    def gone(self) -> list[str]:
        """release.lua's arguments settling this edge as failed: its prerequisite is gone."""
        return [self.task_id, self.prerequisite, "FAILED",
                f"prerequisite {self.prerequisite} no longer exists (its result expired)"]

    def unknown(self) -> Exception:
        from .errors import UnknownTaskError

        return UnknownTaskError(f"prerequisite {self.prerequisite} of task {self.task_id} "
                                "does not exist (never enqueued, or its result expired)")


def link_calls(parts: Partitions, links: list[Link],
               size: int = 1000) -> list[tuple[Keys, list[Link]]]:
    """``links`` as link.lua calls: one per dependent and prerequisite's home partition, of
    at most ``size`` edges, so a wide fan-in costs a few round trips, not one per edge."""
    groups: dict[tuple[Keys, str, Keys], list[Link]] = {}
    for link in links:
        groups.setdefault((link.to, link.task_id, parts.home(link.prerequisite)), []).append(link)
    return [(home, group[i:i + size]) for (_, _, home), group in groups.items()
            for i in range(0, len(group), size)]


def relinks(to: Keys, flat: list[Any]) -> list[Link]:
    """The edges graph_retry.lua asks to link again (triples: task, prerequisite, policy),
    each never refused (upper-case policy)."""
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    return [Link(to, text[i], text[i + 1], text[i + 2].upper()) for i in range(0, len(text), 3)]
