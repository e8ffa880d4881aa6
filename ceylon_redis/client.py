"""Producers: ``Client`` for any Python program, ``AsyncClient`` for asyncio. Same methods.

::

    client = Client()                 # CEYLON_REDIS_URL / REDIS_URL, else localhost
    task_id = client.enqueue("resize", {"path": "a.png"})
    result = client.wait(task_id, timeout=10)
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from .connection import async_redis, sync_redis
from .errors import ReplicationError, UnknownTaskError, ValidationError, raise_for_script_error
from .graphs import AsyncGraph, Graph
from .keys import Keys, check_name, check_task_id
from .models import (
    DeadLetter,
    DeadRetry,
    OnFailure,
    QueueInfo,
    Stats,
    TaskInfo,
    TaskResult,
    WorkerInfo,
)
from .partitions import Link, Partitions, link_calls
from .protocol import (
    Dep,
    TaskDef,
    TaskSpec,
    enqueue_args,
    graph_specs,
    last_delivered,
    make_spec,
    make_specs,
    new_task_id,
    parse_dead_letter,
    parse_queue,
    parse_task,
    parse_worker,
    policy_code,
)
from .scripts import Scripts, run_each, run_each_async
from .settings import Settings
from .stats import role_stats
from .waiting import AsyncWaiter, OnResult, SyncWaiter, check_on_result

_BATCH = 1000
_Self = TypeVar("_Self", bound="_Base")
_ENTRY_ID = re.compile(r"^\d+-\d+$")
_UNKNOWN_TASK = "unknown task"
"""How dead_retry.lua's reason for a task it did not find begins."""

DEAD_LETTER_SCAN = 10_000
"""Newest dead letters read to count them per role (a malformed entry's role is "")."""


