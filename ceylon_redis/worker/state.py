"""What the parts of a worker share: each handler's slots, its consumers, the outcomes
handed to the finisher, and the runtime (connection, scripts, settings, stop event)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..faults import Fault
from ..handlers import Handler, Outcome
from ..keys import Keys
from ..partitions import Partitions
from ..scripts import Scripts, run_each_async
from ..settings import Settings
from ..threads import ThreadRunner

Cancel = Callable[[str, str], bool]
"""Cancels the running attempt of a task id here, saying why (``Worker.cancel_task``)."""


@dataclass(eq=False)
class Slots:
    """One handler's concurrency, shared by its consumers of every partition."""

    concurrency: int
    readers: int = 1
    """Consumers sharing these slots, one per partition."""
    prefetch: int = 0
    """Tasks taken beyond ``concurrency``; they wait for a free ``permits`` slot to start."""
    busy: int = 0
    """Attempts running or waiting to start, in every partition."""
    reserved: int = 0
    """Slots held by reads under way (each reader's share), so readers never overcommit."""
    stragglers: int = 0
    """Sync handler threads still running after their attempt ended (timeout, cancel)."""
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    processed: int = 0
    failed: int = 0
    permits: asyncio.Semaphore | None = None
    """With prefetch: ``concurrency`` permits, one per attempt running (or straggling)."""

    def __post_init__(self) -> None:
        if self.prefetch:
            self.permits = asyncio.Semaphore(self.concurrency)

    @property
    def free(self) -> int:
        return self.concurrency + self.prefetch - self.busy - self.reserved - self.stragglers

    def share(self) -> int:
        """Slots one reader may take now: all that are free with one partition, else its
        share of them, so that every partition gets read."""
        if self.readers == 1:
            return self.free
        return max(0, min(self.free, -(-(self.concurrency + self.prefetch) // self.readers)))


def default_prefetch(handler: Handler, concurrency: int) -> int:
    """Tasks a consumer takes beyond its concurrency unless told: as many again for a sync
    function (its threads never wait on Redis between short tasks), none otherwise."""
    return 0 if handler.is_async else concurrency


@dataclass(eq=False)
class Consumer:
    handler: Handler
    id: str
    keys: Keys
    """The partition this consumer reads (the namespace itself without partitions)."""
    slots: Slots
    inflight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    """Running attempts by entry id."""
    running: dict[str, str] = field(default_factory=dict)
    """Entry id of each running attempt by task id."""
    recording: dict[str, str] = field(default_factory=dict)
    """Task id by entry id of attempts whose outcome awaits recording: still in flight for
    the heartbeat, so it neither lets their entries idle nor gives them back as orphans."""
    cancel_requested: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)
    """Entry ids of prefetched attempts waiting for a permit: taken, not started."""
    unstarted: list[str] = field(default_factory=list)
    """Entry ids of prefetched attempts a stop cancelled before they started."""
    adopt: bool = False
    """A read or start failed on the way back (an outage): Redis may have done it, so
    entries may be pending for this consumer that it does not know of (Reader.adopt)."""

    @property
    def concurrency(self) -> int:
        return self.slots.concurrency

    @property
    def role(self) -> str:
        return self.handler.role


@dataclass
class Done:
    """An attempt's outcome, handed to the finisher to record."""

    consumer: Consumer
    task_id: str
    entry: str
    attempt: int
    outcome: Outcome


@dataclass(eq=False)
class Runtime:
    """What every part of one worker shares; the ``Worker`` makes it and owns its lifetime."""

    settings: Settings
    keys: Keys
    parts: Partitions
    redis: Any
    scripts: Scripts
    consumers: list[Consumer]
    grace: float
    """Seconds in-flight tasks get at a stop (a second signal sets it to 0)."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by ``stop()``: no new reads."""
    winding_down: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once in-flight work is settled, as the stop ends the background loops."""
    done: asyncio.Queue[Done] = field(init=False)
    """Outcomes handed over, awaiting the finisher."""
    fault: Fault | None = None
    threads: ThreadRunner | None = None
    """Runs sync handlers; made in run(), on the loop it hands results to."""

    def __post_init__(self) -> None:
        self.done = asyncio.Queue(maxsize=2 * sum(c.concurrency for c in self.firsts))

    @property
    def firsts(self) -> list[Consumer]:
        """Each handler's consumer of partition 0: one per handler."""
        return [c for c in self.consumers if c.keys.partition == 0]

    async def call_each(self, script: Any, calls: list[tuple[Consumer, list[Any]]]) -> list[Any]:
        """Run ``script`` once per consumer's argument list, in its partition (see run_each);
        the replies in order."""
        by_keys: dict[Keys, list[int]] = {}
        for i, (c, _) in enumerate(calls):
            by_keys.setdefault(c.keys, []).append(i)
        replies: list[Any] = [None] * len(calls)
        for keys, indexes in by_keys.items():
            got = await run_each_async(self.redis, script, [keys.base],
                                       [calls[i][1] for i in indexes])
            for i, reply in zip(indexes, got):
                replies[i] = reply
        return replies
