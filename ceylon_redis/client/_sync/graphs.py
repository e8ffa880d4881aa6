# Generated from ceylon_redis/client/_async/graphs.py by .ci/unasync.py: do not edit.
"""Graphs: tasks of any roles enqueued together with dependencies among them, and the
handle that reads, cancels, retries and waits on one.

A handle holds only ids: every call reads Redis afresh. ``client.graph(graph_id)``
makes one for a graph enqueued elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import raise_for_script_error
from ...keys import check_task_id
from ...models import GraphInfo, TaskInfo, TaskResult
from ...partitions import relinks
from ...protocol import TaskDef, parse_graph, parse_task
from .producing import Producing

GRAPH_CANCELLED = "graph {} cancelled"


class Graph:
    """A graph of tasks, for blocking code."""

    def __init__(self, client: Producing, graph_id: str,
                 task_ids: list[str] | None = None) -> None:
        self.client = client
        self.id = graph_id
        self.keys = client.parts.home(graph_id)
        """The keys of the graph's partition, where all its tasks live."""
        self._task_ids = task_ids

    def __repr__(self) -> str:
        return f"Graph({self.id!r})"

    def task_ids(self) -> list[str]:
        """The graph's task ids (in the order enqueued, when this handle enqueued them)."""
        if self._task_ids is None:
            self._task_ids = _ids(self.client.redis.smembers(
                self.keys.graph_tasks(self.id)))
        return self._task_ids

    def info(self) -> GraphInfo:
        """One status (running, completed, failed, cancelled) and counts of final tasks."""
        raw = self.client.redis.hgetall(self.keys.graph(self.id))
        return parse_graph(self.id, raw)

    def tasks(self) -> list[TaskInfo]:
        """Every task of the graph, as ``client.get`` shows it."""
        ids = self.task_ids()
        with self.client.redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(self.keys.task(tid))
            raws = pipe.execute()
        return [parse_task(tid, raw) for tid, raw in zip(ids, raws) if raw]

    def cancel(self, reason: str | None = None) -> int:
        """Cancel every task not yet final; returns how many ended CANCELLED."""
        reply = self.client.scripts.cancel(
            keys=[self.keys.base], args=[reason or GRAPH_CANCELLED.format(self.id), self.id])
        raise_for_script_error(reply)
        return int(reply[1])

    def retry_failed(self) -> int:
        """Run the failed and cancelled tasks again; returns how many were reset.

        With partitions, a retried task's prerequisites outside the graph release it again
        through a coordinator; a retry cut off before that is mended by calling this again.
        """
        args = _retry_args(self.id, self.client.parts.count)
        reply = self.client.scripts.graph_retry(keys=[self.keys.base], args=args)
        raise_for_script_error(reply)
        for link in self.client._link(relinks(self.keys, reply[2])):
            self.client.scripts.release(keys=[self.keys.base], args=link.gone())
        return int(reply[1])

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Every task's result once all are final, in task order."""
        return self.client.wait_many(self.task_ids(), timeout)


class Graphs(Producing):
    """Enqueueing graphs, and handles on them."""

    def enqueue_graph(self, tasks: Sequence[TaskDef], *, graph_id: str | None = None,
                            ttl: int | None = None) -> Graph:
        """Enqueue tasks of any roles with dependencies among them, all or nothing.

        Returns the graph's handle; its keys expire together ``ttl`` seconds
        (default ``result_ttl``) after its last task ends.
        """
        gid, specs, gttl = self._graph_specs(tasks, graph_id, ttl)
        self._run_enqueue(specs, gid, gttl)
        return Graph(self, gid, [s.id for s in specs])

    def graph(self, graph_id: str) -> Graph:
        """A handle on a graph enqueued earlier (anywhere)."""
        return Graph(self, check_task_id(graph_id))


def _retry_args(graph_id: str, partitions: int) -> list[str]:
    """graph_retry.lua's arguments: with partitions, edges from outside are linked again."""
    return [graph_id, "1" if partitions > 1 else ""]


def _ids(members: Any) -> list[str]:
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
