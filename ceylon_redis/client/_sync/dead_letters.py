# Generated from ceylon_redis/client/_async/dead_letters.py by .ci/unasync.py: do not edit.
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
from ...scripts import run_each
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
from .graphs import Graphs


class DeadLetters(Graphs):
    """What ``ceylon-redis dead`` and ``purge`` do (a graph's task retries with its graph)."""

    def dead_letters(self, role: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first (of one role if given), from every partition."""
        return newest([view._dead_letters_here(role, limit) for view in self._views()],
                      limit)

    def _dead_letters_here(self, role: str | None, limit: int) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        end = "+"
        while len(out) < limit:
            rows = self.redis.xrevrange(self.keys.dead, max=end, count=max(limit, 100))
            out += [d for d in (parse_dead_letter(e, f) for e, f in rows)
                    if role is None or d.role == role]
            if len(rows) < max(limit, 100):
                break
            end = "(" + rows[-1][0].decode()
        return out[:limit]

    def dead_letter(self, id: str) -> DeadLetter:
        """The dead letter of a task (by task id, or by its entry id on ``{P}:dead``)."""
        rows: list[Any] = []
        for keys in self._dead_homes(id):
            entry = id if ENTRY_ID.match(id) else self.redis.hget(keys.task(id), "dead")
            if entry:
                rows += self.redis.xrange(keys.dead, min=entry, max=entry)
            if rows and not ENTRY_ID.match(id):
                break
        return one_dead_letter(id, rows)

    def retry_dead(self, task_ids: Sequence[str] | None = None) -> DeadRetry:
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
                    self._retry_dead_batch(keys, group, report, unknown)
                report.skipped.update(unknown)
            return report
        for view in self._views():
            start = "-"
            while rows := self.redis.xrange(view.keys.dead, min=start, count=BATCH):
                unknown = {}
                self._retry_dead_batch(view.keys, dead_page(rows, report), report,
                                             unknown)
                report.skipped.update(unknown)
                start = "(" + rows[-1][0].decode()
        return report

    def _retry_dead_batch(self, keys: Keys, ids: list[str], report: DeadRetry,
                                unknown: dict[str, str]) -> None:
        reply = self.scripts.dead_retry(keys=[keys.base], args=ids)
        for gid in note_dead_retry(ids, reply, report, unknown):
            report.retried += self.graph(gid).retry_failed()

    def dead_letter_count(self) -> int:
        """Dead letters kept, all roles and partitions together."""
        return sum([int(self.redis.xlen(keys.dead)) for keys in self.parts.all])

    def dead_letter_counts(self, scan: int = DEAD_LETTER_SCAN) -> dict[str, int]:
        """Dead letters per role, read from each partition's newest ``scan``; older ones
        count under "?"."""
        counts: list[dict[str, int]] = []
        for keys in self.parts.all:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.dead)
                pipe.xrevrange(keys.dead, count=scan)
                total, rows = pipe.execute()
            counts.append(dead_by_role(int(total), rows))
        return sum_counts(counts)

    def purge(self, role: str, reason: str = "purged") -> int:
        """Cancel every task of ``role`` that has not started: ready, scheduled and waiting
        ones (their dependents settle as for any cancel). Running tasks are left alone;
        returns how many were cancelled."""
        return sum([view._purge_here(role, reason) for view in self._views()])

    def _purge_here(self, role: str, reason: str) -> int:
        with self.redis.pipeline(transaction=False) as pipe:
            purge_reads(pipe, self.keys, role)
            ids, start, scopes = purge_start(pipe.execute(raise_on_error=False))
        for scope in scopes:  # tasks waiting for a concurrency slot
            ids += [m.decode() for m in self.redis.lrange(self.keys.blocked(scope), 0, -1)]
        while True:
            page = self.redis.xrange(self.keys.stream(role), min=start, count=BATCH)
            ids += ready_page(page)
            if len(page) < BATCH:
                break
            start = "(" + page[-1][0].decode()
        n = 0
        for i in range(0, len(ids), BATCH):
            n += count_cancelled(run_each(
                self.redis, self.scripts.cancel, [self.keys.base],
                [cancel_args(tid, reason) for tid in ids[i:i + BATCH]], raise_on_error=False))
        return n

    def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Forget dead letters (all when no ids); the tasks' hashes expire with their TTL."""
        for entry in (e for e in ids or () if ENTRY_ID.match(e) and self.parts.count > 1):
            with contextlib.suppress(UnknownTaskError):  # refuses one two partitions use
                self.dead_letter(entry)
        return sum([view._purge_dead_here(ids) for view in self._views()])

    def _purge_dead_here(self, ids: Sequence[str] | None) -> int:
        if ids is None:
            n = int(self.redis.xlen(self.keys.dead))
            self.redis.delete(self.keys.dead)
            return n
        with self.redis.pipeline(transaction=False) as pipe:
            for given in ids:
                pipe.hget(self.keys.task(given), "dead")
            fields = pipe.execute()
        entries = dead_entry_ids(ids, fields)
        return int(self.redis.xdel(self.keys.dead, *entries)) if entries else 0
