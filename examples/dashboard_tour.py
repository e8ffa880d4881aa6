"""Something to look at in the dashboard: a namespace that keeps moving.

Runs workers for three roles and a coordinator in this process, and keeps
enqueueing: reports that take a few seconds and say how far they are, imports
of which one in five fails for good (dead letters to retry from the page), a
nightly-style graph every half minute whose publish step fails once, a
schedule and a rate limit. In another terminal:

    python examples/dashboard_tour.py            # Ctrl-C to stop
    ceylon-redis dashboard --prefix tour --actions

and open http://127.0.0.1:8080. It writes under the prefix ``tour`` of
``CEYLON_REDIS_URL`` (default redis://localhost:6379/0); every key it leaves
expires after a day.
"""

import asyncio
import itertools
import os
import random

from ceylon_redis import AsyncClient, Coordinator, TaskDef, Worker, current_task

PREFIX = os.environ.get("CEYLON_REDIS_PREFIX", "tour")
URL = os.environ.get("CEYLON_REDIS_URL", "redis://localhost:6379/0")


async def report(data: dict) -> dict:
    """A few seconds of work, reported in steps."""
    ctx = current_task()
    steps = int(data.get("steps", 20))
    for i in range(1, steps + 1):
        await asyncio.sleep(random.uniform(0.05, 0.3))
        ctx.progress(i / steps, {"pages": i * 10})
    return {"pages": steps * 10}


async def import_batch(data: dict) -> dict:
    """Fails for batches whose number ends in 0 or 5: those become dead letters."""
    await asyncio.sleep(random.uniform(0.01, 0.2))
    if data["batch"] % 5 == 0 and not data.get("fixed"):
        raise ValueError(f"batch {data['batch']}: row 17 has no customer id")
    return {"rows": 1000}


async def step(data: dict) -> dict:
    """A step of the graph; ``publish`` fails its first attempt."""
    await asyncio.sleep(random.uniform(0.2, 1.0))
    if data.get("name") == "publish" and current_task().attempt == 1:
        raise ConnectionError("the CDN refused the upload")
    return {"ok": data.get("name")}


def graph(n: int) -> list[TaskDef]:
    def t(name: str, *deps: str) -> TaskDef:
        return TaskDef("etl", {"name": name}, id=f"night-{n}-{name}", name=name,
                       depends_on=[f"night-{n}-{d}" for d in deps], max_attempts=2,
                       backoff=2)

    return [t("extract"), t("clean", "extract"), t("enrich", "extract"),
            t("aggregate", "clean", "enrich"), t("publish", "aggregate"),
            t("notify", "publish")]


async def produce(client: AsyncClient) -> None:
    await client.add_schedule("hourly-digest", "reports", {"steps": 5}, every=60)
    await client.set_limit("imports", rate="20/s")
    for n in itertools.count(1):
        await client.enqueue("reports", {"steps": random.randint(10, 40)},
                             name=f"report {n}", result_ttl=86400)
        await client.enqueue_many("imports", [{"batch": n * 10 + i} for i in range(10)],
                                  names=[f"import {n * 10 + i}" for i in range(10)],
                                  result_ttl=86400)
        if n % 15 == 1:
            await client.enqueue_graph(graph(n), graph_id=f"night-{n}", ttl=86400)
        await asyncio.sleep(2)


async def main() -> None:
    workers = [Worker(report, role="reports", url=URL, prefix=PREFIX, concurrency=5),
               Worker(import_batch, role="imports", url=URL, prefix=PREFIX),
               Worker(step, role="etl", url=URL, prefix=PREFIX)]
    coordinator = Coordinator(url=URL, prefix=PREFIX)
    async with AsyncClient(URL, PREFIX) as client:
        running = [asyncio.create_task(w.run()) for w in workers]
        running.append(asyncio.create_task(coordinator.run()))
        print(f"touring {URL} under prefix {PREFIX!r}: ceylon-redis dashboard "
              f"--prefix {PREFIX}; Ctrl-C to stop")
        try:
            await produce(client)
        finally:
            for w in workers:
                w.stop()
            coordinator.stop()
            await asyncio.gather(*running, return_exceptions=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
