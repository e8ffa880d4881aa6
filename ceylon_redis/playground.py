"""Ceylon's ``TaskProcessingPlayground`` API, on Redis.

The tutorial's code runs with only its imports changed::

    playground = TaskProcessingPlayground(name="task_playground", port=8000)
    async with playground.play(workers=[...]) as active:
        result = await active.add_and_execute_task(Task(name="t", processor="worker",
                                                        input_data={"data": ...}))

``play()`` runs the given ProcessWorkers (one consumer each), and a
coordinator keeping statistics (``coordinator=False`` to leave that to a
daemon; ``await playground.client.stats()`` reads them), against Redis:
the URL given, else CEYLON_REDIS_URL / REDIS_URL, else localhost:6379, else an
embedded in-process Redis (the ``embedded`` extra), with an EmbeddedRedisWarning.
``port`` is accepted for compatibility and only
shown in logs: the playground listens on no port, Redis is the meeting point.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from .client import AsyncClient
from .connection import daemon_redis, resolve_url
from .errors import ValidationError, did_you_mean
from .models import TaskResult, TaskStatus
from .process import ProcessWorker
from .protocol import TaskDef
from .settings import Settings
from .worker import Worker


@dataclass
class Task:
    """A unit of work for a role (``processor``), as Ceylon's Task."""

    name: str
    processor: str
    input_data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    dependencies: set[str] = field(default_factory=set)
    status: TaskStatus = TaskStatus.PENDING
    result: TaskResult | None = None
    max_attempts: int | None = None

    def _definition(self) -> TaskDef:
        if not isinstance(self.processor, str):
            raise ValueError("Task.processor must be a role name (a string)")
        return TaskDef(role=self.processor, data=self.input_data, id=self.id, name=self.name,
                       depends_on=sorted(self.dependencies), max_attempts=self.max_attempts)


class TaskManager:
    """The playground's view of the tasks it submitted.

    A task's ``status`` here is PENDING until its result arrives, then final;
    ``await playground.client.get(task_id)`` shows the live status (QUEUED, RUNNING).
    """

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}

    def add_task(self, task: Task) -> None:
        self.tasks[task.id] = task

    def get_task(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def _settle(self, result: TaskResult) -> None:
        task = self.tasks.get(result.task_id or "")
        if task is not None:
            task.result = result
            task.status = result.status or (
                TaskStatus.COMPLETED if result.success else TaskStatus.FAILED)


class TaskProcessingPlayground:
    """Submit Tasks to ProcessWorkers of their role and collect TaskResults."""

    def __init__(self, name: str = "task_processor", port: int = 8888, *,
                 url: str | None = None, prefix: str | None = None,
                 concurrency: int | None = None, settings: Settings | None = None,
                 coordinator: bool = True) -> None:
        self.name = name
        self.port = port
        self._url = url
        self._prefix = prefix
        self._settings = settings
        self.concurrency = concurrency
        self.coordinator = coordinator
        self.task_manager = TaskManager()
        self.llm_agents: list[ProcessWorker] = []
        self.client: AsyncClient | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def play(self, workers: Iterable[ProcessWorker] = ()) -> AsyncIterator[
            TaskProcessingPlayground]:
        """Run ``workers`` as consumers of their roles while the block runs."""
        url = resolve_url(self._url or (self._settings.url if self._settings else None),
                          allow_embedded=True)
        settings = Settings.resolve(self._settings, url, self._prefix)
        redis_client = daemon_redis(settings)  # shared with a worker
        self.llm_agents = list(workers)
        self.client = AsyncClient(settings=settings, redis=redis_client)
        worker = (Worker(self.llm_agents, concurrency=self.concurrency, settings=settings,
                         redis_client=redis_client, coordinator=self.coordinator)
                  if self.llm_agents else None)
        runner = asyncio.create_task(worker.run()) if worker else None
        if worker is not None and runner is not None:
            ready = asyncio.create_task(worker.ready.wait())
            await asyncio.wait({ready, runner}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if runner.done():
                runner.result()  # raises why the workers could not start
        logger.info("playground {} (port {} unused) playing with {} workers", self.name,
                    self.port, len(self.llm_agents))
        try:
            yield self
        finally:
            for w in list(self._watchers):
                w.cancel()
            if worker is not None and runner is not None:
                worker.stop()
                await runner
            await self.client.close()
            await redis_client.aclose()
            self.client = None

    def _require_client(self) -> AsyncClient:
        if self.client is None:
            raise RuntimeError("use the playground inside 'async with playground.play(...)'")
        return self.client

    async def add_and_execute_task(self, task: Task, wait_for_completion: bool = True,
                                   timeout: float | None = None) -> TaskResult | None:
        """Enqueue ``task``; with ``wait_for_completion`` return its result, else None at once.

        ``timeout``: seconds to wait, then TaskTimeoutError (the task stays queued). A
        ``processor`` no worker serves is refused (see ``_check_served``).
        """
        client = self._require_client()
        d = task._definition()
        await self._check_served([d.role])
        task_id = await client.enqueue(d.role, d.data, name=d.name, task_id=d.id,
                                       depends_on=d.depends_on, max_attempts=d.max_attempts)
        self.task_manager.add_task(task)
        if not wait_for_completion:
            self._watch(task_id)
            return None
        result = await client.wait(task_id, timeout)
        self.task_manager._settle(result)
        return result

    async def execute_task_group(self, tasks: Iterable[Task],
                                 timeout: float | None = None) -> dict[str, TaskResult]:
        """Enqueue tasks with dependencies among them in one call; wait for every result
        (``timeout`` seconds at most, then TaskTimeoutError)."""
        client = self._require_client()
        tasks = list(tasks)
        definitions = [t._definition() for t in tasks]
        await self._check_served(d.role for d in definitions)
        graph = await client.enqueue_graph(definitions)
        for t in tasks:
            self.task_manager.add_task(t)
        ids = await graph.task_ids()
        results = await graph.wait(timeout)
        for r in results:
            self.task_manager._settle(r)
        return dict(zip(ids, results))

    async def _check_served(self, roles: Iterable[str]) -> None:
        """Refuse roles that neither this playground's workers nor any live worker serve,
        before anything is written: a mistyped ``processor`` would wait forever. A
        playground without workers of its own only submits, and daemons may start later:
        it warns (RuntimeWarning) instead."""
        own = {w.role for w in self.llm_agents}
        missing = sorted(set(roles) - own)
        if not missing:
            return
        alive = {r for w in await self._require_client().workers() if w.alive for r in w.roles}
        missing = [r for r in missing if r not in alive]
        if not missing:
            return
        role = missing[0]
        served = sorted(own | alive)
        if own:
            raise ValidationError(
                f"no worker serves role {role!r} (Task.processor): this playground's workers "
                f"serve {_roles(sorted(own))}, and no live worker daemon serves it"
                f"{did_you_mean(role, served)}; nothing was enqueued")
        warnings.warn(f"no live worker serves role {role!r} yet{did_you_mean(role, served)}: "
                      "the task waits until one starts (add_and_execute_task(timeout=...) "
                      "stops waiting)", RuntimeWarning, stacklevel=3)

    def _watch(self, task_id: str) -> None:
        async def watch() -> None:
            result = await self._require_client().wait(task_id)
            self.task_manager._settle(result)

        w = asyncio.create_task(watch())
        self._watchers.add(w)
        w.add_done_callback(self._watchers.discard)


def _roles(roles: list[str]) -> str:
    return ", ".join(repr(r) for r in roles)
