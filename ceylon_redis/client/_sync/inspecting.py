# Generated from ceylon_redis/client/_async/inspecting.py by .ci/unasync.py: do not edit.
"""Inspecting: one task, the queues per role, statistics, workers and coordinators."""

from __future__ import annotations

from ...models import QueueInfo, Stats, TaskInfo, WorkerInfo
from ...protocol import parse_task, parse_worker
from ..base import ClientBase
from ..replies import (
    alive_count,
    merge_queues,
    oldest_ready_reads,
    queue_reads,
    queue_rows,
    redis_ms,
    role_names,
    set_oldest_ready,
    stats_from,
    stats_reads,
)


class Inspecting(ClientBase):
    """Read-only views of the namespace, as ``ceylon-redis queues|stats|workers|task`` show."""

    def get(self, task_id: str) -> TaskInfo:
        """Status, attempts, worker, timings and (once final) the result of a task."""
        for keys in self._homes(task_id):
            if raw := self.redis.hgetall(keys.task(task_id)):
                break
        return parse_task(task_id, raw)

    def queues(self) -> list[QueueInfo]:
        """Per role: waiting, ready and running tasks, consumers, live workers."""
        return merge_queues([view._queues_here() for view in self._views()])

    def _queues_here(self) -> list[QueueInfo]:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(self.keys.roles)
            pipe.hgetall(self.keys.schedule_roles)
            pipe.hgetall(self.keys.held)
            members, scheduled, held = pipe.execute()
        roles, feeds = role_names(members, scheduled)
        alive = [w.roles for w in self.workers() if w.alive]
        with self.redis.pipeline(transaction=False) as pipe:
            queue_reads(pipe, self.keys, roles)
            replies = pipe.execute(raise_on_error=False)
        rows = queue_rows(roles, replies, alive, feeds, held)
        with self.redis.pipeline(transaction=False) as pipe:
            if oldest_ready_reads(pipe, self.keys, rows, replies):
                firsts = pipe.execute()
                now = self.scripts.clock(keys=[self.keys.base])
                set_oldest_ready(rows, firsts, now)
        return rows

    def coordinators_alive(self) -> int:
        """Coordinators whose heartbeat is fresh (statistics move only while one runs)."""
        now = self.scripts.clock(keys=[self.keys.base])
        return alive_count(self.settings, now, self.redis.zrange(
            self.keys.coordinators, 0, -1, withscores=True))

    def stats(self, role: str | None = None) -> Stats:
        """Counts, success rate, retries, wait/run percentiles and throughput, per role."""
        return self._stats_of(self.queues(), role)

    def _stats_of(self, queues: list[QueueInfo], role: str | None = None) -> Stats:
        """``stats`` with the queues read already (the dashboard shows both)."""
        roles = [role] if role else [q.role for q in queues]
        with self.redis.pipeline(transaction=False) as pipe:
            stats_reads(pipe, self.parts, roles)
            replies = pipe.execute()
        now = self.scripts.clock(keys=[self.keys.base])
        return stats_from(self.settings, self.parts, roles, replies, queues, now)

    def workers(self) -> list[WorkerInfo]:
        """Registered workers: how old their heartbeat is, and whether they are alive (or
        late: silent for over two heartbeat intervals, maybe dead)."""
        now_ms = redis_ms(self.scripts.clock(keys=[self.keys.base]))
        entries = self.redis.zrange(self.keys.workers, 0, -1, withscores=True)
        with self.redis.pipeline(transaction=False) as pipe:
            for wid, _ in entries:
                pipe.hgetall(self.keys.worker(wid.decode()))
            infos = pipe.execute()
        return [parse_worker(wid.decode(), info, score, now_ms, self.settings)
                for (wid, score), info in zip(entries, infos)]
