"""Dependency release in ceylon_redis graphs, against a real Redis.

::

    python -m benchmarks.dag                       # chain 1,000, fan 10,000, median of 3 runs
    python -m benchmarks.dag --quick               # a smoke run: chain 100, fan 1,000, 1 run
    python -m benchmarks.dag --json /tmp/dag.json

Measures, and prints as a table:

1. chain: N tasks (default 1,000), task i depending on task i-1, enqueued with one
   ``Client.enqueue_graph`` call and drained by ONE worker process
   (``python -m ceylon_redis worker benchmarks.handlers:noop_async --role bench-chain
   --concurrency 1``). The worker is started first and the clock starts once it has
   registered in Redis (and ran one warm-up task); it stops when ``Client.wait`` has
   the last task's result. Reported: the ``enqueue_graph`` call, the total, the time
   per task (total / N), and, from the task hashes (``started_at``/``finished_at``,
   Unix seconds on Redis's clock with ms resolution), the hop gap of each task
   (its ``started_at`` minus its prerequisite's ``finished_at``): mean, p50, p95,
   p99 and max; also each task's run time (``finished_at - started_at``), p50.
   A hop is: the finish script XADDs the released task to the stream, the worker's
   blocked ``XREADGROUP`` wakes, the start script marks it RUNNING;
2. fan-out/fan-in: one root, W children (default 10,000) each depending on the
   root, and one sink depending on all W children, in one ``enqueue_graph`` call,
   drained by ONE worker process with ``--concurrency`` (default 100) and the async
   no-op handler. Reported: completion time from the ``enqueue_graph`` call to the
   sink's result (wall clock), and from the root's ``started_at`` to the sink's
   ``finished_at`` (Redis clock), with tasks/s for both; the release of the
   children (first child's ``started_at`` minus the root's ``finished_at``); the
   release latency of the sink (its ``started_at`` minus the latest ``finished_at``
   of the children); the sink's run time (its start script gathers W outputs).

Every task must end COMPLETED with its own input as output (the handler returns
its input), and the graph must report ``completed``; anything else is a problem.

Every figure is the median of ``--repeat`` runs; each run starts a fresh worker.
The run uses a namespace of its own (``bench-dag-<uuid8>``) on the given Redis and
deletes only that namespace's keys (``{bench-dag-<uuid8>}:*``), between runs and at
the end. It never flushes.

A benchmark reports; it asserts nothing about speed. It exits 1 only when a result
is wrong or missing (or a worker fails), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from benchmarks.throughput import (
    BenchBase,
    Report,
    WorkerProcess,
    delete_namespace,
    machine_info,
    percentile,
    stop_worker,
)
from ceylon_redis import Client, Graph, TaskDef, TaskTimeoutError
from ceylon_redis.settings import DEFAULT_URL, redact_url, url_from_env

HANDLER = "benchmarks.handlers:noop_async"
CHAIN_ROLE = "bench-chain"
FAN_ROLE = "bench-fan"


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "tasks/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if unit == "s":
        return f"{value:,.3f}"
    return f"{value:,.3g}"


def render(report: Report) -> str:
    m, p = report.machine, report.params
    lines = [
        f"ceylon_redis {m['ceylon_redis']} DAG benchmark, {m['date']}",
        f"machine: {m['cores']} cores, {m['platform']}; Python {m['python']} "
        f"({m['python_implementation']}); redis-py {m['redis_py']}"
        f"{' + hiredis' if m['hiredis'] else ''}",
        f"redis:   {m['redis_version']} at {m['redis_url']}",
        f"params:  chain={p['chain']} (worker concurrency 1), fan={p['fan']} "
        f"(worker concurrency {p['concurrency']}), repeat={p['repeat']} (median shown); "
        "hop figures from task hashes (Redis clock, 1 ms resolution)",
        "",
    ]
    name_w = max(len(r.name) for r in report.rows) if report.rows else 20
    header = f"{'':<6} {'measurement':<{name_w}}  {'median':>10}  {'unit':<8}  runs"
    lines += [header, "-" * len(header)]
    section = None
    for r in report.rows:
        label = r.section if r.section != section else ""
        section = r.section
        runs = " / ".join(_fmt(v, r.unit) for v in r.runs)
        lines.append(f"{label:<6} {r.name:<{name_w}}  {_fmt(r.median, r.unit):>10}  "
                     f"{r.unit:<8}  {runs}")
    if report.problems:
        lines += ["", f"{len(report.problems)} problem(s):"]
        lines += [f"  - {t}" for t in report.problems]
    return "\n".join(lines)


# --------------------------------------------------------------------------- benchmarks


class Timing:
    """status, started_at and finished_at (ms on Redis's clock, -1 if unset) of one task hash."""

    __slots__ = ("finished", "started", "status")

    def __init__(self, raw: list[Any]) -> None:
        status, started, finished = raw
        self.status: str | None = status.decode() if status else None
        self.started: int = round(float(started) * 1000) if started else -1
        self.finished: int = round(float(finished) * 1000) if finished else -1


class Bench(BenchBase):
    def __init__(self, args: argparse.Namespace, report: Report, r: redis.Redis) -> None:
        super().__init__(args, report, r)
        self.chain_n: int = args.chain
        self.fan_n: int = args.fan

    def add(self, section: str, name: str, unit: str, value: float) -> None:
        self.report.row(section, name, unit).runs.append(value)

    # ----- helpers

    def _timings(self, ids: list[str]) -> list[Timing]:
        with self.redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hmget("{" + self.prefix + "}:task:" + tid,
                           ["status", "started_at", "finished_at"])
            return [Timing(raw) for raw in pipe.execute()]

    def _start_worker(self, what: str, role: str, concurrency: int,
                      client: Client) -> WorkerProcess | None:
        """A worker, registered and past one warm-up task (which also opens the waiter)."""
        worker = WorkerProcess(self.url, self.prefix, HANDLER, role, concurrency)
        if not worker.wait_ready(30):
            self.report.problem(f"{what}: worker did not start:\n    {worker.tail()}")
            stop_worker(self.report, worker, what)
            return None
        try:
            warm = client.wait(client.enqueue(role, "warm-up"), timeout=30)
        except TaskTimeoutError:
            warm = None
        if warm is None or not warm.success or warm.output != "warm-up":
            self.report.problem(f"{what}: warm-up task returned {warm!r}\n    {worker.tail()}")
            stop_worker(self.report, worker, what)
            return None
        return worker

    def _check(self, what: str, graph: Graph, ids: list[str],
               expected: list[Any], timings: list[Timing]) -> bool:
        """Every task COMPLETED with its input as output, timed; the graph completed."""
        try:
            results = graph.wait(timeout=60)
        except TaskTimeoutError as exc:
            self.report.problem(f"{what}: graph not final: {exc}")
            return False
        wrong = [(i, r) for i, r in enumerate(results)
                 if not r.success or r.output != expected[i] or r.task_id != ids[i]]
        if len(results) != len(ids) or wrong:
            i, r = wrong[0] if wrong else (-1, None)
            self.report.problem(f"{what}: {len(wrong)} wrong of {len(results)} results "
                                f"(expected {len(ids)}); first: #{i} -> {r!r}")
            return False
        bad = [(ids[i], t.status) for i, t in enumerate(timings)
               if t.status != "COMPLETED" or t.started < 0 or t.finished < 0]
        if bad:
            self.report.problem(f"{what}: {len(bad)} task hashes not COMPLETED with timings; "
                                f"first: {bad[0]}")
            return False
        info = graph.info()
        if info.status != "completed" or info.completed != len(ids) or info.total != len(ids):
            self.report.problem(f"{what}: graph info {info!r}, expected {len(ids)} completed")
            return False
        return True

    def _run_graph(self, what: str, role: str, concurrency: int, defs: list[TaskDef],
                   expected: list[Any]) -> tuple[float, float, list[Timing]] | None:
        """Enqueue ``defs`` as one graph for a fresh worker and wait for its last task.

        Returns the enqueue call's and the whole run's seconds and every task's timing,
        or None after reporting what went wrong.
        """
        ids = [d.id or "" for d in defs]
        with Client(self.url, self.prefix) as client:
            worker = self._start_worker(what, role, concurrency, client)
            if worker is None:
                return None
            try:
                began = time.perf_counter()
                graph = client.enqueue_graph(defs)
                enqueued = time.perf_counter()
                try:
                    last = client.wait(ids[-1], timeout=self.timeout)
                except TaskTimeoutError as exc:
                    self.report.problem(f"{what}: last task not final after {self.timeout} s "
                                        f"({graph.info()!r}): {exc}\n    {worker.tail()}")
                    return None
                done = time.perf_counter()
                if not last.success:
                    self.report.problem(f"{what}: last task ended {last!r}")
                    return None
                timings = self._timings(ids)
                if not self._check(what, graph, ids, expected, timings):
                    return None
            finally:
                stop_worker(self.report, worker, what)
        return enqueued - began, done - began, timings

    # ----- 1. chain

    def chain(self) -> None:
        for k in range(self.repeat):
            with self.step(f"chain run {k + 1}/{self.repeat}: {self.chain_n} tasks"):
                self._chain_once(k)

    def _chain_once(self, k: int) -> None:
        n = self.chain_n
        ids = [f"chain{k}-{i:06d}" for i in range(n)]
        defs = [TaskDef(CHAIN_ROLE, i, id=ids[i], depends_on=(ids[i - 1],) if i else ())
                for i in range(n)]
        run = self._run_graph(f"chain run {k + 1}", CHAIN_ROLE, 1, defs, list(range(n)))
        if run is None:
            return
        enqueue_s, total, timings = run
        gaps = [float(timings[i].started - timings[i - 1].finished) for i in range(1, n)]
        runs = [float(t.finished - t.started) for t in timings]
        self.add("chain", f"enqueue_graph call, {n} tasks", "ms", enqueue_s * 1000)
        self.add("chain", "total, enqueue to last result", "s", total)
        self.add("chain", "time per task (total / N)", "ms", total / n * 1000)
        self.add("chain", "hop gap (start - prereq finish), mean", "ms", statistics.fmean(gaps))
        for q in (50, 95, 99):
            self.add("chain", f"hop gap, p{q}", "ms", percentile(gaps, q))
        self.add("chain", "hop gap, max", "ms", max(gaps))
        self.add("chain", "task run (finish - start), p50", "ms", percentile(runs, 50))

    # ----- 2. fan-out / fan-in

    def fan(self) -> None:
        for k in range(self.repeat):
            with self.step(f"fan run {k + 1}/{self.repeat}: 1 + {self.fan_n} + 1 tasks"):
                self._fan_once(k)

    def _fan_once(self, k: int) -> None:
        w = self.fan_n
        root, sink = f"fan{k}-root", f"fan{k}-sink"
        children = [f"fan{k}-{i:06d}" for i in range(w)]
        defs = [TaskDef(FAN_ROLE, "root", id=root),
                *(TaskDef(FAN_ROLE, i, id=c, depends_on=(root,)) for i, c in enumerate(children)),
                TaskDef(FAN_ROLE, "sink", id=sink, depends_on=children)]
        run = self._run_graph(f"fan run {k + 1}", FAN_ROLE, self.concurrency, defs,
                              ["root", *range(w), "sink"])
        if run is None:
            return
        enqueue_s, wall, timings = run
        t_root, t_children, t_sink = timings[0], timings[1:-1], timings[-1]
        last_child = max(t.finished for t in t_children)
        first_child = min(t.started for t in t_children)
        redis_span = (t_sink.finished - t_root.started) / 1000
        total = len(defs)
        self.add("fan", f"enqueue_graph call, {total} tasks", "ms", enqueue_s * 1000)
        self.add("fan", "completion, enqueue to sink result", "s", wall)
        self.add("fan", "  tasks/s (from enqueue)", "tasks/s", total / wall)
        self.add("fan", "completion, root start to sink finish", "s", redis_span)
        if redis_span > 0:
            self.add("fan", "  tasks/s (from root start)", "tasks/s", total / redis_span)
        self.add("fan", "children release (1st child start - root finish)", "ms",
                 float(first_child - t_root.finished))
        self.add("fan", "sink release (start - last child finish)", "ms",
                 float(t_sink.started - last_child))
        self.add("fan", "sink run (finish - start)", "ms", float(t_sink.finished - t_sink.started))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.dag",
        description="Dependency release in ceylon_redis graphs: a deep chain and a wide "
                    "fan-out/fan-in.")
    ap.add_argument("--url", default=url_from_env() or DEFAULT_URL,
                    help="Redis URL [env CEYLON_REDIS_URL, REDIS_URL; default %(default)s]")
    ap.add_argument("--chain", type=int, default=None,
                    help="tasks in the chain (default 1000; 100 with --quick)")
    ap.add_argument("--fan", type=int, default=None,
                    help="children between root and sink (default 10000; 1000 with --quick)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of each measurement; the median is reported (default 3; 1 with "
                         "--quick)")
    ap.add_argument("--concurrency", type=int, default=100,
                    help="the fan worker's --concurrency (default %(default)s; the chain's is 1)")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds a graph may take before its tasks count as missing "
                         "(default %(default)s)")
    ap.add_argument("--only", choices=["chain", "fan"], action="append",
                    help="run only this section (repeatable; default both)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the figures as JSON to PATH")
    ap.add_argument("--quick", action="store_true",
                    help="small counts, for a smoke run (e.g. in tests)")
    args = ap.parse_args(argv)
    if args.chain is None:
        args.chain = 100 if args.quick else 1000
    if args.fan is None:
        args.fan = 1000 if args.quick else 10000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    for name in ("repeat", "concurrency", "fan"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.chain < 2:
        ap.error("--chain must be at least 2")
    args.prefix = f"bench-dag-{uuid.uuid4().hex[:8]}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    r = redis.Redis.from_url(args.url)
    try:
        machine = machine_info(r, args.url)
    except redis.RedisError as exc:
        print(f"error: cannot reach Redis at {redact_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    params = {"chain": args.chain, "fan": args.fan, "repeat": args.repeat,
              "concurrency": args.concurrency, "prefix": args.prefix, "quick": args.quick}
    report = Report(machine, params)
    bench = Bench(args, report, r)
    sections: list[tuple[str, Callable[[], None]]] = [("chain", bench.chain), ("fan", bench.fan)]
    print(f"benchmarking ceylon_redis graphs on {machine['redis_url']} under prefix "
          f"{args.prefix} (chain {args.chain}, fan {args.fan}, {args.repeat} runs)",
          file=sys.stderr, flush=True)
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
    if not report.rows and not report.problems:
        report.problems.append("nothing was measured")
    print(render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
