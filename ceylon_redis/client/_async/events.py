"""Events: the lifecycle stream read or followed, one task watched as it runs, and waiting
with progress."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from ...errors import TaskTimeoutError, UnknownTaskError
from ...events import (
    WATCH_FIELDS,
    EntryMerge,
    check_kinds,
    parse_entries,
    stream_position,
    update_from_fields,
)
from ...models import TaskEvent, TaskResult, TaskUpdate
from ...protocol import result_from_fields
from ...scripts import is_cluster
from ...waiting import check_callback
from ..polling import Deadline
from .producing import AsyncProducing


class AsyncEvents(AsyncProducing):
    """``events()`` over the lifecycle stream, ``watch()`` of one task, ``wait(on_progress=)``."""

    async def events(self, since: str | dt.datetime = "0", *, role: str | None = None,
                     kinds: Iterable[str] | None = None, task_id: str | None = None,
                     follow: bool = False, batch: int = 500,
                     block: float = 1.0) -> AsyncIterator[TaskEvent]:
        """Events after ``since`` (an entry id, a time, "0" for the oldest kept or "$" for
        only new ones), oldest first, of ``role``, ``kinds`` and ``task_id`` when given.
        Without ``follow`` it ends at the newest; with it, it waits for more (``block``
        seconds per look, at most half the socket timeout) until the caller stops. To
        resume, pass the ``id`` of the last event handled: events of one entry share it,
        so stop only at an entry's end (or expect the rest of that entry again). With
        partitions, each has a stream; they are merged by entry id, and one ``since``
        applies to all (architecture.md, Progress and events)."""
        wanted = check_kinds(kinds)
        start = stream_position(since)
        wait_ms = max(1, round(min(block, self.settings.socket_timeout / 2) * 1000))
        merge = EntryMerge([k.lifecycle for k in self.parts.all], start, batch)
        if start == "$":
            for key in merge.keys:
                last = await self.redis.xrevrange(key, count=1)
                merge.position[key] = last[0][0].decode() if last else "0"
        while True:
            for key in merge.to_read():
                reply = await self.redis.xread({key: merge.position[key]}, count=batch)
                merge.add(key, reply)
            entry = merge.pop()
            if entry is not None:
                for event in parse_entries([entry], role, wanted, task_id):
                    yield event
                continue
            if not follow:
                return
            merge.again()
            if len(merge.keys) == 1 or not is_cluster(self.redis):  # wait for them in Redis
                merge.add_all(await self.redis.xread(dict(merge.position), count=batch,
                                                     block=wait_ms))
            else:  # a Cluster's partitions live on several shards: one read cannot block on all
                await asyncio.sleep(wait_ms / 1000)

    async def recent_events(self, count: int = 20, *, role: str | None = None,
                            kinds: Iterable[str] | None = None, task_id: str | None = None,
                            scan: int = 100_000) -> list[TaskEvent]:
        """The newest ``count`` events (of ``role``, ``kinds``, ``task_id`` when given),
        oldest first, read backwards from the end of each partition's stream, at most
        ``scan`` entries of each (a filter that matches little stops there)."""
        wanted = check_kinds(kinds)
        found: list[TaskEvent] = []
        for keys in self.parts.all:
            end, got, seen, size = "+", list[TaskEvent](), 0, max(count, 8)
            while len(got) < count and seen < scan:
                # a window as large as the count first (an entry holds up to 16 events),
                # doubled while a filter leaves it short: a look at the newest few reads few
                page = await self.redis.xrevrange(keys.lifecycle, end, "-",
                                                  count=min(size, 500, scan - seen))
                size *= 2
                if not page:
                    break
                seen += len(page)
                page.reverse()
                got[:0] = list(parse_entries(page, role, wanted, task_id))
                end = f"({page[0][0].decode()}"
                if task_id is not None and any(e.kind in ("enqueued", "tick") for e in got):
                    break  # nothing of that task comes before its enqueue
            found.extend(got[-count:])
        found.sort(key=lambda e: tuple(int(n) for n in e.id.split("-")))
        return found[-count:]

    async def watch(self, task_id: str, *, timeout: float | None = None,
                    interval: float | None = None) -> AsyncIterator[TaskUpdate]:
        """Each change of the task seen (status, attempt, progress, worker), looking every
        ``interval`` seconds (``Settings.progress_interval``), until it is final: the last
        update carries its ``result``. TaskTimeoutError after ``timeout`` seconds;
        UnknownTaskError for a task never enqueued (or expired)."""
        every = interval or self.settings.progress_interval
        key = await self._task_key(task_id)
        deadline, last = Deadline(timeout), None
        while True:
            raw = await self.redis.hmget(key, *WATCH_FIELDS)
            update = update_from_fields(task_id, raw)
            if update is None:
                raise UnknownTaskError(f"task {task_id} expired while watched")
            if update.status.is_final:
                output, error = raw[5], raw[6]
                yield update.model_copy(update={"result": result_from_fields(
                    task_id, update.status.value, output, error.decode() if error else None)})
                return
            if update != last:
                yield update
                last = update
            if deadline.passed():
                raise TaskTimeoutError(f"task {task_id} was not final after {timeout} s "
                                       f"(status {update.status.value})")
            await asyncio.sleep(deadline.cap(every))

    async def wait(self, task_id: str, timeout: float | None = None, *,
                   on_progress: Callable[[TaskUpdate], Any] | None = None) -> TaskResult:
        """The task's result once it is final; TaskTimeoutError after ``timeout`` seconds.
        With ``on_progress``, it is called with each change seen before the end (as
        ``watch`` sees them), and the wait looks every ``progress_interval`` seconds."""
        if on_progress is None:
            return await super().wait(task_id, timeout)
        check_callback("on_progress", on_progress, "TaskUpdate")
        async for update in self.watch(task_id, timeout=timeout):
            if update.result is not None:
                return update.result
            on_progress(update)
        raise AssertionError("watch() ended without a result")  # pragma: no cover

    async def _task_key(self, task_id: str) -> str:
        """The hash of a task, in whichever partition holds it; UnknownTaskError if none."""
        for keys in self._homes(task_id):
            if await self.redis.exists(keys.task(task_id)):
                return keys.task(task_id)
        raise UnknownTaskError(f"unknown task {task_id} (never enqueued, or its result expired)")
