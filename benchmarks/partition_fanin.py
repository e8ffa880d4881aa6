"""``python -m benchmarks.partition_fanin``: what a wide fan-in costs across partitions.

A sink enqueued on its own, depending on ``--width`` no-op tasks enqueued beforehand
with ``enqueue_many``, on a Redis of the benchmark's own, with 1 and with
``--partitions`` partitions. With partitions every such edge is linked at enqueue
(link.lua, one call per prerequisite partition and 1,000 edges) and released through
a coordinator. Reported, medians of ``--repeat``: the sink's enqueue call, and the
time from the moment a worker process (and a coordinator process) registered to the
sink's result, with the ratio to one partition; the sink must complete. It reports; it
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchmarks.redis_server import own_redis
from benchmarks.throughput import ASYNC_HANDLER, ROOT, WorkerProcess
from ceylon_redis import Client, Settings

ROLE = "bench"


def fan_in_once(url: str, prefix: str, partitions: int, width: int) -> tuple[float, float]:
    """(seconds to enqueue the sink, seconds from workers ready to the sink's result)."""
    env = {"CEYLON_REDIS_PARTITIONS": str(partitions), "CEYLON_REDIS_LOG_LEVEL": "WARNING"}
    with Client(settings=Settings(url=url, prefix=prefix, partitions=partitions)) as client:
        ids = client.enqueue_many(ROLE, range(width))
        began = time.perf_counter()
        sink = client.enqueue(ROLE, "sink", depends_on=ids)
        linked = time.perf_counter() - began
        worker = WorkerProcess(url, prefix, ASYNC_HANDLER, ROLE, 100, env)
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "ceylon_redis", "coordinator"], cwd=ROOT,
            env={**os.environ, **env, "CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": prefix},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not worker.wait_ready(30):
                raise RuntimeError("worker did not start:\n    " + worker.tail())
            began = time.perf_counter()
            result = client.wait(sink, timeout=120)
            took = time.perf_counter() - began
        finally:
            worker.stop()
            coordinator.terminate()
            coordinator.wait(20)
    if not result.success or result.output != "sink":
        raise RuntimeError(f"sink ended {result!r}")
    return linked, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"sink over {args.width:,} prerequisites enqueued before it; one worker process "
          f"(concurrency 100) and one coordinator; {os.cpu_count()} cores, "
          f"medians of {args.repeat}")
    base: tuple[float, float] | None = None
    with own_redis() as url:
        for partitions in (1, args.partitions):
            runs = [fan_in_once(url, f"fanin-{partitions}-{k}", partitions, args.width)
                    for k in range(args.repeat)]
            link = statistics.median(r[0] for r in runs)
            done = statistics.median(r[1] for r in runs)
            base = base or (link, done)
            print(f"{partitions} partition(s): sink enqueued in {link * 1000:,.0f} ms "
                  f"({link / base[0]:.2f}x), fan-in done in {done:,.2f} s "
                  f"({done / base[1]:.2f}x)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
