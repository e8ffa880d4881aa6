"""ceylon-redis against the other Python job queues on Redis, on one Redis of its own.

::

    python -m benchmarks                     # every installed peer, median of 3 runs
    python -m benchmarks --quick             # a smoke run of small counts (used by the tests)
    python -m benchmarks --peers ceylon-redis,arq --only drain --json out.json

The peers (arq, RQ, Celery, Dramatiq, taskiq, SAQ, streaq) come with the ``bench``
extra; see docs/benchmarks.md for the venv they need. A peer whose library is not
installed is listed as skipped. Each workload is run ``--repeat`` times per peer, the
peers in a rotated order each time, and the median is reported, with ceylon-redis'
ratio to the best peer (above 1: ceylon-redis is better, whether higher or lower is
better for that figure). The Redis is flushed before every measurement.

It asserts nothing about speed: it exits 1 only if a workload failed or gave a wrong
result (every result is checked), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchmarks.peers import PEERS
from benchmarks.peers.base import Peer, RedisCost, Unsupported, Workloads
from benchmarks.redis_server import own_redis

US = "ceylon-redis"
WORKLOADS = ("enqueue", "drain", "scale", "rtt", "dag", "memory")
ENQUEUE_MODES = ("sync one", "sync bulk", "async one", "async bulk")


@dataclass
class Figure:
    """One row of the table: a measurement, its unit, and each peer's runs."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    runs: dict[str, list[float]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def median(self, peer: str) -> float | None:
        runs = self.runs.get(peer)
        return statistics.median(runs) if runs else None

    def best_peer(self) -> tuple[str, float] | None:
        """The best peer other than ceylon-redis, and its median."""
        others = [(p, m) for p in self.runs if p != US and (m := self.median(p)) is not None]
        if not others:
            return None
        pick = max if self.higher_is_better else min
        return pick(others, key=lambda pm: pm[1])

    def ratio(self) -> float | None:
        """ceylon-redis against the best peer; above 1 means ceylon-redis is better."""
        ours, best = self.median(US), self.best_peer()
        if ours is None or best is None or ours <= 0 or best[1] <= 0:
            return None
        return ours / best[1] if self.higher_is_better else best[1] / ours


@dataclass
class Run:
    """Everything one benchmark run measured, plus what went wrong."""

    machine: dict[str, Any]
    params: dict[str, Any]
    peers: dict[str, dict[str, str]] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def figure(self, key: str, label: str, unit: str, higher: bool) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, label, unit, higher)
        return self.figures[key]

    def as_json(self) -> dict[str, Any]:
        rows = []
        for f in self.figures.values():
            best = f.best_peer()
            rows.append({
                "key": f.key, "label": f.label, "unit": f.unit,
                "higher_is_better": f.higher_is_better,
                "median": {p: f.median(p) for p in f.runs},
                "runs": f.runs, "unsupported": f.missing,
                "best_peer": best[0] if best else None, "ratio": f.ratio()})
        return {"machine": self.machine, "params": self.params, "peers": self.peers,
                "figures": rows, "problems": self.problems, "ok": not self.problems}


# --------------------------------------------------------------------------- output


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("tasks/s", "B"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:,.1f}"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def table(run: Run, markdown: bool = False) -> str:
    """The figures as a table: a column per peer, then the best peer and our ratio to it."""
    names = [n for n in run.peers if run.peers[n].get("status") == "ran"]
    head = ["measurement", "unit", *names, "best peer", "ratio"]
    rows = []
    for f in run.figures.values():
        best = f.best_peer()
        cells = [fmt(f.median(n), f.unit) for n in names]
        ratio = f.ratio()
        rows.append([f.label, f.unit, *cells, best[0] if best else "-",
                     f"{ratio:.2f}x" if ratio is not None else "-"])
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(("{:<%d}" if i < 2 else "{:>%d}") % w for i, w in enumerate(widths))
    out = [line.format(*head), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [line.format(*r) for r in rows]
    return "\n".join(out)


def report(run: Run, markdown: bool = False) -> str:
    m, p = run.machine, run.params
    lines = [
        f"Job queues on Redis, {m['date']} ({'quick' if p['quick'] else 'full'} run)",
        f"machine: {m['cores']} cores, {m['cpu']}; {m['platform']}",
        f"Python {m['python']}; Redis {m['redis_version']} (its own server); redis-py "
        f"{m['redis_py']}{' + hiredis' if m['hiredis'] else ''}",
        f"params: {p['tasks']:,} tasks per enqueue/drain/memory run, {p['rtt']:,} round trips, "
        f"chain {p['chain']:,}, fan-in {p['fan']:,}; median of {p['repeat']} runs",
        "versions: " + ", ".join(f"{n} {i['version']}" for n, i in run.peers.items()
                                 if i.get("status") == "ran"),
        "",
        table(run, markdown),
        "",
        "ratio: ceylon-redis against the best other peer; above 1 means ceylon-redis is better "
        "(faster, or less memory). '-': the peer has no such API (see the notes).",
    ]
    skipped = {n: i["reason"] for n, i in run.peers.items() if i.get("status") != "ran"}
    if skipped:
        lines.append("skipped: " + "; ".join(f"{n} ({why})" for n, why in skipped.items()))
    lines += ["", "Unsupported:"]
    for f in run.figures.values():
        for n, why in f.missing.items():
            lines.append(f"  {f.label}, {n}: {why}")
    lines += ["", "How each peer was used:"]
    lines += [f"  {n}: {i['notes']}" for n, i in run.peers.items() if i.get("status") == "ran"]
    if run.problems:
        lines += ["", f"{len(run.problems)} problem(s):"] + [f"  - {t}" for t in run.problems]
    return "\n".join(lines)


# --------------------------------------------------------------------------- running


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def machine_info(url: str) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    try:
        version = r.info("server")["redis_version"]
    finally:
        r.close()
    cpu = "?"
    with open("/proc/cpuinfo") if os.path.exists("/proc/cpuinfo") else open(os.devnull) as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        import hiredis  # noqa: F401

        has_hiredis = True
    except ImportError:
        has_hiredis = False
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "redis_version": version,
            "redis_py": redis.__version__, "hiredis": has_hiredis}


