"""Producers: ``Client`` for any Python program, ``AsyncClient`` for asyncio. Same methods.

::

    client = Client()                 # CEYLON_REDIS_URL / REDIS_URL, else localhost
    task_id = client.enqueue("resize", {"path": "a.png"})
    result = client.wait(task_id, timeout=10)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .connection import async_redis, sync_redis
from .errors import raise_for_script_error
from .keys import Keys
from .models import QueueInfo, TaskInfo, TaskResult, WorkerInfo
from .protocol import (
    TaskDef,
    TaskSpec,
    enqueue_args,
    graph_specs,
    make_spec,
    parse_queue,
    parse_task,
    parse_worker,
)
from .scripts import Scripts
from .settings import Settings
from .waiting import AsyncWaiter, SyncWaiter

_BATCH = 1000


class _Base:
    """What both clients share: settings, key names, and turning calls into task specs."""

    def __init__(self, url: str | None, prefix: str | None, settings: Settings | None) -> None:
        self.settings = settings or Settings.from_env(url=url, prefix=prefix)
        if settings is not None and (url or prefix):
            self.settings = settings.with_(**{k: v for k, v in
                                              (("url", url), ("prefix", prefix)) if v})
        self.keys = Keys(self.settings.prefix)

    def _spec(self, role: str, data: Any, **options: Any) -> TaskSpec:
        return make_spec(self.settings, role, data, **options)

    def _specs(self, role: str, items: Iterable[Any], names: Sequence[str] | None,
               **options: Any) -> list[TaskSpec]:
        items = list(items)
        if names is not None and len(names) != len(items):
            raise ValueError(f"{len(names)} names for {len(items)} items")
        return [self._spec(role, data, name=names[i] if names else None, what=f"items[{i}]",
                           **options) for i, data in enumerate(items)]

    def _batches(self, specs: list[TaskSpec]) -> list[list[Any]]:
        enqueue_args(specs)  # reject duplicate ids across the whole call before writing
        return [enqueue_args(specs[i:i + _BATCH]) for i in range(0, len(specs), _BATCH)]


class AsyncClient(_Base):
    """The asyncio producer: enqueue, wait, inspect."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 settings: Settings | None = None, redis: Any = None) -> None:
        super().__init__(url, prefix, settings)
        self.redis: Any = redis if redis is not None else async_redis(self.settings.url)
        self._owns_redis = redis is None
        self.scripts = Scripts.register(self.redis)
        self._waiter = AsyncWaiter(self.redis, self.keys, self.scripts.watch)

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
                      task_id: str | None = None, depends_on: Iterable[str] = (),
                      max_attempts: int | None = None, result_ttl: int | None = None) -> str:
        """Put one task on ``role``'s queue (or WAITING on ``depends_on``); returns its id."""
        spec = self._spec(role, data, name=name, task_id=task_id, depends_on=depends_on,
                          max_attempts=max_attempts, result_ttl=result_ttl)
        await self._run_enqueue(enqueue_args([spec]))
        return spec.id

    async def enqueue_many(self, role: str, items: Iterable[Any], *,
                           names: Sequence[str] | None = None,
                           max_attempts: int | None = None,
                           result_ttl: int | None = None) -> list[str]:
        """Enqueue many tasks of one role, pipelined; returns their ids in order."""
        specs = self._specs(role, items, names, max_attempts=max_attempts,
                            result_ttl=result_ttl)
        batches = self._batches(specs)
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in batches:
                await self.scripts.enqueue(keys=[self.keys.base], args=args, client=pipe)
            for reply in await pipe.execute():
                raise_for_script_error(reply)
        return [s.id for s in specs]

    async def enqueue_graph(self, tasks: Sequence[TaskDef]) -> list[str]:
        """Enqueue tasks of any roles with dependencies among them, all or nothing."""
        specs = graph_specs(self.settings, tasks)
        await self._run_enqueue(enqueue_args(specs))
        return [s.id for s in specs]

    async def _run_enqueue(self, args: list[Any]) -> None:
        raise_for_script_error(await self.scripts.enqueue(keys=[self.keys.base], args=args))

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The task's result once it is final; TaskTimeoutError after ``timeout`` seconds."""
        return (await self._waiter.wait_many([task_id], timeout))[0]

    async def wait_many(self, task_ids: Sequence[str],
                        timeout: float | None = None) -> list[TaskResult]:
        """Results of all the tasks, in order, over one connection."""
        return await self._waiter.wait_many(list(task_ids), timeout)

    async def get(self, task_id: str) -> TaskInfo:
        """Status, attempts, worker, timings and (once final) the result of a task."""
        return parse_task(task_id, await self.redis.hgetall(self.keys.task(task_id)))

    async def queues(self) -> list[QueueInfo]:
        """Per role: ready and running entries, consumers, live workers."""
        roles = sorted(r.decode() for r in await self.redis.smembers(self.keys.roles))
        alive = [w.roles for w in await self.workers() if w.alive]
        async with self.redis.pipeline(transaction=False) as pipe:
            for role in roles:
                pipe.xlen(self.keys.stream(role))
                pipe.xinfo_groups(self.keys.stream(role))
            replies = await pipe.execute(raise_on_error=False)
        return [parse_queue(role, _int(replies[2 * i]), _list(replies[2 * i + 1]), alive)
                for i, role in enumerate(roles)]

    async def workers(self) -> list[WorkerInfo]:
        """Registered workers, with whether their heartbeat is fresh."""
        now_ms = _redis_ms(await self.redis.time())
        entries = await self.redis.zrange(self.keys.workers, 0, -1, withscores=True)
        async with self.redis.pipeline(transaction=False) as pipe:
            for wid, _ in entries:
                pipe.hgetall(self.keys.worker(wid.decode()))
            infos = await pipe.execute()
        limit = self.settings.worker_timeout * 1000
        return [parse_worker(wid.decode(), info, score, now_ms - score <= limit)
                for (wid, score), info in zip(entries, infos)]