def _dead_by_role(total: int, rows: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, fields in rows:
        role = fields.get(b"role", b"").decode(errors="replace")
        counts[role] = counts.get(role, 0) + 1
    if total > len(rows):
        counts["?"] = total - len(rows)
    return counts


class _Base:
    """What both clients share: settings, key names, and turning calls into task specs."""

    def __init__(self, url: str | None, prefix: str | None, settings: Settings | None) -> None:
        self.settings = Settings.resolve(settings, url, prefix)
        self.keys = Keys(self.settings.prefix)
        """Partition 0's keys: the whole namespace unless it has partitions."""
        self.parts = Partitions(self.settings.prefix, self.settings.partitions)
        self._checked = False
        """Whether the partition count in Redis was found to agree with the settings."""
        self.redis: Any = None

    def _explained(self) -> contextlib.AbstractContextManager[None]:
        """Outage errors of the reply channel explained as the commands' are (own redis only)."""
        explained = getattr(self.redis, "explained", None)
        return explained() if explained is not None else contextlib.nullcontext()

    def _spec(self, role: str, data: Any, **options: Any) -> TaskSpec:
        return make_spec(self.settings, role, data, **options)

    def _specs(self, role: str, items: Iterable[Any], names: Sequence[str] | None,
               **options: Any) -> list[TaskSpec]:
        return make_specs(self.settings, role, items, names, **options)

    def _graph_specs(self, tasks: Sequence[TaskDef], graph_id: str | None,
                     ttl: int | None) -> tuple[str, list[TaskSpec], int]:
        gid = check_task_id(graph_id) if graph_id is not None else new_task_id()
        gttl = int(ttl or self.settings.result_ttl)
        if gttl < 1:
            raise ValidationError(f"graph ttl must be at least 1 second, not {gttl}")
        specs = graph_specs(self.settings, tasks)
        for spec in specs:
            spec.ttl = gttl
        return gid, specs, gttl

    def _plan(self, specs: list[TaskSpec], graph_id: str = "",
              graph_ttl: int = 0) -> tuple[list[Link], list[tuple[Keys, list[list[Any]]]]]:
        """The enqueue script calls for ``specs``, each with its partition's keys, and the
        links to make first. A graph goes whole to its graph id's partition, other tasks to
        their own; with partitions, every prerequisite enqueued in another call is linked
        (it may live anywhere) and releases its dependent through a coordinator."""
        if self.parts.count == 1 and not graph_id:
            return [], [(self.keys, self._batches(specs))]
        groups: dict[Keys, list[TaskSpec]] = {}
        if self.parts.count == 1:
            groups[self.keys] = specs
        for spec in specs if self.parts.count > 1 else ():
            groups.setdefault(self.parts.home(graph_id or spec.id), []).append(spec)
        links: list[Link] = []
        if self.parts.count > 1:
            in_call = {s.id for s in specs}
            for keys, group in groups.items():
                for spec in group:
                    outside = [(d, p) for d, p in spec.depends_on if d not in in_call]
                    spec.linked = frozenset(d for d, _ in outside)
                    links.extend(Link(keys, spec.id, d, policy_code(p)) for d, p in outside)
        if graph_id:
            return links, [(keys, [enqueue_args(group, graph_id, graph_ttl)])
                           for keys, group in groups.items()]
        return links, [(keys, self._batches(group)) for keys, group in groups.items()]

    def _views(self: _Self) -> list[_Self]:
        """This client once per partition, each with that partition's keys (only reads)."""
        if self.parts.count == 1:
            return [self]
        views = []
        for keys in self.parts.all:
            view = copy.copy(self)
            view.keys = keys
            views.append(view)
        return views

    def _homes(self, task_id: str) -> list[Keys]:
        """The partitions to look for a task in: its own, then the others (a graph's task
        lives in its graph's)."""
        home = self.parts.home(check_task_id(task_id))
        return [home, *self.parts.others(home)]

    def _dead_homes(self, id: str) -> list[Keys]:
        """Where a dead letter may be: any partition for an entry id, else its task's."""
        return self.parts.all if _ENTRY_ID.match(id) else self._homes(id)

    def _cancel_args(self, task_id: str, reason: str | None) -> list[Any]:
        return [reason or "cancelled", "", check_task_id(task_id)]

    def _queue_rows(self, roles: list[str], replies: list[Any],
                    alive: list[list[str]]) -> list[QueueInfo]:
        return [parse_queue(role, _int(replies[4 * i]), _list(replies[4 * i + 1]), alive,
                            _int(replies[4 * i + 2]), _int(replies[4 * i + 3]))
                for i, role in enumerate(roles)]

    def _oldest_ready_pipe(self, pipe: Any, rows: list[QueueInfo], replies: list[Any]) -> bool:
        """Queue on ``pipe`` a read of each role's first ready entry; False if no role has a
        ready task."""
        ready = [(i, q) for i, q in enumerate(rows) if q.ready]
        for i, q in ready:
            start = last_delivered(_list(replies[4 * i + 1]))
            pipe.xrange(self.keys.stream(q.role), min=start if start == "-" else "(" + start,
                        count=1)
        return bool(ready)

    @staticmethod
    def _set_oldest_ready(rows: list[QueueInfo], firsts: list[Any], now: Any) -> None:
        now_ms = _redis_ms(now)
        for q, first in zip((q for q in rows if q.ready), firsts):
            if first:
                q.oldest_ready_age = max(0.0, (now_ms - int(first[0][0].split(b"-")[0])) / 1000)

    def _stats(self, roles: list[str], replies: list[Any], queues: list[QueueInfo],
               now: Any) -> Stats:
        """Stats from the replies of ``_stats_pipe`` (one HGETALL per role, ZRANGE) and the
        Redis clock."""
        *raws, coordinators = replies
        alive = self._alive_count(now, coordinators)
        minute = now[0] // 60
        by_role = {q.role: q for q in queues}
        n = self.parts.count  # one hash per role and partition, summed
        rows = [role_stats(r, raws[i * n:(i + 1) * n], minute,
                           [by_role[r]] if r in by_role else [])
                for i, r in enumerate(roles)]
        overall = role_stats("*", raws, minute, [by_role[r] for r in roles if r in by_role])
        return Stats(overall=overall, roles=rows, coordinators_alive=alive)

    def _stats_pipe(self, pipe: Any, roles: list[str]) -> None:
        for r in roles:
            for keys in self.parts.all:
                pipe.hgetall(keys.stats(r))
        pipe.zrange(self.keys.coordinators, 0, -1, withscores=True)

    def _alive_count(self, now: tuple[int, int], scores: list[Any]) -> int:
        limit = self.settings.worker_timeout * 1000
        return sum(1 for _, score in scores if _redis_ms(now) - score <= limit)

    def _purge_reads(self, pipe: Any, role: str) -> None:
        check_name("role", role)
        pipe.zrange(self.keys.scheduled(role), 0, -1)
        pipe.smembers(self.keys.waiting(role))
        pipe.xinfo_groups(self.keys.stream(role))

    @staticmethod
    def _purge_start(replies: list[Any]) -> tuple[list[str], str]:
        """Ids of the scheduled and waiting tasks, and where the ready entries begin."""
        held = [m.decode() for m in [*_list(replies[0]), *(replies[1] or ())]]
        start = last_delivered(_list(replies[2]))
        return held, start if start == "-" else "(" + start

    @staticmethod
    def _ready_page(entries: list[Any]) -> list[str]:
        return [f[b"id"].decode() for _, f in entries if f.get(b"id")]

    def _dead_entry_ids(self, ids: Sequence[str], dead_fields: Sequence[Any]) -> list[str]:
        """Entry ids of dead letters named by entry id or by task id (its ``dead`` field)."""
        out = []
        for given, field in zip(ids, dead_fields):
            if _ENTRY_ID.match(given):
                out.append(given)
            elif field:
                out.append(field.decode())
        return out

    def _dead_page(self, rows: list[Any], report: DeadRetry) -> list[str]:
        """The task ids of one page of dead letters; malformed entries are reported skipped."""
        ids = []
        for entry_id, fields in rows:
            tid = fields.get(b"task", b"").decode()
            if tid:
                ids.append(tid)
            else:
                report.skipped[entry_id.decode()] = ("malformed entry, no task to retry "
                                                     "(purge it)")
        return ids

    def _wait_for_replicas(self, pipe: Any) -> None:
        """Queue a WAIT on ``pipe`` (same connection as the writes) when settings ask for one."""
        if self.settings.wait_replicas:
            pipe.execute_command("WAIT", self.settings.wait_replicas,
                                 max(1, round(self.settings.wait_timeout * 1000)))

    def _check_replies(self, replies: list[Any], scripts: int, ids: list[str]) -> None:
        """Raise the first script error, then ReplicationError if too few replicas acked."""
        for reply in replies[:scripts]:
            raise_for_script_error(reply)
        wanted = self.settings.wait_replicas
        if wanted and replies[-1] < wanted:
            raise ReplicationError(
                f"{len(ids)} task(s) enqueued on the master, but only {replies[-1]} of "
                f"{wanted} replicas acknowledged them within {self.settings.wait_timeout:g} s "
                "(Settings.wait_replicas): a failover now would lose them", ids)

    def _batches(self, specs: list[TaskSpec]) -> list[list[Any]]:
        if len(specs) > 1 and len({s.id for s in specs}) != len(specs):
            enqueue_args(specs)  # raises, naming the id that appears twice; nothing written
        return [enqueue_args(specs[i:i + _BATCH]) for i in range(0, len(specs), _BATCH)]


class AsyncClient(_Base):
    """The asyncio producer: enqueue, wait, inspect."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 settings: Settings | None = None, redis: Any = None) -> None:
        super().__init__(url, prefix, settings)
        self.redis = (redis if redis is not None
                      else async_redis(self.settings.url, timeout=self.settings.socket_timeout))
        self._owns_redis = redis is None
        self.scripts = Scripts.register(self.redis)
        self._waiter = AsyncWaiter(self.redis, self.parts, self.scripts.watch)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening for results and close the connections this client opened."""
        await self._waiter.close()
        if self._owns_redis:
            await self.redis.aclose()

    async def enqueue(self, role: str, data: Any = None, *, name: str | None = None,
                      task_id: str | None = None, depends_on: Iterable[str | Dep] = (),
                      on_failure: OnFailure = "cancel", max_attempts: int | None = None,
                      result_ttl: int | None = None, backoff: float | None = None,
                      timeout: float | None = None, delay: float | dt.timedelta | None = None,
                      at: dt.datetime | float | None = None) -> str:
        """Put one task on ``role``'s queue (or WAITING on ``depends_on``); returns its id.

        ``on_failure`` says what this task does if a prerequisite fails: end
        CANCELLED (default), ``"run"`` anyway, or ``"ignore"`` it; ``Dep`` sets it per edge.
        ``max_attempts``, ``backoff`` (seconds before the first retry) and ``timeout``
        (seconds per attempt) override the worker's defaults; ``delay`` (seconds) or
        ``at`` (aware datetime or epoch seconds) hold the task until then.
        """
        spec = self._spec(role, data, name=name, task_id=task_id, depends_on=depends_on,
                          on_failure=on_failure, max_attempts=max_attempts,
                          result_ttl=result_ttl, backoff=backoff, timeout=timeout,
                          delay=delay, at=at)
        await self._run_enqueue([spec])
        return spec.id

    async def enqueue_many(self, role: str, items: Iterable[Any], *,
                           names: Sequence[str] | None = None,
                           max_attempts: int | None = None,
                           result_ttl: int | None = None, **options: Any) -> list[str]:
        """Enqueue many tasks of one role, pipelined; returns their ids in order.

        ``options``: enqueue's ``backoff``, ``timeout``, ``delay`` and ``at``, for each task.
        """
        specs = self._specs(role, items, names, max_attempts=max_attempts,
                            result_ttl=result_ttl, **options)
        await self._run_enqueue(specs)
        return [s.id for s in specs]

    async def enqueue_graph(self, tasks: Sequence[TaskDef], *, graph_id: str | None = None,
                            ttl: int | None = None) -> AsyncGraph:
        """Enqueue tasks of any roles with dependencies among them, all or nothing.

        Returns the graph's handle; its keys expire together ``ttl`` seconds
        (default ``result_ttl``) after its last task ends.
        """
        gid, specs, gttl = self._graph_specs(tasks, graph_id, ttl)
        await self._run_enqueue(specs, gid, gttl)
        return AsyncGraph(self, gid, [s.id for s in specs])

    def graph(self, graph_id: str) -> AsyncGraph:
        """A handle on a graph enqueued earlier (anywhere)."""
        return AsyncGraph(self, check_task_id(graph_id))

    async def cancel(self, task_id: str, reason: str | None = None) -> bool:
        """Cancel a task that is not final (its dependents settle as for a failure).

        Returns False when it was already final. A running async handler is
        cancelled (a sync one runs to its end); its outcome is dropped either way.
        """
        for keys in self._homes(task_id):
            reply = await self.scripts.cancel(keys=[keys.base],
                                              args=self._cancel_args(task_id, reason))
            if _known(reply):
                break
        return _cancelled(task_id, reply)

    async def _link(self, links: list[Link]) -> list[Link]:
        """Run link.lua for each edge where its prerequisite lives; the edges not found."""
        missing = []
        for home, group in link_calls(self.parts, links):
            if group[0].settled(await self.scripts.link(keys=[home.base],
                                                     args=group[0].group_args(group))):
                continue
            for link in group:  # one was not there (a graph's task lives elsewhere): probe
                for at in self._homes(link.prerequisite):
                    reply = await self.scripts.link(keys=[at.base], args=link.group_args([link]))
                    if link.settled(reply):
                        break
                else:
                    missing.append(link)
        return missing

    async def _run_enqueue(self, specs: list[TaskSpec], graph_id: str = "",
                           graph_ttl: int = 0) -> None:
        """Link, then run the enqueue script once per batch and partition; WAIT if asked."""
        links, calls = self._plan(specs, graph_id, graph_ttl)
        if not self._checked:
            await self.parts.check_async(self.redis)
            self._checked = True
        if links and (missing := await self._link(links)):
            raise missing[0].unknown()
        if not self.settings.wait_replicas:
            replies = []
            for keys, batches in calls:
                replies += await run_each_async(self.redis, self.scripts.enqueue, [keys.base],
                                                batches)
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys, batches in calls:
                    for args in batches:
                        await self.scripts.enqueue(keys=[keys.base], args=args, client=pipe)
                self._wait_for_replicas(pipe)
                replies = await pipe.execute()
        self._check_replies(replies, sum(len(b) for _, b in calls), [s.id for s in specs])

    async def enqueue_and_wait(self, role: str, data: Any = None, *,
                               timeout: float | None = None, **options: Any) -> TaskResult:
        """Enqueue one task and wait for its result, one round trip sooner than enqueue + wait.

        ``timeout``: seconds to wait (TaskTimeoutError after; the task stays queued).
        ``options``: enqueue's keyword options, but for its per-attempt ``timeout``.
        """
        spec = self._spec(role, data, **options)

        async def send(channel: str) -> None:
            spec.reply_to = channel
            await self._run_enqueue([spec])

        with self._explained():
            return (await self._waiter.wait_many([spec.id], timeout, None, send))[0]

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The task's result once it is final; TaskTimeoutError after ``timeout`` seconds."""
        return (await self.wait_many([task_id], timeout))[0]

    async def wait_many(self, task_ids: Sequence[str], timeout: float | None = None, *,
                        on_result: OnResult | None = None) -> list[TaskResult]:
        """Results of all the tasks, in order, over one connection.

        ``on_result`` is called with each result as it arrives, in no set order.
        """
        check_on_result(on_result)
        with self._explained():
            return await self._waiter.wait_many(list(task_ids), timeout, on_result)

    async def get(self, task_id: str) -> TaskInfo:
        """Status, attempts, worker, timings and (once final) the result of a task."""
        for keys in self._homes(task_id):
            if raw := await self.redis.hgetall(keys.task(task_id)):
                break
        return parse_task(task_id, raw)

    async def queues(self) -> list[QueueInfo]:
        """Per role: waiting, ready and running tasks, consumers, live workers."""
        return _merge_queues([await view._queues_here() for view in self._views()])

    async def _queues_here(self) -> list[QueueInfo]:
        roles = sorted(r.decode() for r in await self.redis.smembers(self.keys.roles))
        alive = [w.roles for w in await self.workers() if w.alive]
        async with self.redis.pipeline(transaction=False) as pipe:
            for role in roles:
                pipe.xlen(self.keys.stream(role))
                pipe.xinfo_groups(self.keys.stream(role))
                pipe.scard(self.keys.waiting(role))
                pipe.zcard(self.keys.scheduled(role))
            replies = await pipe.execute(raise_on_error=False)
        rows = self._queue_rows(roles, replies, alive)
        async with self.redis.pipeline(transaction=False) as pipe:
            if self._oldest_ready_pipe(pipe, rows, replies):
                firsts = await pipe.execute()
                now = await self.scripts.clock(keys=[self.keys.base])
                self._set_oldest_ready(rows, firsts, now)
        return rows

    async def coordinators_alive(self) -> int:
        """Coordinators whose heartbeat is fresh (statistics move only while one runs)."""
        now = await self.scripts.clock(keys=[self.keys.base])
        return self._alive_count(now, await self.redis.zrange(
            self.keys.coordinators, 0, -1, withscores=True))

    async def stats(self, role: str | None = None) -> Stats:
        """Counts, success rate, retries, wait/run percentiles and throughput, per role."""
        queues = await self.queues()
        roles = [role] if role else [q.role for q in queues]
        async with self.redis.pipeline(transaction=False) as pipe:
            self._stats_pipe(pipe, roles)
            replies = await pipe.execute()
        return self._stats(roles, replies, queues, await self.scripts.clock(keys=[self.keys.base]))

    async def workers(self) -> list[WorkerInfo]:
        """Registered workers, with whether their heartbeat is fresh."""
        now_ms = _redis_ms(await self.scripts.clock(keys=[self.keys.base]))
        entries = await self.redis.zrange(self.keys.workers, 0, -1, withscores=True)
        async with self.redis.pipeline(transaction=False) as pipe:
            for wid, _ in entries:
                pipe.hgetall(self.keys.worker(wid.decode()))
            infos = await pipe.execute()
        limit = self.settings.worker_timeout * 1000
        return [parse_worker(wid.decode(), info, score, now_ms - score <= limit)
                for (wid, score), info in zip(entries, infos)]

    async def dead_letters(self, role: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first (of one role if given), from every partition."""
        return _newest([await view._dead_letters_here(role, limit) for view in self._views()],
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
            entry = id if _ENTRY_ID.match(id) else await self.redis.hget(keys.task(id), "dead")
            if entry:
                rows += await self.redis.xrange(keys.dead, min=entry, max=entry)
            if rows and not _ENTRY_ID.match(id):
                break
        return _one_dead_letter(id, rows)

    async def retry_dead(self, task_ids: Sequence[str] | None = None) -> DeadRetry:
        """Run dead-lettered tasks again with a fresh attempt budget (all when no ids).

        A graph's task is retried with its graph's ``retry_failed()``, which also
        re-runs what its failure cancelled.
        """
        report = DeadRetry()
        if task_ids is not None:
            ids = [check_task_id(t) for t in task_ids]
            for i in range(0, len(ids), _BATCH):
                unknown: dict[str, str] = {}
                for keys, group in self.parts.probes(ids[i:i + _BATCH], unknown.__contains__):
                    await self._retry_dead_batch(keys, group, report, unknown)
                report.skipped.update(unknown)
            return report
        for view in self._views():
            start = "-"
            while rows := await self.redis.xrange(view.keys.dead, min=start, count=_BATCH):
                unknown = {}
                await self._retry_dead_batch(view.keys, self._dead_page(rows, report), report,
                                             unknown)
                report.skipped.update(unknown)
                start = "(" + rows[-1][0].decode()
        return report

    async def _retry_dead_batch(self, keys: Keys, ids: list[str], report: DeadRetry,
                                unknown: dict[str, str]) -> None:
        reply = await self.scripts.dead_retry(keys=[keys.base], args=ids)
        for gid in _note_dead_retry(ids, reply, report, unknown):
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
            counts.append(_dead_by_role(int(total), rows))
        return _sum_counts(counts)

    async def purge(self, role: str, reason: str = "purged") -> int:
        """Cancel every task of ``role`` that has not started: ready, scheduled and waiting
        ones (their dependents settle as for any cancel). Running tasks are left alone;
        returns how many were cancelled."""
        return sum([await view._purge_here(role, reason) for view in self._views()])

    async def _purge_here(self, role: str, reason: str) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            self._purge_reads(pipe, role)
            ids, start = self._purge_start(await pipe.execute(raise_on_error=False))
        while True:
            page = await self.redis.xrange(self.keys.stream(role), min=start, count=_BATCH)
            ids += self._ready_page(page)
            if len(page) < _BATCH:
                break
            start = "(" + page[-1][0].decode()
        cancelled = 0
        for i in range(0, len(ids), _BATCH):
            cancelled += _count_cancelled(await run_each_async(
                self.redis, self.scripts.cancel, [self.keys.base],
                [self._cancel_args(tid, reason) for tid in ids[i:i + _BATCH]],
                raise_on_error=False))
        return cancelled

    async def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Forget dead letters (all when no ids); the tasks' hashes expire with their TTL."""
        for entry in (e for e in ids or () if _ENTRY_ID.match(e) and self.parts.count > 1):
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
        entries = self._dead_entry_ids(ids, fields)
        return int(await self.redis.xdel(self.keys.dead, *entries)) if entries else 0


class Client(_Base):
    """The blocking producer, for scripts and web apps (Flask, Django); AsyncClient's methods."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 settings: Settings | None = None, redis: Any = None) -> None:
        super().__init__(url, prefix, settings)
        self.redis = (redis if redis is not None
                      else sync_redis(self.settings.url, timeout=self.settings.socket_timeout))
        self._owns_redis = redis is None
        self.scripts = Scripts.register(self.redis)
        self._waiter = SyncWaiter(self.redis, self.parts, self.scripts.watch)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening for results and close the connections this client opened."""
        self._waiter.close()
        if self._owns_redis:
            self.redis.close()

    def enqueue(self, role: str, data: Any = None, *, name: str | None = None,
                task_id: str | None = None, depends_on: Iterable[str | Dep] = (),
                on_failure: OnFailure = "cancel", max_attempts: int | None = None,
                result_ttl: int | None = None, backoff: float | None = None,
                timeout: float | None = None, delay: float | dt.timedelta | None = None,
                at: dt.datetime | float | None = None) -> str:
        """Put one task on ``role``'s queue (or WAITING on ``depends_on``); returns its id.

        ``on_failure`` says what this task does if a prerequisite fails: end
        CANCELLED (default), ``"run"`` anyway, or ``"ignore"`` it; ``Dep`` sets it per edge.
        ``max_attempts``, ``backoff`` (seconds before the first retry) and ``timeout``
        (seconds per attempt) override the worker's defaults; ``delay`` (seconds) or
        ``at`` (aware datetime or epoch seconds) hold the task until then.
        """
        spec = self._spec(role, data, name=name, task_id=task_id, depends_on=depends_on,
                          on_failure=on_failure, max_attempts=max_attempts,
                          result_ttl=result_ttl, backoff=backoff, timeout=timeout,
                          delay=delay, at=at)
        self._run_enqueue([spec])
        return spec.id

    def enqueue_many(self, role: str, items: Iterable[Any], *,
                     names: Sequence[str] | None = None, max_attempts: int | None = None,
                     result_ttl: int | None = None, **options: Any) -> list[str]:
        """Enqueue many tasks of one role, pipelined; returns their ids in order.

        ``options``: enqueue's ``backoff``, ``timeout``, ``delay`` and ``at``, for each task.
        """
        specs = self._specs(role, items, names, max_attempts=max_attempts,
                            result_ttl=result_ttl, **options)
        self._run_enqueue(specs)
        return [s.id for s in specs]

    def enqueue_graph(self, tasks: Sequence[TaskDef], *, graph_id: str | None = None,
                      ttl: int | None = None) -> Graph:
        """Enqueue tasks of any roles with dependencies among them, all or nothing.

        Returns the graph's handle; its keys expire together ``ttl`` seconds
        (default ``result_ttl``) after its last task ends.
        """
        gid, specs, gttl = self._graph_specs(tasks, graph_id, ttl)
        self._run_enqueue(specs, gid, gttl)
        return Graph(self, gid, [s.id for s in specs])

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
        if missing := self._link(links):
            raise missing[0].unknown()
        if not self.settings.wait_replicas:
            replies = []
            for keys, batches in calls:
                replies += run_each(self.redis, self.scripts.enqueue, [keys.base], batches)
        else:
            with self.redis.pipeline(transaction=False) as pipe:
                for keys, batches in calls:
                    for args in batches:
                        self.scripts.enqueue(keys=[keys.base], args=args, client=pipe)
                self._wait_for_replicas(pipe)
                replies = pipe.execute()
        self._check_replies(replies, sum(len(b) for _, b in calls), [s.id for s in specs])

    def graph(self, graph_id: str) -> Graph:
        """A handle on a graph enqueued earlier (anywhere)."""
        return Graph(self, check_task_id(graph_id))

    def cancel(self, task_id: str, reason: str | None = None) -> bool:
        """Cancel a task that is not final (its dependents settle as for a failure).

        Returns False when it was already final. A running async handler is
        cancelled (a sync one runs to its end); its outcome is dropped either way.
        """
        for keys in self._homes(task_id):
            reply = self.scripts.cancel(keys=[keys.base], args=self._cancel_args(task_id, reason))
            if _known(reply):
                break
        return _cancelled(task_id, reply)

    def enqueue_and_wait(self, role: str, data: Any = None, *, timeout: float | None = None,
                         **options: Any) -> TaskResult:
        """Enqueue one task and wait for its result, one round trip sooner than enqueue + wait.

        ``timeout``: seconds to wait (TaskTimeoutError after; the task stays queued).
        ``options``: enqueue's keyword options, but for its per-attempt ``timeout``.
        """
        spec = self._spec(role, data, **options)

        def send(channel: str) -> None:
            spec.reply_to = channel
            self._run_enqueue([spec])

        with self._explained():
            return self._waiter.wait_many([spec.id], timeout, None, send)[0]

    def wait(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The task's result once it is final; TaskTimeoutError after ``timeout`` seconds."""
        return self.wait_many([task_id], timeout)[0]

    def wait_many(self, task_ids: Sequence[str], timeout: float | None = None, *,
                  on_result: OnResult | None = None) -> list[TaskResult]:
        """Results of all the tasks, in order, over one connection.

        ``on_result`` is called with each result as it arrives, in no set order.
        """
        check_on_result(on_result)
        with self._explained():
            return self._waiter.wait_many(list(task_ids), timeout, on_result)

    def get(self, task_id: str) -> TaskInfo:
        """Status, attempts, worker, timings and (once final) the result of a task."""
        for keys in self._homes(task_id):
            if raw := self.redis.hgetall(keys.task(task_id)):
                break
        return parse_task(task_id, raw)

    def queues(self) -> list[QueueInfo]:
        """Per role: waiting, ready and running tasks, consumers, live workers."""
        return _merge_queues([view._queues_here() for view in self._views()])

    def _queues_here(self) -> list[QueueInfo]:
        roles = sorted(r.decode() for r in self.redis.smembers(self.keys.roles))
        alive = [w.roles for w in self.workers() if w.alive]
        with self.redis.pipeline(transaction=False) as pipe:
            for role in roles:
                pipe.xlen(self.keys.stream(role))
                pipe.xinfo_groups(self.keys.stream(role))
                pipe.scard(self.keys.waiting(role))
                pipe.zcard(self.keys.scheduled(role))
            replies = pipe.execute(raise_on_error=False)
        rows = self._queue_rows(roles, replies, alive)
        with self.redis.pipeline(transaction=False) as pipe:
            if self._oldest_ready_pipe(pipe, rows, replies):
                firsts = pipe.execute()
                self._set_oldest_ready(rows, firsts, self.scripts.clock(keys=[self.keys.base]))
        return rows

    def coordinators_alive(self) -> int:
        """Coordinators whose heartbeat is fresh (statistics move only while one runs)."""
        now = self.scripts.clock(keys=[self.keys.base])
        return self._alive_count(now, self.redis.zrange(self.keys.coordinators, 0, -1,
                                                        withscores=True))

    def stats(self, role: str | None = None) -> Stats:
        """Counts, success rate, retries, wait/run percentiles and throughput, per role."""
        queues = self.queues()
        roles = [role] if role else [q.role for q in queues]
        with self.redis.pipeline(transaction=False) as pipe:
            self._stats_pipe(pipe, roles)
            replies = pipe.execute()
        return self._stats(roles, replies, queues, self.scripts.clock(keys=[self.keys.base]))

    def workers(self) -> list[WorkerInfo]:
        """Registered workers, with whether their heartbeat is fresh."""
        now_ms = _redis_ms(self.scripts.clock(keys=[self.keys.base]))
        entries = self.redis.zrange(self.keys.workers, 0, -1, withscores=True)
        with self.redis.pipeline(transaction=False) as pipe:
            for wid, _ in entries:
                pipe.hgetall(self.keys.worker(wid.decode()))
            infos = pipe.execute()
        limit = self.settings.worker_timeout * 1000
        return [parse_worker(wid.decode(), info, score, now_ms - score <= limit)
                for (wid, score), info in zip(entries, infos)]

    def dead_letters(self, role: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first (of one role if given), from every partition."""
        return _newest([view._dead_letters_here(role, limit) for view in self._views()],
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
            entry = id if _ENTRY_ID.match(id) else self.redis.hget(keys.task(id), "dead")
            if entry:
                rows += self.redis.xrange(keys.dead, min=entry, max=entry)
            if rows and not _ENTRY_ID.match(id):
                break
        return _one_dead_letter(id, rows)

    def retry_dead(self, task_ids: Sequence[str] | None = None) -> DeadRetry:
        """Run dead-lettered tasks again with a fresh attempt budget (all when no ids).

        A graph's task is retried with its graph's ``retry_failed()``, which also
        re-runs what its failure cancelled.
        """
        report = DeadRetry()
        if task_ids is not None:
            ids = [check_task_id(t) for t in task_ids]
            for i in range(0, len(ids), _BATCH):
                unknown: dict[str, str] = {}
                for keys, group in self.parts.probes(ids[i:i + _BATCH], unknown.__contains__):
                    self._retry_dead_batch(keys, group, report, unknown)
                report.skipped.update(unknown)
            return report
        for view in self._views():
            start = "-"
            while rows := self.redis.xrange(view.keys.dead, min=start, count=_BATCH):
                unknown = {}
                self._retry_dead_batch(view.keys, self._dead_page(rows, report), report,
                                             unknown)
                report.skipped.update(unknown)
                start = "(" + rows[-1][0].decode()
        return report

    def _retry_dead_batch(self, keys: Keys, ids: list[str], report: DeadRetry,
                                unknown: dict[str, str]) -> None:
        reply = self.scripts.dead_retry(keys=[keys.base], args=ids)
        for gid in _note_dead_retry(ids, reply, report, unknown):
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
            counts.append(_dead_by_role(int(total), rows))
        return _sum_counts(counts)

    def purge(self, role: str, reason: str = "purged") -> int:
        """Cancel every task of ``role`` that has not started: ready, scheduled and waiting
        ones (their dependents settle as for any cancel). Running tasks are left alone;
        returns how many were cancelled."""
        return sum([view._purge_here(role, reason) for view in self._views()])

    def _purge_here(self, role: str, reason: str) -> int:
        with self.redis.pipeline(transaction=False) as pipe:
            self._purge_reads(pipe, role)
            ids, start = self._purge_start(pipe.execute(raise_on_error=False))
        while True:
            page = self.redis.xrange(self.keys.stream(role), min=start, count=_BATCH)
            ids += self._ready_page(page)
            if len(page) < _BATCH:
                break
            start = "(" + page[-1][0].decode()
        cancelled = 0
        for i in range(0, len(ids), _BATCH):
            cancelled += _count_cancelled(run_each(
                self.redis, self.scripts.cancel, [self.keys.base],
                [self._cancel_args(tid, reason) for tid in ids[i:i + _BATCH]],
                raise_on_error=False))
        return cancelled

    def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Forget dead letters (all when no ids); the tasks' hashes expire with their TTL."""
        for entry in (e for e in ids or () if _ENTRY_ID.match(e) and self.parts.count > 1):
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
        entries = self._dead_entry_ids(ids, fields)
        return int(self.redis.xdel(self.keys.dead, *entries)) if entries else 0


def _redis_ms(reply: tuple[int, int]) -> float:
    return reply[0] * 1000 + reply[1] / 1000


def _merge_queues(per_partition: list[list[QueueInfo]]) -> list[QueueInfo]:
    """One row per role from each partition's rows: counts summed, the oldest age kept."""
    merged: dict[str, QueueInfo] = {}
    for rows in per_partition:
        for q in rows:
            m = merged.get(q.role)
            if m is None:
                merged[q.role] = q.model_copy()
                continue
            m.ready += q.ready
            m.running += q.running
            m.waiting += q.waiting
            m.scheduled += q.scheduled
            m.consumers = max(m.consumers, q.consumers)
            m.workers_alive = max(m.workers_alive, q.workers_alive)
            ages = [a for a in (m.oldest_ready_age, q.oldest_ready_age) if a is not None]
            m.oldest_ready_age = max(ages) if ages else None
    return [merged[r] for r in sorted(merged)]


def _newest(per_partition: list[list[DeadLetter]], limit: int) -> list[DeadLetter]:
    """The newest ``limit`` dead letters of all partitions (entry ids order them in time)."""
    rows = [d for ds in per_partition for d in ds]
    if len(per_partition) > 1:
        rows.sort(key=lambda d: tuple(int(p) for p in d.id.split("-")), reverse=True)
    return rows[:limit]


def _one_dead_letter(id: str, rows: list[Any]) -> DeadLetter:
    if not rows:
        raise UnknownTaskError(f"no dead letter for {id}")
    if len(rows) > 1:
        raise ValidationError(f"entry id {id} names a dead letter in {len(rows)} partitions "
                              "(each numbers its own): name the task id instead")
    return parse_dead_letter(*rows[0])


def _sum_counts(per_partition: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in per_partition:
        for role, n in counts.items():
            total[role] = total.get(role, 0) + n
    return total


def _note_dead_retry(ids: list[str], reply: Any, report: DeadRetry,
                     unknown: dict[str, str]) -> list[str]:
    """Count a dead_retry.lua reply into ``report``; tasks it did not find go to ``unknown``
    (the caller may look in another partition). Returns the graphs to retry."""
    retried, graphs, skipped = reply
    report.retried += int(retried)
    for tid in ids:
        unknown.pop(tid, None)
    for tid, why in _pairs(skipped).items():
        (unknown if why.startswith(_UNKNOWN_TASK) else report.skipped)[tid] = why
    return [g.decode() for g in graphs]


def _known(cancel_reply: Any) -> bool:
    """False when the cancel script did not find the task (in the partition it asked)."""
    before = cancel_reply[2] if isinstance(cancel_reply, list) and len(cancel_reply) > 2 else None
    return before is None or (len(before) > 1 and before[1] is not None)


def _cancelled(task_id: str, reply: Any) -> bool:
    raise_for_script_error(reply)
    before = reply[2][1] if len(reply) > 2 and len(reply[2]) > 1 else None
    if before is None:
        raise UnknownTaskError(f"unknown task {task_id} (never enqueued, or its result expired)")
    return int(reply[1]) > 0


def _count_cancelled(replies: list[Any]) -> int:
    """How many cancel replies say the task was cancelled (not already final, not unknown)."""
    return sum(1 for r in replies if isinstance(r, list) and len(r) > 1 and _int(r[1]) > 0)


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

