"""Throughput and latency of ceylon_redis against a real Redis.

::

    python -m benchmarks.throughput                       # 20,000 tasks, median of 3 runs
    python -m benchmarks.throughput --quick               # a smoke run of a few seconds
    python -m benchmarks.throughput --json /tmp/bench.json

Measures, and prints as a table:

1. enqueue rate (tasks/s): ``Client.enqueue`` and ``AsyncClient.enqueue`` one at a
   time, ``AsyncClient.enqueue`` from 32 concurrent coroutines, and
   ``Client.enqueue_many`` / ``AsyncClient.enqueue_many`` in bulk;
2. drain rate (tasks/s) of no-op tasks by ONE worker process
   (``python -m ceylon_redis worker benchmarks.handlers:noop_async ...``), for an
   async and a sync handler: N tasks are enqueued first, then the worker is
   started and timed until ``Client.wait_many`` has every result; each result is
   checked (the handler returns its input). The rate is given from the worker's
   spawn (Python start-up and imports included) and from the moment it registered
   with Redis (ready to read);
3. round-trip latency (ms): one producer enqueues a task and waits for its result,
   sequentially, against a running worker; p50 and p99, for ``AsyncClient`` and
   ``Client``.

Every figure is the median of ``--repeat`` runs. The run uses a namespace of its
own (``bench-<uuid8>``) on the given Redis and deletes only that namespace's keys
(``{bench-<uuid8>}:*``), between measurements and at the end. It never flushes.

A benchmark reports; it asserts nothing about speed. It exits 1 only when a result
is wrong or missing (or a worker fails), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

import ceylon_redis
from ceylon_redis import AsyncClient, Client, TaskTimeoutError
from ceylon_redis.connection import sync_redis
from ceylon_redis.settings import DEFAULT_URL, redact_url, url_from_env

ROOT = Path(__file__).resolve().parent.parent
ASYNC_HANDLER = "benchmarks.handlers:noop_async"
SYNC_HANDLER = "benchmarks.handlers:noop_sync"
CONCURRENT_PRODUCERS = 32
WARMUP = 20


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One measured figure: its runs and their median."""

    section: str
    name: str
    unit: str
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


@dataclass
class Report:
    machine: dict[str, Any]
    params: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def row(self, section: str, name: str, unit: str) -> Row:
        for r in self.rows:
            if (r.section, r.name) == (section, name):
                return r
        r = Row(section, name, unit)
        self.rows.append(r)
        return r

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  ! {text}", file=sys.stderr, flush=True)

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "params": self.params,
            "results": [{**asdict(r), "median": r.median} for r in self.rows],
            "problems": self.problems,
            "ok": not self.problems,
        }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "tasks/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.3g}"


def render(report: Report) -> str:
    m, p = report.machine, report.params
    lines = [
        f"ceylon_redis {m['ceylon_redis']} benchmark, {m['date']}",
        f"machine: {m['cores']} cores, {m['platform']}; Python {m['python']} "
        f"({m['python_implementation']}); redis-py {m['redis_py']}"
        f"{' + hiredis' if m['hiredis'] else ''}",
        f"redis:   {m['redis_version']} at {m['redis_url']}",
        f"params:  tasks={p['tasks']} repeat={p['repeat']} (median shown) "
        f"worker concurrency={p['concurrency']} latency round trips={p['latency_n']}",
        "",
    ]
    name_w = max(len(r.name) for r in report.rows) if report.rows else 20
    header = f"{'':<9} {'measurement':<{name_w}}  {'median':>10}  {'unit':<8}  runs"
    lines += [header, "-" * len(header)]
    section = None
    for r in report.rows:
        label = r.section if r.section != section else ""
        section = r.section
        runs = " / ".join(_fmt(v, r.unit) for v in r.runs)
        lines.append(f"{label:<9} {r.name:<{name_w}}  {_fmt(r.median, r.unit):>10}  "
                     f"{r.unit:<8}  {runs}")
    if report.problems:
        lines += ["", f"{len(report.problems)} problem(s):"]
        lines += [f"  - {t}" for t in report.problems]
    return "\n".join(lines)


# --------------------------------------------------------------------------- redis helpers