class Client(_Base):
    """The blocking producer, for scripts and web apps (Flask, Django); AsyncClient's methods."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 settings: Settings | None = None, redis: Any = None) -> None:
        super().__init__(url, prefix, settings)
        self.redis: Any = redis if redis is not None else sync_redis(self.settings.url)
        self._owns_redis = redis is None
        self.scripts = Scripts.register(self.redis)
        self._waiter = SyncWaiter(self.redis, self.keys, self.scripts.watch)

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
                task_id: str | None = None, depends_on: Iterable[str] = (),
                max_attempts: int | None = None, result_ttl: int | None = None) -> str:
        """Put one task on ``role``'s queue (or WAITING on ``depends_on``); returns its id."""
        spec = self._spec(role, data, name=name, task_id=task_id, depends_on=depends_on,
                          max_attempts=max_attempts, result_ttl=result_ttl)
        raise_for_script_error(
            self.scripts.enqueue(keys=[self.keys.base], args=enqueue_args([spec])))
        return spec.id

    def enqueue_many(self, role: str, items: Iterable[Any], *,
                     names: Sequence[str] | None = None, max_attempts: int | None = None,
                     result_ttl: int | None = None) -> list[str]:
        """Enqueue many tasks of one role, pipelined; returns their ids in order."""
        specs = self._specs(role, items, names, max_attempts=max_attempts,
                            result_ttl=result_ttl)
        batches = self._batches(specs)
        with self.redis.pipeline(transaction=False) as pipe:
            for args in batches:
                self.scripts.enqueue(keys=[self.keys.base], args=args, client=pipe)
            for reply in pipe.execute():
                raise_for_script_error(reply)
        return [s.id for s in specs]

    def enqueue_graph(self, tasks: Sequence[TaskDef]) -> list[str]:
        """Enqueue tasks of any roles with dependencies among them, all or nothing."""
        specs = graph_specs(self.settings, tasks)
        raise_for_script_error(
            self.scripts.enqueue(keys=[self.keys.base], args=enqueue_args(specs)))
        return [s.id for s in specs]

    def wait(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The task's result once it is final; TaskTimeoutError after ``timeout`` seconds."""
        return self._waiter.wait_many([task_id], timeout)[0]

    def wait_many(self, task_ids: Sequence[str], timeout: float | None = None) -> list[TaskResult]:
        """Results of all the tasks, in order, over one connection."""
        return self._waiter.wait_many(list(task_ids), timeout)

    def get(self, task_id: str) -> TaskInfo:
        """Status, attempts, worker, timings and (once final) the result of a task."""
        return parse_task(task_id, self.redis.hgetall(self.keys.task(task_id)))

    def queues(self) -> list[QueueInfo]:
        """Per role: ready and running entries, consumers, live workers."""
        roles = sorted(r.decode() for r in self.redis.smembers(self.keys.roles))
        alive = [w.roles for w in self.workers() if w.alive]
        with self.redis.pipeline(transaction=False) as pipe:
            for role in roles:
                pipe.xlen(self.keys.stream(role))
                pipe.xinfo_groups(self.keys.stream(role))
            replies = pipe.execute(raise_on_error=False)
        return [parse_queue(role, _int(replies[2 * i]), _list(replies[2 * i + 1]), alive)
                for i, role in enumerate(roles)]

    def workers(self) -> list[WorkerInfo]:
        """Registered workers, with whether their heartbeat is fresh."""
        now_ms = _redis_ms(self.redis.time())
        entries = self.redis.zrange(self.keys.workers, 0, -1, withscores=True)
        with self.redis.pipeline(transaction=False) as pipe:
            for wid, _ in entries:
                pipe.hgetall(self.keys.worker(wid.decode()))
            infos = pipe.execute()
        limit = self.settings.worker_timeout * 1000
        return [parse_worker(wid.decode(), info, score, now_ms - score <= limit)
                for (wid, score), info in zip(entries, infos)]


def _redis_ms(reply: tuple[int, int]) -> float:
    return reply[0] * 1000 + reply[1] / 1000


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

