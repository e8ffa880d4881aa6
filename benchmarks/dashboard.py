"""``python -m benchmarks.dashboard``: how fast the dashboard's pages render, and what they
cost Redis, with a large namespace behind them.

On a Redis of its own it makes ``--finished`` tasks finished (enqueued, then drained by
one worker process, a coordinator folding their statistics), ``--dead`` of them dead
letters, and ``--queued`` more left queued on another role. Then, for each page, it
asks ``--requests`` times through the ASGI app (httpx, in process), the shared cache off
so that every request reads Redis, and reports the render time (p50, p95, max, in ms)
and the Redis commands per page view (INFO commandstats).

Last, the cost of open tabs: ``--tabs`` simulated tabs poll the overview's live region
every 0.5 s (four times the default rate) for ``--seconds``, with the shared cache on
(its default, 1 s), and it reports Redis commands per second for 1 tab and for all of
them. It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
import redis

from benchmarks.peers.base import RedisCost
from benchmarks.redis_server import own_redis
from benchmarks.throughput import WorkerProcess
from ceylon_redis import AsyncClient, Client, Coordinator
from ceylon_redis.dashboard import DashboardConfig, create_app

PREFIX = "bench-dash"
BATCH = 10_000


def fill(url: str, finished: int, dead: int, queued: int) -> dict[str, str]:
    """Make the namespace; the ids of a few tasks for the pages that show one."""
    with Client(url, PREFIX) as client:
        t0 = time.perf_counter()
        for start in range(0, finished, BATCH):
            n = min(BATCH, finished - start)
            client.enqueue_many("done", [{"i": start + i, "fail": start + i < dead}
                                         for i in range(n)], max_attempts=1)
        print(f"enqueued {finished:,} in {time.perf_counter() - t0:.0f} s", flush=True)
        coordinator = Coordinator(url=url, prefix=PREFIX)
        worker = WorkerProcess(url, PREFIX, "benchmarks.handlers:fail_when_told_async", "done",
                               200, {"CEYLON_REDIS_LOG_LEVEL": "WARNING"})
        loop = asyncio.new_event_loop()
        runner = loop.create_task(coordinator.run())
        t0 = time.perf_counter()
        while True:
            loop.run_until_complete(asyncio.sleep(1.0))
            left = sum(q.ready + q.running + q.waiting for q in client.queues()
                       if q.role == "done")
            if not left:
                break
        print(f"drained in {time.perf_counter() - t0:.0f} s", flush=True)
        worker.stop()
        while client.stats("done").roles[0].finished < finished:
            loop.run_until_complete(asyncio.sleep(0.5))
        coordinator.stop()
        loop.run_until_complete(runner)
        loop.close()
        for start in range(0, queued, BATCH):
            client.enqueue_many("backlog", range(start, min(queued, start + BATCH)))
        one = client.enqueue("backlog", {"a": 1}, name="one to look at")
        r = client.redis
        print(f"Redis holds {r.dbsize():,} keys, "
              f"{r.info('memory')['used_memory'] / 2**20:,.0f} MiB", flush=True)
        stream = client.keys.stream("backlog")
        first, last = (r.xrange(stream, count=1)[0][0], r.xrevrange(stream, count=1)[0][0])
        middle = (int(first.split(b"-")[0]) + int(last.split(b"-")[0])) // 2
        return {"task": one, "deep": f"{middle}-0"}


PAGES = [
    ("overview", "/"),
    ("overview (live region)", "/?fragment=1"),
    ("overview JSON (charts)", "/api/overview"),
    ("queues", "/queues"),
    ("workers", "/workers"),
    ("queued, first page", "/tasks?role=backlog&status=queued"),
    ("queued, a late page", "/tasks?role=backlog&status=queued&cursor=0:s{deep}"),
    ("finished, all roles", "/tasks?status=finished"),
    ("failed of a role", "/tasks?role=done&status=failed"),
    ("a task", "/tasks/{task}"),
    ("dead letters", "/dead"),
    ("events", "/events"),
]


async def time_pages(url: str, ids: dict[str, str], requests: int) -> list[tuple[Any, ...]]:
    rows = []
    r = redis.Redis.from_url(url)
    async with AsyncClient(url, PREFIX) as client:
        app = create_app(client, config=DashboardConfig(cache_ttl=0))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as h:
            for name, path in PAGES:
                path = path.format(**ids)
                assert (await h.get(path)).status_code == 200, path
                cost = RedisCost(r)
                cost.start()
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    resp = await h.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 200
                commands, cpu = cost.stop()
                times.sort()
                rows.append((name, statistics.median(times), times[int(0.95 * len(times))],
                             times[-1], commands / requests, cpu / requests / 1000,
                             len(resp.content) / 1024))
    return rows


async def tab_cost(url: str, tabs: int, seconds: float) -> list[tuple[int, float]]:
    out = []
    r = redis.Redis.from_url(url)
    async with AsyncClient(url, PREFIX) as client:
        for n in (1, tabs):
            app = create_app(client, config=DashboardConfig())
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as h:
                async def tab(h: httpx.AsyncClient = h) -> None:
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        await h.get("/?fragment=1")
                        await asyncio.sleep(0.5)

                cost = RedisCost(r)
                cost.start()
                await asyncio.gather(*(tab() for _ in range(n)))
                commands, _ = cost.stop()
            out.append((n, commands / seconds))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--dead", type=int, default=1_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--tabs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with own_redis() as url:
        ids = fill(url, args.finished, args.dead, args.queued)
        rows = asyncio.run(time_pages(url, ids, args.requests))
        tabs = asyncio.run(tab_cost(url, args.tabs, args.seconds))
    print(f"\n{args.finished:,} finished ({args.dead:,} dead letters), {args.queued:,} "
          f"queued; {args.requests} requests per page, cache off\n")
    print("| page | p50 ms | p95 ms | max ms | Redis cmds/view | Redis CPU ms/view | KiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, p50, p95, top, cmds, cpu, kib in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {top:.1f} | {cmds:.0f} | {cpu:.2f} | "
              f"{kib:.0f} |")
    print("\n| open tabs (overview, polled every 0.5 s, cache 1 s) | Redis cmds/s |")
    print("|---|---:|")
    for n, rate in tabs:
        print(f"| {n} | {rate:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
