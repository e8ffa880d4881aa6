# Generated from ceylon_redis/client/_async/producing.py by .ci/unasync.py: do not edit.
"""Producing: enqueue tasks, cancel them, and wait for their results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from ...models import OnFailure, TaskResult
from ...partitions import Link, link_calls
from ...protocol import Dep, TaskSpec
from ...scripts import run_each
from ...waiting import SyncWaiter, OnResult, check_on_result
from ..base import ClientBase, cancel_args
from ..replies import cancelled, known


class Producing(ClientBase):
    """Enqueue (one, many), cancel, and wait for results over one reply channel."""

    _waiter: SyncWaiter

    def enqueue(self, role: str, data: Any = None, *, name: str | None = None,
                      task_id: str | None = None, depends_on: Iterable[str | Dep] = (),
                      on_failure: OnFailure = "cancel", max_attempts: int | None = None,
                      result_ttl: int | None = None, backoff: float | None = None,
                      timeout: float | None = None, delay: float | dt.timedelta | None = None,
                      at: dt.datetime | float | None = None,
                      priority: int | None = None, limit_key: str | None = None) -> str:
        """Put one task on ``role``'s queue (or WAITING on ``depends_on``); returns its id.

        ``on_failure`` says what this task does if a prerequisite fails: end
        CANCELLED (default), ``"run"`` anyway, or ``"ignore"`` it; ``Dep`` sets it per edge.
        ``max_attempts``, ``backoff`` (seconds before the first retry) and ``timeout``
        (seconds per attempt) override the worker's defaults; ``delay`` (seconds) or
        ``at`` (aware datetime or epoch seconds) hold the task until then. ``priority``,
        0 to 9 (default 5): a worker takes the highest waiting first. ``limit_key``: what
        a per-key limit of the role counts it under (say a customer id).
        """
        spec = self._spec(role, data, name=name, task_id=task_id, depends_on=depends_on,
                          on_failure=on_failure, max_attempts=max_attempts,
                          result_ttl=result_ttl, backoff=backoff, timeout=timeout,
                          delay=delay, at=at, priority=priority, limit_key=limit_key)
        self._run_enqueue([spec])
        return spec.id

    def enqueue_many(self, role: str, items: Iterable[Any], *,
                           names: Sequence[str] | None = None,
                           max_attempts: int | None = None,
                           result_ttl: int | None = None, **options: Any) -> list[str]:
        """Enqueue many tasks of one role, pipelined; returns their ids in order.

        ``options``: enqueue's ``backoff``, ``timeout``, ``delay``, ``at``, ``priority`` and
        ``limit_key``, for each task.
        """
        specs = self._specs(role, items, names, max_attempts=max_attempts,
                            result_ttl=result_ttl, **options)
        self._run_enqueue(specs)
        return [s.id for s in specs]

    def cancel(self, task_id: str, reason: str | None = None) -> bool:
        """Cancel a task that is not final (its dependents settle as for a failure).

        Returns False when it was already final. A running async handler is
        cancelled (a sync one runs to its end); its outcome is dropped either way.
        """
        for keys in self._homes(task_id):
            reply = self.scripts.cancel(keys=[keys.base],
                                              args=cancel_args(task_id, reason))
            if known(reply):
                break
        return cancelled(task_id, reply)

    def _link(self, links: list[Link]) -> list[Link]:
        """Run link.lua for each edge where its prerequisite lives; the edges not found."""
        missing = []
        for home, group in link_calls(self.parts, links):
            if group[0].settled(self.scripts.link(keys=[home.base],
                                                     args=group[0].group_args(group))):
                continue
            for link in group:  # one was not there (a graph's task lives elsewhere): probe
                for at in self._homes(link.prerequisite):
                    reply = self.scripts.link(keys=[at.base], args=link.group_args([link]))
                    if link.settled(reply):
                        break
                else:
                    missing.append(link)
        return missing

    def _run_enqueue(self, specs: list[TaskSpec], graph_id: str = "",
                           graph_ttl: int = 0) -> None:
        """Link, then run the enqueue script once per batch and partition; WAIT if asked."""
        links, calls = self._plan(specs, graph_id, graph_ttl)
        if not self._checked:
            self.parts.check(self.redis)
            self._checked = True
        if links and (missing := self._link(links)):
            raise missing[0].unknown()
        if not self.settings.wait_replicas:
            replies = []
            for keys, batches in calls:
                replies += run_each(self.redis, self.scripts.enqueue, [keys.base],
                                                batches)
        else:
            with self.redis.pipeline(transaction=False) as pipe:
                for keys, batches in calls:
                    for args in batches:
                        self.scripts.enqueue(keys=[keys.base], args=args, client=pipe)
                self._wait_for_replicas(pipe)
                replies = pipe.execute()
        self._check_replies(replies, sum(len(b) for _, b in calls), [s.id for s in specs])

    def enqueue_and_wait(self, role: str, data: Any = None, *,
                               timeout: float | None = None, **options: Any) -> TaskResult:
        """Enqueue one task and wait for its result, one round trip sooner than enqueue + wait.

        ``timeout``: seconds to wait (TaskTimeoutError after; the task stays queued).
        ``options``: enqueue's keyword options, but for its per-attempt ``timeout``.
        """
        spec = self._spec(role, data, **options)

        def send(channel: str) -> None:
            spec.reply_to = channel
            self._run_enqueue([spec])

        with self._explained():
            return (self._waiter.wait_many([spec.id], timeout, None, send))[0]

    def wait(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The task's result once it is final; TaskTimeoutError after ``timeout`` seconds."""
        return (self.wait_many([task_id], timeout))[0]

    def wait_many(self, task_ids: Sequence[str], timeout: float | None = None, *,
                        on_result: OnResult | None = None) -> list[TaskResult]:
        """Results of all the tasks, in order, over one connection.

        ``on_result`` is called with each result as it arrives, in no set order.
        """
        check_on_result(on_result)
        with self._explained():
            return self._waiter.wait_many(list(task_ids), timeout, on_result)
