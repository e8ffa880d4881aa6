"""``python -m benchmarks.flow``: what flow control costs the drain rate, in one run.

One worker process drains ``--tasks`` no-op tasks (async handler, ``--concurrency``),
enqueued before it starts, in each variant, the variants taking turns ``--repeat``
times on a Redis of its own:

- **none**: every task at the default priority (the layout without priorities);
- **one level**: every task at priority 9 (all through the priority zset);
- **mixed**: priorities 0-9, in batches of 10 (a placeholder served by the best);
- **rate**: a rate limit of 1,000,000/s on the role (checked for every task, never binding);
- **rate + slots**: that and a concurrency limit of 100,000 (a slot taken and given back).

For each: the median drain rate (from the worker's registration to the last result),
its ratio to **none**, and Redis's CPU and commands per task (INFO cpu and
commandstats, inside scripts included). It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import redis

from benchmarks.peers.base import RedisCost
from benchmarks.redis_server import own_redis
from benchmarks.throughput import ASYNC_HANDLER, WorkerProcess, delete_namespace
from ceylon_redis import Client, Settings

ROLE = "flow"
Enqueue = Callable[[Client, int], list[str]]


def _none(client: Client, n: int) -> list[str]:
    return client.enqueue_many(ROLE, range(n))


def _one_level(client: Client, n: int) -> list[str]:
    return client.enqueue_many(ROLE, range(n), priority=9)


def _mixed(client: Client, n: int) -> list[str]:
    ids: list[str] = []
    for b in range(0, n, 10):
        ids += client.enqueue_many(ROLE, range(b, min(n, b + 10)), priority=(b // 10 * 7) % 10)
    return ids


def _rate(client: Client, n: int) -> list[str]:
    client.set_limit(ROLE, rate="1000000/s")
    return client.enqueue_many(ROLE, range(n))


def _rate_and_slots(client: Client, n: int) -> list[str]:
    client.set_limit(ROLE, rate="1000000/s", concurrency=100_000)
    return client.enqueue_many(ROLE, range(n))


VARIANTS: dict[str, Enqueue] = {"none": _none, "one level (9)": _one_level,
                                "mixed (0-9)": _mixed, "rate (1M/s)": _rate,
                                "rate + slots": _rate_and_slots}


def drain_once(url: str, enqueue: Enqueue, n: int, concurrency: int,
               handler: str = ASYNC_HANDLER, settings: Settings | None = None
               ) -> tuple[float, float, float]:
    """(tasks/s, Redis CPU us per task, Redis commands per task) of one drain; the
    worker runs ``handler`` with ``settings``' events cap and progress interval."""
    r = redis.Redis.from_url(url)
    prefix = "bench-flow"
    delete_namespace(r, prefix)
    settings = (settings or Settings()).with_(url=url, prefix=prefix)
    with Client(settings=settings) as client:
        ids = enqueue(client, n)
        cost = RedisCost(r)
        cost.start()
        worker = WorkerProcess(url, prefix, handler, ROLE, concurrency, {
            "CEYLON_REDIS_LOG_LEVEL": "WARNING",
            "CEYLON_REDIS_EVENTS_MAXLEN": str(settings.events_maxlen),
            "CEYLON_REDIS_PROGRESS_INTERVAL": str(settings.progress_interval)})
        try:
            results = client.wait_many(ids, timeout=300)
            done = time.perf_counter()
            worker.wait_ready(5)
        finally:
            worker.stop()
        calls, cpu_us = cost.stop()
    wrong = [x for i, x in enumerate(results) if not x.success or x.output != i]
    if wrong:
        raise SystemExit(f"{len(wrong)} wrong results; first {wrong[0]!r}")
    began = worker.ready_at or worker.spawned_at
    r.close()
    return n / (done - began), cpu_us / n, calls / n


def print_table(runs: dict[str, list[tuple[float, ...]]], base_variant: str,
                columns: list[tuple[str, str]]) -> None:
    """One line per variant: median drain rate, its ratio to ``base_variant``'s, the
    medians of the other figures of each run (``columns``: header, format), every rate."""
    base = statistics.median(r[0] for r in runs[base_variant])
    width = max(len(name) for name in runs) + 2
    print(f"{'variant':<{width}} {'drain/s':>9} {'ratio':>6} "
          + " ".join(f"{h:>{len(h) + 1}}" for h, _ in columns) + "  runs")
    for name, rows in runs.items():
        rate = statistics.median(r[0] for r in rows)
        figures = " ".join(f"{statistics.median(r[i + 1] for r in rows):>{len(h) + 1}{fmt}}"
                           for i, (h, fmt) in enumerate(columns))
        print(f"{name:<{width}} {rate:>9,.0f} {rate / base:>6.2f} {figures}  "
              + " ".join(f"{r[0]:,.0f}" for r in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[tuple[float, ...]]] = {v: [] for v in VARIANTS}
    with own_redis() as url:
        for _ in range(args.repeat):
            for name, enqueue in VARIANTS.items():
                runs[name].append(drain_once(url, enqueue, args.tasks, args.concurrency))
    print(f"{args.tasks:,} no-op tasks, 1 worker, concurrency {args.concurrency}, "
          f"median of {args.repeat} (variants in turn)")
    print_table(runs, "none", [("Redis us/task", ".1f"), ("cmds/task", ".2f")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