def delete_namespace(r: redis.Redis, prefix: str) -> int:
    """Delete every key of this run's namespace ``{prefix}:*``, and nothing else."""
    deleted = 0
    batch: list[Any] = []
    for key in r.scan_iter(match="{" + prefix + "}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += r.unlink(*batch)
            batch = []
    if batch:
        deleted += r.unlink(*batch)
    return deleted


def machine_info(r: redis.Redis, url: str) -> dict[str, Any]:
    server = r.info("server")
    try:
        import hiredis  # noqa: F401

        has_hiredis = True
    except ImportError:
        has_hiredis = False
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "redis_version": server.get("redis_version"),
        "redis_url": redact_url(url),
        "redis_py": redis.__version__,
        "hiredis": has_hiredis,
        "ceylon_redis": ceylon_redis.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --------------------------------------------------------------------------- worker process


class WorkerProcess:
    """``python -m ceylon_redis worker ...`` as a subprocess, with spawn and ready times."""

    live: list[WorkerProcess] = []

    def __init__(self, url: str, prefix: str, target: str, role: str, concurrency: int,
                 env_extra: dict[str, str] | None = None) -> None:
        self.workers_key = "{" + prefix + "}:workers"
        env = {**os.environ, **(env_extra or {})}
        env.update(CEYLON_REDIS_URL=url, CEYLON_REDIS_PREFIX=prefix,
                   CEYLON_REDIS_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
        env.pop("CEYLON_REDIS_LOG_JSON", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self._redis = sync_redis(url)  # any URL form, a cluster's too
        self.log: list[str] = []
        self.ready_at: float | None = None
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ceylon_redis", "worker", target, "--role", role,
             "--concurrency", str(concurrency)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace")
        WorkerProcess.live.append(self)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self._watcher = threading.Thread(target=self._watch_ready, daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def _watch_ready(self) -> None:
        """Note when the worker registers in Redis (its first heartbeat, before any read)."""
        try:
            while self.proc.poll() is None:
                if self._redis.zcard(self.workers_key):
                    self.ready_at = time.perf_counter()
                    return
                time.sleep(0.002)
        except redis.RedisError:
            pass
        finally:
            self._redis.close()

    def wait_ready(self, timeout: float) -> bool:
        self._watcher.join(timeout)
        return self.ready_at is not None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait for the drain and exit; SIGKILL if it does not. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # its stacks, into the log tail
            time.sleep(1)
            self.proc.kill()
            self.proc.wait(10)
            code = None
        self._reader.join(5)
        self._watcher.join(5)
        if self in WorkerProcess.live:
            WorkerProcess.live.remove(self)
        return code

    def tail(self, n: int = 8) -> str:
        return "\n    ".join(self.log[-n:]) or "(no output)"


def stop_worker(report: Report, worker: WorkerProcess, what: str) -> None:
    code = worker.stop()
    if code != 0:
        report.problem(f"{what}: worker pid {worker.pid} exited with "
                       f"{'a timeout (killed)' if code is None else code}:\n    "
                       f"{worker.tail(8)}")
        if code is None:
            dump = Path(f"/tmp/ceylon-bench-worker-{worker.pid}.log")
            dump.write_text("\n".join(worker.log))
            report.problem(f"{what}: its whole log, with every thread's stack: {dump}")


# --------------------------------------------------------------------------- benchmarks


class BenchBase:
    """What every benchmark run shares: where, how often, and a clean namespace per step."""

    def __init__(self, args: argparse.Namespace, report: Report, r: redis.Redis) -> None:
        self.url: str = args.url
        self.prefix: str = args.prefix
        self.repeat: int = args.repeat
        self.concurrency: int = args.concurrency
        self.timeout: float = args.timeout
        self.report = report
        self.redis = r

    def clean(self) -> None:
        delete_namespace(self.redis, self.prefix)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Time one step on stderr; the namespace is emptied after it, whatever happened."""
        print(f"  {title} ...", end="", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            yield
        finally:
            print(f" {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
            self.clean()


class Bench(BenchBase):
    def __init__(self, args: argparse.Namespace, report: Report, r: redis.Redis) -> None:
        super().__init__(args, report, r)
        self.n: int = args.tasks
        self.latency_n: int = args.latency_n

    def _check_queued(self, role: str, ids: list[str], what: str) -> bool:
        xlen = self.redis.xlen("{" + self.prefix + "}:stream:" + role)
        if len(ids) != self.n or len(set(ids)) != self.n or xlen != self.n:
            self.report.problem(f"{what}: {len(set(ids))} ids, {xlen} stream entries, "
                                f"expected {self.n}")
            return False
        return True

    # ----- 1. enqueue

    def enqueue(self) -> None:
        methods: list[tuple[str, Callable[[str], tuple[list[str], float]]]] = [
            ("Client.enqueue, one at a time", self._sync_one),
            ("AsyncClient.enqueue, one at a time", lambda role: asyncio.run(self._async_one(role))),
            (f"AsyncClient.enqueue, {CONCURRENT_PRODUCERS} concurrent",
             lambda role: asyncio.run(self._async_concurrent(role))),
            ("Client.enqueue_many", self._sync_many),
            ("AsyncClient.enqueue_many", lambda role: asyncio.run(self._async_many(role))),
        ]
        for k in range(self.repeat):
            for name, run in methods:
                row = self.report.row("enqueue", name, "tasks/s")
                with self.step(f"enqueue run {k + 1}/{self.repeat}: {name}"):
                    try:
                        ids, elapsed = run("bench-enqueue")
                    except Exception as exc:
                        self.report.problem(f"enqueue, {name}: {type(exc).__name__}: {exc}")
                        continue
                    if self._check_queued("bench-enqueue", ids, f"enqueue, {name}"):
                        row.runs.append(self.n / elapsed)

    def _sync_one(self, role: str) -> tuple[list[str], float]:
        with Client(self.url, self.prefix) as client:
            for i in range(WARMUP):
                client.enqueue("bench-warmup", i)
            ids = []
            began = time.perf_counter()
            for i in range(self.n):
                ids.append(client.enqueue(role, i))
            return ids, time.perf_counter() - began

    async def _async_one(self, role: str) -> tuple[list[str], float]:
        async with AsyncClient(self.url, self.prefix) as client:
            for i in range(WARMUP):
                await client.enqueue("bench-warmup", i)
            ids = []
            began = time.perf_counter()
            for i in range(self.n):
                ids.append(await client.enqueue(role, i))
            return ids, time.perf_counter() - began

    async def _async_concurrent(self, role: str) -> tuple[list[str], float]:
        async with AsyncClient(self.url, self.prefix) as client:
            await asyncio.gather(*(client.enqueue("bench-warmup", i)
                                   for i in range(CONCURRENT_PRODUCERS)))
            ids: list[str] = []

            async def producer(start: int) -> None:
                for i in range(start, self.n, CONCURRENT_PRODUCERS):
                    ids.append(await client.enqueue(role, i))

            began = time.perf_counter()
            await asyncio.gather(*(producer(p) for p in range(CONCURRENT_PRODUCERS)))
            return ids, time.perf_counter() - began

    def _sync_many(self, role: str) -> tuple[list[str], float]:
        with Client(self.url, self.prefix) as client:
            client.enqueue_many("bench-warmup", range(WARMUP))
            began = time.perf_counter()
            ids = client.enqueue_many(role, range(self.n))
            return ids, time.perf_counter() - began

    async def _async_many(self, role: str) -> tuple[list[str], float]:
        async with AsyncClient(self.url, self.prefix) as client:
            await client.enqueue_many("bench-warmup", range(WARMUP))
            began = time.perf_counter()
            ids = await client.enqueue_many(role, range(self.n))
            return ids, time.perf_counter() - began

    # ----- 2. drain

    def drain(self) -> None:
        for k in range(self.repeat):
            for kind, target in (("async", ASYNC_HANDLER), ("sync", SYNC_HANDLER)):
                with self.step(f"drain run {k + 1}/{self.repeat}: {kind} handler"):
                    self._drain_once(kind, target)

    def _drain_once(self, kind: str, target: str) -> None:
        what = f"drain, {kind} handler"
        role = f"bench-{kind}"
        with Client(self.url, self.prefix) as client:
            ids = client.enqueue_many(role, range(self.n))
            if not self._check_queued(role, ids, f"{what}: enqueue"):
                return
            worker = WorkerProcess(self.url, self.prefix, target, role, self.concurrency)
            try:
                try:
                    results = client.wait_many(ids, timeout=self.timeout)
                    done = time.perf_counter()
                except TaskTimeoutError as exc:
                    left = self.redis.xlen("{" + self.prefix + "}:stream:" + role)
                    self.report.problem(f"{what}: not all {self.n} tasks final after "
                                        f"{self.timeout} s ({left} stream entries left): {exc}"
                                        f"\n    {worker.tail()}")
                    return
                worker.wait_ready(5)
            finally:
                stop_worker(self.report, worker, what)
        wrong = [(i, r) for i, r in enumerate(results)
                 if not r.success or r.output != i or r.task_id != ids[i]]
        if len(results) != self.n or wrong:
            i, r = wrong[0] if wrong else (-1, None)
            self.report.problem(f"{what}: {len(wrong)} wrong of {len(results)} results "
                                f"(expected {self.n}); first: #{i} -> {r!r}")
            return
        label = f"{kind} handler, 1 worker, concurrency {self.concurrency}"
        self.report.row("drain", f"{label}, from spawn", "tasks/s").runs.append(
            self.n / (done - worker.spawned_at))
        if worker.ready_at is not None and worker.ready_at < done:
            self.report.row("drain", f"{label}, from ready", "tasks/s").runs.append(
                self.n / (done - worker.ready_at))
            self.report.row("drain", f"{kind} worker start-up (spawn to ready)", "ms").runs.append(
                (worker.ready_at - worker.spawned_at) * 1000)
        else:
            self.report.problem(f"{what}: never saw worker pid {worker.pid} register in Redis")

    # ----- 3. latency

    def latency(self) -> None:
        role = "bench-latency"
        worker = WorkerProcess(self.url, self.prefix, ASYNC_HANDLER, role, self.concurrency)
        try:
            if not worker.wait_ready(30):
                self.report.problem(f"latency: worker did not start:\n    {worker.tail()}")
                return
            for k in range(self.repeat):
                for name, run in (("AsyncClient", lambda: asyncio.run(self._async_rtt(role))),
                                  ("Client", lambda: self._sync_rtt(role))):
                    print(f"  latency run {k + 1}/{self.repeat}: {name} ...", end="",
                          file=sys.stderr, flush=True)
                    began = time.perf_counter()
                    try:
                        samples = run()
                    except Exception as exc:
                        self.report.problem(f"latency, {name}: {type(exc).__name__}: {exc}")
                        samples = []
                    print(f" {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
                    if samples:
                        for q in (50, 99):
                            self.report.row(
                                "latency", f"{name} enqueue + wait, p{q}", "ms").runs.append(
                                percentile(samples, q) * 1000)
        finally:
            stop_worker(self.report, worker, "latency")
            self.clean()

    def _check_rtt(self, name: str, i: int, result: Any) -> bool:
        if result.success and result.output == i:
            return True
        self.report.problem(f"latency, {name}: round trip {i} returned {result!r}")
        return False

    async def _async_rtt(self, role: str) -> list[float]:
        samples: list[float] = []
        async with AsyncClient(self.url, self.prefix) as client:
            for i in range(-WARMUP, self.latency_n):
                began = time.perf_counter()
                tid = await client.enqueue(role, i)
                result = await client.wait(tid, timeout=30)
                elapsed = time.perf_counter() - began
                if not self._check_rtt("AsyncClient", i, result):
                    return []
                if i >= 0:
                    samples.append(elapsed)
        return samples

    def _sync_rtt(self, role: str) -> list[float]:
        samples: list[float] = []
        with Client(self.url, self.prefix) as client:
            for i in range(-WARMUP, self.latency_n):
                began = time.perf_counter()
                tid = client.enqueue(role, i)
                result = client.wait(tid, timeout=30)
                elapsed = time.perf_counter() - began
                if not self._check_rtt("Client", i, result):
                    return []
                if i >= 0:
                    samples.append(elapsed)
        return samples


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description="Enqueue rate, drain rate and round-trip latency of ceylon_redis.")
    ap.add_argument("--url", default=url_from_env() or DEFAULT_URL,
                    help="Redis URL [env CEYLON_REDIS_URL, REDIS_URL; default %(default)s]")
    ap.add_argument("--tasks", type=int, default=None,
                    help="tasks per enqueue/drain run (default 20000; 500 with --quick)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of each measurement; the median is reported (default 3; 1 with "
                         "--quick)")
    ap.add_argument("--latency-n", type=int, default=None,
                    help="sequential round trips per latency run (default 1000; 50 with --quick)")
    ap.add_argument("--concurrency", type=int, default=100,
                    help="the worker's --concurrency (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds a drain may take before its tasks count as missing "
                         "(default %(default)s)")
    ap.add_argument("--only", choices=["enqueue", "drain", "latency"], action="append",
                    help="run only this section (repeatable; default all)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the figures as JSON to PATH")
    ap.add_argument("--quick", action="store_true",
                    help="small counts, for a smoke run (e.g. in tests)")
    args = ap.parse_args(argv)
    if args.tasks is None:
        args.tasks = 500 if args.quick else 20000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.latency_n is None:
        args.latency_n = 50 if args.quick else 1000
    for name in ("tasks", "repeat", "latency_n", "concurrency"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    args.prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    r = redis.Redis.from_url(args.url)
    try:
        machine = machine_info(r, args.url)
    except redis.RedisError as exc:
        print(f"error: cannot reach Redis at {redact_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    params = {"tasks": args.tasks, "repeat": args.repeat, "latency_n": args.latency_n,
              "concurrency": args.concurrency, "prefix": args.prefix, "quick": args.quick}
    report = Report(machine, params)
    bench = Bench(args, report, r)
    sections: list[tuple[str, Callable[[], None]]] = [
        ("enqueue", bench.enqueue), ("drain", bench.drain), ("latency", bench.latency)]
    print(f"benchmarking ceylon_redis on {machine['redis_url']} under prefix {args.prefix} "
          f"({args.tasks} tasks, {args.repeat} runs)", file=sys.stderr, flush=True)
    try:
        for name, run in sections:
            if not args.only or name in args.only:
                try:
                    run()
                except Exception as exc:  # report it with whatever was measured
                    report.problem(f"{name}: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        report.problem("interrupted")
    finally:
        for worker in list(WorkerProcess.live):
            worker.stop(timeout=10)
        delete_namespace(r, args.prefix)
        r.close()
    for row in report.rows:
        if not row.runs:
            report.problems.append(f"no figure for {row.section}: {row.name}")
    print(render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