def load_peers(names: list[str], url: str, logdir: Path, run: Run) -> list[Peer]:
    peers = []
    for name in names:
        module, cls = PEERS[name].split(":")
        try:
            peer_cls = getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            run.peers[name] = {"status": "skipped", "reason": f"not installed: {exc}"}
            continue
        try:
            version = importlib.metadata.version(peer_cls.package)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        peer = peer_cls(url, logdir)
        peer.open()
        peers.append(peer)
        run.peers[name] = {"status": "ran", "version": version, "notes": peer_cls.notes}
    return peers


class Runner:
    """Runs each workload on each peer, ``repeat`` times, into a Run."""

    def __init__(self, args: argparse.Namespace, url: str, run: Run) -> None:
        self.args = args
        self.r = redis.Redis.from_url(url)
        self.w = Workloads(timeout=args.timeout)
        self.run = run

    def used_memory(self) -> int:
        """Bytes of data (used_memory less Redis' overhead: client buffers, scripts...)."""
        return int(self.r.info("memory")["used_memory_dataset"])

    def measure(self, peers: list[Peer], what: str,
                body: Callable[[Peer], None]) -> None:
        """Run body on every peer, repeat times, the peers rotated each round."""
        for k in range(self.args.repeat):
            turn = peers[k % len(peers):] + peers[:k % len(peers)]
            for peer in turn:
                self.r.flushdb()  # database 0 of the server own_redis started for this run
                time.sleep(0.05)
                print(f"  {what} run {k + 1}/{self.args.repeat}: {peer.name} ...", end="",
                      file=sys.stderr, flush=True)
                began = time.perf_counter()
                try:
                    body(peer)
                    status = f"{time.perf_counter() - began:.1f} s"
                except Unsupported:
                    status = "unsupported"
                except Exception as exc:
                    status = "FAILED"
                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    self.run.problems.append(f"{what}, {peer.name}: {detail}")
                print(f" {status}", file=sys.stderr, flush=True)

    def record(self, peer: Peer, key: str, label: str, unit: str, higher: bool,
               get: Callable[[], float | None]) -> None:
        fig = self.run.figure(key, label, unit, higher)
        try:
            value = get()
        except Unsupported as exc:
            fig.missing[peer.name] = str(exc)
            raise
        if value is not None:
            fig.runs.setdefault(peer.name, []).append(value)

    def enqueue(self, peers: list[Peer]) -> None:
        n = self.args.tasks
        for mode in ENQUEUE_MODES:
            label = f"enqueue, {mode.replace('one', 'one at a time')}"
            self.measure(peers, label, lambda p, mode=mode, label=label: self.record(
                p, f"enqueue.{mode}", label, "tasks/s", True,
                lambda: self.w.enqueue(p, mode, n)))

    def drain(self, peers: list[Peer]) -> None:
        n = self.args.tasks
        for kind in ("async", "sync"):
            def body(p: Peer, kind: str = kind) -> None:
                c = p.concurrency.get(kind, 0)
                label = f"drain, {kind} handler, 1 process"
                if kind not in p.handler_kinds:
                    self.record(p, f"drain.{kind}", label, "tasks/s", True,
                                lambda: _unsupported(f"no {kind} handlers"))
                t = self.w.drain(p, kind, n, cost=RedisCost(self.r))
                self.record(p, f"drain.{kind}", label, "tasks/s", True,
                            lambda: n / t.from_first if t.from_first else None)
                self.record(p, f"drain.{kind}.spawn", f"{label}, from spawn", "tasks/s", True,
                            lambda: n / t.from_spawn)
                self.record(p, f"drain.{kind}.cpu", f"{label}: Redis CPU per task", "us",
                            False, lambda: (t.cpu_us or 0) / n)
                self.record(p, f"drain.{kind}.commands", f"{label}: Redis commands per task",
                            "commands", False, lambda: (t.commands or 0) / n)
                self.run.peers[p.name][f"concurrency_{kind}"] = str(c)
            self.measure(peers, f"drain, {kind} handler", body)

    def scale(self, peers: list[Peer]) -> None:
        n = self.args.tasks
        for procs in self.args.scale:
            def body(p: Peer, procs: int = procs) -> None:
                kind = "async" if "async" in p.handler_kinds else "sync"
                t = self.w.drain(p, kind, n * procs, processes=procs)
                self.record(p, f"scale.{procs}", f"drain, {procs} processes", "tasks/s", True,
                            lambda: n * procs / t.from_first if t.from_first else None)
            if procs > 1:
                self.measure(peers, f"drain, {procs} processes", body)

    def rtt(self, peers: list[Peer]) -> None:
        def body(p: Peer) -> None:
            samples = self.w.round_trip(p, self.args.rtt)
            for q in (50, 99):
                self.record(p, f"rtt.p{q}", f"round trip, p{q}", "ms", False,
                            lambda q=q: percentile(samples, q) * 1000)
        self.measure(peers, "round trip", body)

    def dag(self, peers: list[Peer]) -> None:
        depth, width = self.args.chain, self.args.fan
        self.measure(peers, "chain", lambda p: self.record(
            p, "dag.chain", f"chain of {depth:,}, per hop", "ms", False,
            lambda: self.w.dag(p, "chain", depth) / depth * 1000))
        self.measure(peers, "fan-in", lambda p: self.record(
            p, "dag.fan", f"fan-out/fan-in of {width:,}", "s", False,
            lambda: self.w.dag(p, "fan", width)))

    def memory(self, peers: list[Peer]) -> None:
        def body(p: Peer) -> None:
            queued, stored = self.w.memory(p, self.args.tasks, self.used_memory)
            self.record(p, "memory.queued", "Redis memory per queued task", "B", False,
                        lambda: queued)
            self.record(p, "memory.result", "Redis memory per stored result", "B", False,
                        lambda: stored)
        self.measure(peers, "memory", body)


