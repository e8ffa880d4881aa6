"""``python -m benchmarks.replication``: what ``Settings.wait_replicas=1`` costs an enqueue.

A master and one replica of the benchmark's own on loopback; the same enqueues with
and without a WAIT for the replica. Reports tasks/s and per-call latency percentiles,
medians of ``--repeat`` runs, and the ratio (waiting / not waiting).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import redis

from benchmarks.redis_server import own_redis
from ceylon_redis import Client, Settings


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _one_at_a_time(client: Client, tasks: int) -> tuple[float, float, float]:
    """tasks/s, p50 ms, p99 ms of single enqueues."""
    latencies = []
    began = time.perf_counter()
    for i in range(tasks):
        t = time.perf_counter()
        client.enqueue("bench", i)
        latencies.append((time.perf_counter() - t) * 1000)
    rate = tasks / (time.perf_counter() - began)
    return rate, _percentile(latencies, 0.5), _percentile(latencies, 0.99)


def _bulk(client: Client, tasks: int) -> float:
    """tasks/s of enqueue_many in calls of 1,000."""
    began = time.perf_counter()
    for start in range(0, tasks, 1000):
        client.enqueue_many("bench", range(start, min(tasks, start + 1000)))
    return tasks / (time.perf_counter() - began)


def _median_of(repeat: int, run: Callable[[], tuple[float, ...]]) -> tuple[float, ...]:
    rows = [run() for _ in range(repeat)]
    return tuple(statistics.median(col) for col in zip(*rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(own_redis())
        port = master.rsplit(":", 1)[1].split("/")[0]
        replica = stack.enter_context(own_redis(extra=("--replicaof", "127.0.0.1", port)))
        r = redis.Redis.from_url(replica)
        while r.info("replication").get("master_link_status") != "up":
            time.sleep(0.05)
        flush = redis.Redis.from_url(master)
        figures: dict[int, tuple[float, ...]] = {}
        for wait in (0, 1):
            settings = Settings(url=master, prefix="bench", wait_replicas=wait)
            with Client(settings=settings) as client:
                def run(client: Client = client) -> tuple[float, ...]:
                    flush.flushdb()
                    one = _one_at_a_time(client, args.tasks)
                    flush.flushdb()
                    return (*one, _bulk(client, args.tasks * 10))
                figures[wait] = _median_of(args.repeat, run)
        flush.flushdb()
    names = ("enqueue one: tasks/s", "enqueue one: p50 ms", "enqueue one: p99 ms",
             "enqueue_many: tasks/s")
    print(f"{'figure':<24}{'no wait':>12}{'wait 1':>12}{'ratio':>8}")
    for i, name in enumerate(names):
        a, b = figures[0][i], figures[1][i]
        print(f"{name:<24}{a:>12,.2f}{b:>12,.2f}{b / a:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
