"""``python -m benchmarks.cluster_drain``: one role's drain rate split over 1, 2 and 3 shards.

For each layout, a Redis Cluster of the benchmark's own with that many masters, and a
namespace with one partition per shard (``Settings.partitions``), its prefix chosen so
that each partition's slot is on a different shard. The same worker processes
(``--workers``, each ``--concurrency``) drain ``--tasks`` no-op tasks enqueued
beforehand; the clock runs from the moment every worker has registered to the last
result. Every result is read back and checked. Also: 3 partitions on 1 shard, which
shows what partitioning itself costs. Medians of ``--repeat`` runs, and the ratio to
one shard, one partition. It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks.redis_server import own_cluster, spread_prefix
from benchmarks.throughput import ASYNC_HANDLER, WorkerProcess
from ceylon_redis import Client, Settings

ROLE = "bench"
LAYOUTS = ((1, 1), (1, 3), (2, 2), (3, 3))
"""(shards, partitions) measured, in order."""


def drain_once(url: str, prefix: str, partitions: int, tasks: int, workers: int,
               concurrency: int, timeout: float) -> float:
    """Tasks/s of one drain; raises if any result is missing or wrong."""
    settings = Settings(url=url, prefix=prefix, partitions=partitions)
    env = {"CEYLON_REDIS_PARTITIONS": str(partitions), "CEYLON_REDIS_LOG_LEVEL": "WARNING"}
    with Client(settings=settings) as client:
        ids = client.enqueue_many(ROLE, range(tasks))
        procs = [WorkerProcess(url, prefix, ASYNC_HANDLER, ROLE, concurrency, env)
                 for _ in range(workers)]
        try:
            r = client.redis
            deadline = time.monotonic() + 30
            while r.zcard(client.keys.workers) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not register:\n    "
                                       + "\n    ".join(p.tail() for p in procs))
                time.sleep(0.002)
            began = time.perf_counter()
            results = client.wait_many(ids, timeout=timeout)
            took = time.perf_counter() - began
        finally:
            for p in procs:
                p.stop()
    wrong = [i for i, res in enumerate(results) if not res.success or res.output != i]
    if wrong:
        raise RuntimeError(f"{len(wrong)} wrong results, first #{wrong[0]}")
    return tasks / took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    print(f"{args.tasks} no-op tasks, {args.workers} worker processes x concurrency "
          f"{args.concurrency}, {os.cpu_count()} cores, medians of {args.repeat}")
    rates: dict[tuple[int, int], float] = {}
    for shards, partitions in LAYOUTS:
        with own_cluster(shards) as ports:
            url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
            runs = []
            for k in range(args.repeat):
                prefix = spread_prefix(ports, partitions, k)
                runs.append(drain_once(url, prefix, partitions, args.tasks, args.workers,
                                       args.concurrency, args.timeout))
            rates[(shards, partitions)] = statistics.median(runs)
        base = rates[LAYOUTS[0]]
        rate = rates[(shards, partitions)]
        print(f"{shards} shard(s), {partitions} partition(s): {rate:>10,.0f} tasks/s "
              f"{rate / base:>6.2f}x  (runs: {', '.join(f'{x:,.0f}' for x in runs)})",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