def _unsupported(reason: str) -> float:
    raise Unsupported(reason)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated peers to run (default: all installed): "
                         + ", ".join(PEERS))
    ap.add_argument("--only", action="append", choices=WORKLOADS,
                    help="run only this workload (repeatable; default all)")
    ap.add_argument("--tasks", type=int, help="tasks per enqueue, drain and memory run "
                                              "(default 10000; 200 with --quick)")
    ap.add_argument("--rtt", type=int, help="sequential round trips (default 1000; 20 quick)")
    ap.add_argument("--chain", type=int, help="chain depth (default 1000; 10 quick)")
    ap.add_argument("--fan", type=int, help="fan-out width (default 10000; 100 quick)")
    ap.add_argument("--scale", default=None,
                    help="worker processes for the scale runs, comma-separated "
                         "(default 1,2,4; 1,2 quick)")
    ap.add_argument("--repeat", type=int, help="runs per figure; the median is shown "
                                               "(default 3; 1 quick)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds a workload may take before it counts as failed")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--markdown", type=Path, help="also write the report, table in Markdown")
    ap.add_argument("--redis-server", default="redis-server", help="the redis-server binary")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    args = ap.parse_args(argv)
    quick = args.quick
    for name, full, small in (("tasks", 10000, 200), ("rtt", 1000, 20), ("chain", 1000, 10),
                              ("fan", 10000, 100), ("repeat", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    try:
        args.scale = [int(x) for x in (args.scale or ("1,2" if quick else "1,2,4")).split(",")]
    except ValueError:
        ap.error(f"--scale takes numbers separated by commas, not {args.scale!r}")
    args.peer_names = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peer_names if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logdir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    try:
        server = own_redis(args.redis_server)
        url = server.__enter__()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        params = {k: getattr(args, k) for k in ("tasks", "rtt", "chain", "fan", "repeat",
                                                 "scale", "quick")}
        run = Run(machine_info(url), params)
        peers = load_peers(args.peer_names, url, logdir, run)
        runner = Runner(args, url, run)
        print(f"benchmarking {', '.join(p.name for p in peers)} on {url}; "
              f"worker logs in {logdir}", file=sys.stderr, flush=True)
        steps = {"enqueue": runner.enqueue, "drain": runner.drain, "scale": runner.scale,
                 "rtt": runner.rtt, "dag": runner.dag, "memory": runner.memory}
        try:
            for name in WORKLOADS:
                if not args.only or name in args.only:
                    steps[name](peers)
        except KeyboardInterrupt:
            run.problems.append("interrupted")
        finally:
            for peer in peers:
                peer.shutdown()
    finally:
        server.__exit__(None, None, None)
    print(report(run))
    if args.json:
        args.json.write_text(json.dumps(run.as_json(), indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(report(run, markdown=True) + "\n")
    return 1 if run.problems else 0
