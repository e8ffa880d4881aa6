"""ceylon-redis: ``Client``/``AsyncClient`` producers, ``ceylon-redis worker`` processes."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from benchmarks.peers.base import Peer, WrongResult
from ceylon_redis import AsyncClient, Client, TaskDef

ROLE = "bench"
HANDLERS = {"async": "benchmarks.handlers:noop_async", "sync": "benchmarks.handlers:noop_sync"}


class Ceylon(Peer):
    name = "ceylon-redis"
    package = "ceylon-redis"
    concurrency: ClassVar[dict[str, int]] = {"async": 100, "sync": 10}
    notes = ("bulk: enqueue_many (one Lua call per 1,000 tasks); results: wait_many; "
             "dependencies: enqueue_graph")

    def open(self) -> None:
        self.client = Client(self.url)
        self.aclient = self.aw(self._aopen())

    async def _aopen(self) -> AsyncClient:
        return AsyncClient(self.url)

    def close(self) -> None:
        self.client.close()
        self.aw(self.aclient.close())

    def enqueue_one(self, value: int) -> str:
        return self.client.enqueue(ROLE, value)

    async def enqueue_one_async(self, value: int) -> str:
        return await self.aclient.enqueue(ROLE, value)

    def enqueue_bulk(self, values: list[int]) -> list[str]:
        return self.client.enqueue_many(ROLE, values)

    async def enqueue_bulk_async(self, values: list[int]) -> list[str]:
        return await self.aclient.enqueue_many(ROLE, values)

    def is_done(self, handle: str) -> bool:
        return self.client.get(handle).status.is_final

    def outputs(self, handles: list[str], timeout: float) -> list[Any]:
        results = self.client.wait_many(handles, timeout=timeout)
        failed = [r for r in results if not r.success]
        if failed:
            raise WrongResult(f"{self.name}: {len(failed)} tasks failed: {failed[0]!r}")
        return [r.output for r in results]

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "ceylon_redis", "worker", HANDLERS[kind], "--role", ROLE,
                "--concurrency", str(concurrency)]

    def worker_env(self, kind: str, concurrency: int) -> dict[str, str]:
        env = super().worker_env(kind, concurrency)
        env["CEYLON_REDIS_URL"] = self.url
        env.pop("CEYLON_REDIS_PREFIX", None)
        env["CEYLON_REDIS_LOG_LEVEL"] = "WARNING"
        return env

    async def round_trip(self, value: int) -> Any:
        result = await self.aclient.enqueue_and_wait(ROLE, value, timeout=30)
        return result.output

    def chain(self, depth: int, timeout: float) -> None:
        defs = [TaskDef(ROLE, i, id=f"c{i}", depends_on=(f"c{i - 1}",) if i else ())
                for i in range(depth)]
        self.client.enqueue_graph(defs)
        self._check(self.client.wait(f"c{depth - 1}", timeout=timeout), depth - 1)

    def fan_in(self, width: int, timeout: float) -> None:
        children = [f"f{i}" for i in range(width)]
        defs = [TaskDef(ROLE, "root", id="root"),
                *(TaskDef(ROLE, i, id=c, depends_on=("root",)) for i, c in enumerate(children)),
                TaskDef(ROLE, "sink", id="sink", depends_on=children)]
        self.client.enqueue_graph(defs)
        self._check(self.client.wait("sink", timeout=timeout), "sink")

    def _check(self, result: Any, want: Any) -> None:
        if not result.success or result.output != want:
            raise WrongResult(f"{self.name}: last task gave {result!r}, expected {want!r}")
