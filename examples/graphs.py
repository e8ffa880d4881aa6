"""A graph of tasks: fan-out, fan-in, failure policies, retry, and statistics.

A nightly report fetches four shards (fan-out), summarises whatever it got
(fan-in, ``on_failure="run"``: it runs even if a shard failed, and sees which),
and publishes only a complete summary. One shard fails the first night, so
publishing fails; the operator fixes the shard and calls ``retry_failed()``,
which re-runs the failed shard, the summary that ran without it, and the
publish step, and leaves the three good shards' results alone.

In production the handlers run in daemons (``ceylon-redis worker
examples.graphs:fetch --role fetch`` and so on, one with ``--coordinator``);
here they run in this process:

    python examples/graphs.py
"""

import asyncio
import os

from ceylon_redis import AsyncClient, TaskDef, Worker, current_task

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))
BROKEN = {"shard-3"}  # what the operator fixes between the two runs


async def fetch(data: dict) -> dict:
    await asyncio.sleep(0.2 * SCALE)
    if data["shard"] in BROKEN:
        raise ConnectionError(f"{data['shard']}: upstream refused the connection")
    return {"shard": data["shard"], "rows": 100 * int(data["shard"].split("-")[1])}


async def summarise(data: dict) -> dict:
    task = current_task()
    rows = sum(out["rows"] for out in task.dependency_data.values())
    missing = sorted(task.failed_dependencies)  # prerequisites that failed: the policy is "run"
    return {"rows": rows, "complete": not missing, "missing": missing}


async def publish(data: dict) -> str:
    (summary,) = current_task().dependency_data.values()
    if not summary["complete"]:
        raise ValueError(f"refusing to publish a report missing {', '.join(summary['missing'])}")
    return f"published {summary['rows']} rows"


async def main() -> dict:
    shards = [f"shard-{i}" for i in range(1, 5)]
    tasks = [TaskDef("fetch", {"shard": s}, id=f"fetch-{s}") for s in shards]
    tasks.append(TaskDef("summarise", id="summary", on_failure="run",
                         depends_on=[t.id or "" for t in tasks]))
    tasks.append(TaskDef("publish", id="publish", depends_on=["summary"]))

    client = AsyncClient()  # CEYLON_REDIS_URL / REDIS_URL, else localhost
    worker = Worker([fetch], role="fetch", settings=client.settings, coordinator=True)
    others = [Worker([summarise], role="summarise", settings=client.settings),
              Worker([publish], role="publish", settings=client.settings)]
    runners = [asyncio.create_task(w.run()) for w in [worker, *others]]
    try:
        graph = await client.enqueue_graph(tasks, ttl=3600)
        first = {r.task_id: r for r in await graph.wait(timeout=30)}
        night1 = await graph.info()
        print(f"night 1: {night1.status}, {night1.done}/{night1.total} done")
        print(f"  summary: {first['summary'].output}")
        print(f"  publish: {first['publish'].status.value}: {first['publish'].error}")

        BROKEN.clear()  # the operator fixes shard-3
        retried = await graph.retry_failed()
        second = {r.task_id: r for r in await graph.wait(timeout=30)}
        night2 = await graph.info()
        print(f"retry: {retried} tasks re-run; {night2.status}: {second['publish'].output}")

        for _ in range(100):  # the coordinator folds finished tasks into statistics
            stats = await client.stats()
            if stats.overall.finished >= night1.total + retried:
                break
            await asyncio.sleep(0.05)
        print(f"stats: {stats.overall.completed} completed, {stats.overall.failed} failed, "
              f"success rate {stats.overall.success_rate:.0%}")
        return {"first": first, "second": second, "night1": night1, "night2": night2,
                "retried": retried, "stats": stats}
    finally:
        for w in [worker, *others]:
            w.stop()
        await asyncio.gather(*runners)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
