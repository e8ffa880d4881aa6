"""Dead letters and purges: list, show, retry and forget dead letters; cancel a role's
tasks that have not started."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ...errors import UnknownTaskError
from ...keys import ENTRY_ID, Keys, check_task_id
from ...models import DeadLetter, DeadRetry
from ...protocol import parse_dead_letter
from ...scripts import run_each_async
from ..base import BATCH, cancel_args
from ..replies import (
    DEAD_LETTER_SCAN,
    count_cancelled,
    dead_by_role,
    dead_entry_ids,
    dead_page,
    newest,
    note_dead_retry,
    one_dead_letter,
    purge_reads,
    purge_start,
    ready_page,
    sum_counts,
)
from .graphs import AsyncGraphs


class AsyncDeadLetters(AsyncGraphs):
    """What ``ceylon-redis dead`` and ``purge`` do (a graph's task retries with its graph)."""

    async def dead_letters(self, role: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first (of one role if given), from every partition."""
        return newest([await view._dead_letters_here(role, limit) for view in self._views()],
                      limit)

    async def _dead_letters_here(self, role: str | None, limit: int) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        end = "+"
        while len(out) < limit:
            rows = await self.redis.xrevrange(self.keys.dead, max=end, count=max(limit, 100))
            out += [d for d in (parse_dead_letter(e, f) for e, f in rows)
                    if role is None or d.role == role]
            if len(rows) < max(limit, 100):
                break
            end = "(" + rows[-1][0].decode()
        return out[:limit]

    async def dead_letter(self, id: str) -> DeadLetter:
        """The dead letter of a task (by task id, or by its entry id on ``{P}:dead``)."""
        rows: list[Any] = []
        for keys in self._dead_homes(id):
            entry = id if ENTRY_ID.match(id) else await self.redis.hget(keys.task(id), "dead")
            if entry:
                rows += await self.redis.xrange(keys.dead, min=entry, max=entry)
            if rows and not ENTRY_ID.match(id):
                break
        return one_dead_letter(id, rows)

    async def retry_dead(self, task_ids: Sequence[str] | None = None) -> DeadRetry:
        """Run dead-lettered tasks again with a fresh attempt budget (all when no ids).

        A graph's task is retried with its graph's ``retry_failed()``, which also
        re-runs what its failure cancelled.
        """
        report = DeadRetry()
        if task_ids is not None:
            ids = [check_task_id(t) for t in task_ids]
            for i in range(0, len(ids), BATCH):
                unknown: dict[str, str] = {}
                for keys, group in self.parts.probes(ids[i:i + BATCH], unknown.__contains__):
                    await self._retry_dead_batch(keys, group, report, unknown)
                report.skipped.update(unknown)
            return report
        for view in self._views():
            start = "-"
            while rows := await self.redis.xrange(view.keys.dead, min=start, count=BATCH):
                unknown = {}
                await self._retry_dead_batch(view.keys, dead_page(rows, report), report,
                                             unknown)
                report.skipped.update(unknown)
                start = "(" + rows[-1][0].decode()
        return report

    async def _retry_dead_batch(self, keys: Keys, ids: list[str], report: DeadRetry,
                                unknown: dict[str, str]) -> None:
        reply = await self.scripts.dead_retry(keys=[keys.base], args=ids)
        for gid in note_dead_retry(ids, reply, report, unknown):
            report.retried += await self.graph(gid).retry_failed()

    async def dead_letter_count(self) -> int:
        """Dead letters kept, all roles and partitions together."""
        return sum([int(await self.redis.xlen(keys.dead)) for keys in self.parts.all])

    async def dead_letter_counts(self, scan: int = DEAD_LETTER_SCAN) -> dict[str, int]:
        """Dead letters per role, read from each partition's newest ``scan``; older ones
        count under "?"."""
        counts: list[dict[str, int]] = []
        for keys in self.parts.all:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.dead)
                pipe.xrevrange(keys.dead, count=scan)
                total, rows = await pipe.execute()
            counts.append(dead_by_role(int(total), rows))
        return sum_counts(counts)

    async def purge(self, role: str, reason: str = "purged") -> int:
        """Cancel every task of ``role`` that has not started: ready, scheduled and waiting
        ones (their dependents settle as for any cancel). Running tasks are left alone;
        returns how many were cancelled."""
        return sum([await view._purge_here(role, reason) for view in self._views()])

    async def _purge_here(self, role: str, reason: str) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            purge_reads(pipe, self.keys, role)
            ids, start, scopes = purge_start(await pipe.execute(raise_on_error=False))
        for scope in scopes:  # tasks waiting for a concurrency slot
            ids += [m.decode() for m in await self.redis.lrange(self.keys.blocked(scope), 0, -1)]
        while True:
            page = await self.redis.xrange(self.keys.stream(role), min=start, count=BATCH)
            ids += ready_page(page)
            if len(page) < BATCH:
                break
            start = "(" + page[-1][0].decode()
        n = 0
        for i in range(0, len(ids), BATCH):
            n += count_cancelled(await run_each_async(
                self.redis, self.scripts.cancel, [self.keys.base],
                [cancel_args(tid, reason) for tid in ids[i:i + BATCH]], raise_on_error=False))
        return n

    async def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Forget dead letters (all when no ids); the tasks' hashes expire with their TTL."""
        for entry in (e for e in ids or () if ENTRY_ID.match(e) and self.parts.count > 1):
            with contextlib.suppress(UnknownTaskError):  # refuses one two partitions use
                await self.dead_letter(entry)
        return sum([await view._purge_dead_here(ids) for view in self._views()])

    async def _purge_dead_here(self, ids: Sequence[str] | None) -> int:
        if ids is None:
            n = int(await self.redis.xlen(self.keys.dead))
            await self.redis.delete(self.keys.dead)
            return n
        async with self.redis.pipeline(transaction=False) as pipe:
            for given in ids:
                pipe.hget(self.keys.task(given), "dead")
            fields = await pipe.execute()
        entries = dead_entry_ids(ids, fields)
        return int(await self.redis.xdel(self.keys.dead, *entries)) if entries else 0
