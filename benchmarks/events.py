"""``python -m benchmarks.events``: what lifecycle events and progress cost the drain rate,
in one run.

One worker process drains ``--tasks`` tasks (async handler, ``--concurrency``), enqueued
before it starts, in each variant, the variants taking turns ``--repeat`` times on a
Redis of its own:

- **events off**: ``events_maxlen=0``, no lifecycle stream;
- **events on**: the default (every transition noted in the script that makes it);
- **progress x10**: events on, and a handler reporting its progress ten times per task
  (coalesced: each task's latest report written every ``progress_interval``, 0.25 s).

For each: the median drain rate (from the worker's registration to the last result),
its ratio to **events off**, Redis's CPU and commands per task (INFO cpu and
commandstats, inside scripts included), and the stream's bytes per task. It reports; it
asserts nothing about speed.
"""

from __future__ import annotations

import argparse

from benchmarks.flow import drain_once, print_table
from benchmarks.redis_server import own_redis
from benchmarks.throughput import ASYNC_HANDLER
from ceylon_redis import Client, Settings

ROLE = "flow"
PROGRESS_HANDLER = "benchmarks.handlers:progress_10_async"
VARIANTS: dict[str, tuple[str, Settings]] = {
    "events off": (ASYNC_HANDLER, Settings(events_maxlen=0)),
    "events on": (ASYNC_HANDLER, Settings()),
    "progress x10": (PROGRESS_HANDLER, Settings()),
}


def _enqueue(client: Client, n: int) -> list[str]:
    return client.enqueue_many(ROLE, range(n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[tuple[float, ...]]] = {v: [] for v in VARIANTS}
    with own_redis() as url:
        for _ in range(args.repeat):
            for name, (handler, settings) in VARIANTS.items():
                rate, cpu, cmds = drain_once(url, _enqueue, args.tasks, args.concurrency,
                                             handler, settings)
                with Client(url, "bench-flow") as client:
                    size = client.redis.memory_usage(client.keys.lifecycle, samples=0) or 0
                runs[name].append((rate, cpu, cmds, size / args.tasks))
    print(f"{args.tasks:,} tasks, 1 worker, concurrency {args.concurrency}, "
          f"median of {args.repeat} (variants in turn)")
    print_table(runs, "events off", [("Redis us/task", ".1f"), ("cmds/task", ".2f"),
                                     ("stream B/task", ".1f")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
