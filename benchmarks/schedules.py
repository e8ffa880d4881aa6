"""``python -m benchmarks.schedules``: periodic tasks at scale, on a Redis of its own.

Two figures, with ``--schedules`` schedules (default 10,000) fired by
``--coordinators`` coordinator processes:

- **burst**: every schedule made due in the same second; the seconds from that
  second until all their tasks are on the stream (each exactly once: checked);
- **idle cost**: Redis's work per second while no tick is due, with those
  schedules and with none (INFO commandstats calls, and Redis CPU from INFO cpu),
  measured over ``--idle`` seconds; the difference is what the schedules cost.

It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import redis

from benchmarks.redis_server import own_redis
from benchmarks.throughput import ROOT
from ceylon_redis import Client
from ceylon_redis.keys import Keys

ROLE = "cron"


def _coordinators(url: str, prefix: str, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": prefix,
           "CEYLON_REDIS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen([sys.executable, "-m", "ceylon_redis", "coordinator"], cwd=ROOT,
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(n)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def _wait_registered(r: redis.Redis, keys: Keys, n: int) -> None:
    deadline = time.monotonic() + 30
    while r.zcard(keys.coordinators) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("coordinators did not start")
        time.sleep(0.05)


def _idle(r: redis.Redis, seconds: float) -> tuple[float, float]:
    """(commands per second, Redis CPU microseconds per second) over ``seconds``."""
    r.config_resetstat()
    began, cpu0 = time.perf_counter(), _cpu(r)
    time.sleep(seconds)
    took, used = time.perf_counter() - began, _cpu(r) - cpu0
    return _calls(r) / took, used * 1e6 / took


def _cpu(r: redis.Redis) -> float:
    info: dict[str, Any] = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _calls(r: redis.Redis) -> int:
    """Commands since the last CONFIG RESETSTAT (those inside scripts included), but the
    benchmark's own INFO, CONFIG, XLEN and TIME."""
    stats: dict[str, Any] = r.info("commandstats")
    return sum(v["calls"] for k, v in stats.items()
               if k not in ("cmdstat_info", "cmdstat_config", "cmdstat_xlen", "cmdstat_time"))


def run(url: str, n: int, coordinators: int, idle: float) -> None:
    r = redis.Redis.from_url(url)
    prefix = "bench-sched"
    keys = Keys(prefix)
    with Client(url, prefix) as client:
        procs = _coordinators(url, prefix, coordinators)
        try:
            _wait_registered(r, keys, coordinators)
            time.sleep(1)
            base_calls, base_cpu = _idle(r, idle)
        finally:
            _stop(procs)
        began = time.perf_counter()
        for i in range(n):
            client.add_schedule(f"s{i}", ROLE, i, every=3600)
        added = time.perf_counter() - began
        due_ms = int(r.time()[0] * 1000) + 3000
        with r.pipeline(transaction=False) as pipe:
            for i in range(n):
                pipe.zadd(keys.schedules, {f"s{i}": due_ms})
            pipe.execute()
        procs = _coordinators(url, prefix, coordinators)
        try:
            _wait_registered(r, keys, coordinators)
            r.config_resetstat()
            cpu0 = _cpu(r)
            deadline = time.monotonic() + 120
            while r.xlen(keys.stream(ROLE)) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            done_ms = int(r.time()[0] * 1000 + r.time()[1] / 1000)
            entries = r.xlen(keys.stream(ROLE))
            burst_cpu = _cpu(r) - cpu0
            burst_calls = _calls(r)
            time.sleep(1)
            calls, cpu_us = _idle(r, idle)
        finally:
            _stop(procs)
    ids = [f[b"id"] for _, f in r.xrange(keys.stream(ROLE))]
    once = len(ids) == len(set(ids)) == n
    print(f"{n:,} schedules added in {added:.1f} s ({n / added:,.0f}/s, one add_schedule "
          f"call each); {coordinators} coordinator process(es)")
    print(f"burst: all {entries:,} due in the same second enqueued "
          f"{(done_ms - due_ms) / 1000:.2f} s after it "
          f"({'each exactly once' if once else 'NOT each exactly once'}); Redis per tick: "
          f"{burst_calls / n:.1f} commands, {burst_cpu * 1e6 / n:.0f} us CPU (coordinators' "
          "other chores in that window included)")
    print(f"idle, no schedules: {base_calls:,.1f} commands/s, {base_cpu:,.0f} us Redis CPU/s")
    print(f"idle, {n:,} schedules: {calls:,.1f} commands/s, {cpu_us:,.0f} us Redis CPU/s "
          f"(the schedules add {calls - base_calls:+,.1f} commands/s, "
          f"{cpu_us - base_cpu:+,.0f} us/s)")
    r.close()
    if not once:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--coordinators", type=int, default=2)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measured")
    args = parser.parse_args(argv)
    with own_redis() as url:
        run(url, args.schedules, args.coordinators, args.idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
