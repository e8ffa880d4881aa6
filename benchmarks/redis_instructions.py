"""``python -m benchmarks.redis_instructions``: Redis's own work per drained task, counted in
CPU instructions under valgrind's callgrind, which gives the same figure run after run
whatever else the machine does (``INFO cpu`` on a shared 2-core VM moves by 20 % between
runs). The redis-server runs under callgrind with instrumentation off; a worker daemon,
warmed up by one task and then stopped, waits while ``enqueue_many`` fills the queue (the
enqueue's count), then drains it (the drain's count, up to its last result).

Variants: plain (no coordinator), with a coordinator (its statistics included: the
deployment most users run), with the lifecycle stream off, every task at priority 9
(all through the priority zset), under a rate and a concurrency limit that never bind
(checked and a slot taken for every task), all of those on together, and a sync handler
(``def``, 10 threads: smaller batches per script call than the async 100). A figure is instructions
of the server per task, all commands included (the worker's, the coordinator's, the
metering's few reads). Not a timed test: it needs valgrind (``apt install valgrind``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.redis_server import free_port
from ceylon_redis import Client
from ceylon_redis.settings import Settings

PREFIX = "instr"
VARIANTS: dict[str, dict[str, bool]] = {
    "plain": {},
    "coordinator": {"coordinator": True},
    "events off": {"events": False},
    "priorities": {"priorities": True},
    "limit": {"limit": True},
    "all on": {"coordinator": True, "priorities": True, "limit": True},
    "sync handler": {"sync": True},
}


def _total(outfile: Path, part: int) -> int:
    """Instructions in callgrind's dump ``part`` of ``outfile`` (counted since the one before)."""
    for line in outfile.with_name(f"{outfile.name}.{part}").read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in callgrind's dump {part}")


def _commands(r: redis.Redis) -> int:
    """Commands since CONFIG RESETSTAT, those of the metering's own polling left out."""
    return sum(int(v["calls"]) for k, v in r.info("commandstats").items()
               if k not in ("cmdstat_info", "cmdstat_config", "cmdstat_hget", "cmdstat_xlen"))


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _daemon(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ceylon_redis", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(tasks: int, coordinator: bool = False, events: bool = True,
            priorities: bool = False, limit: bool = False, sync: bool = False
            ) -> dict[str, float]:
    """Instructions and commands of the server per task of the bulk enqueue and then the
    drain of ``tasks`` no-ops."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "CEYLON_REDIS_EVENTS_MAXLEN": "250000" if events else "0"}
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as work:
        out = Path(work) / "callgrind.out"
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", "redis-server", "--port", str(port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        daemons: list[subprocess.Popen[bytes]] = []
        r = redis.Redis(port=port)
        try:
            _wait(lambda: _pings(r), 60, "redis-server under valgrind")
            if coordinator:
                daemons.append(_daemon(["coordinator", "--url", url, "--prefix", PREFIX], env))
                _wait(lambda: r.exists(f"{{{PREFIX}}}:events"), 60, "the coordinator")
            client = Client(url, PREFIX, settings=Settings.from_env(
                url, PREFIX, events_maxlen=250_000 if events else 0))
            if limit:
                client.set_limit("noop", rate="1000000/s", concurrency=100_000)
            options: dict[str, Any] = {"priority": 9} if priorities else {}
            first = client.enqueue("noop", 0, **options)
            handler, concurrency = ("noop_sync", "10") if sync else ("noop_async", "100")
            worker = _daemon(["worker", f"benchmarks.handlers:{handler}", "--role", "noop",
                              "--url", url, "--prefix", PREFIX, "--concurrency", concurrency],
                             env)
            daemons.append(worker)
            # scripts loaded and connections open before counting: the first task done
            _wait(lambda: _status(r, first) == b"COMPLETED", 120, "the first task")
            worker.send_signal(signal.SIGSTOP)  # it drains nothing while the queue fills
            time.sleep(0.5)
            r.config_resetstat()
            _callgrind("-z", server.pid)
            _callgrind("-i", server.pid, "on")
            ids = client.enqueue_many("noop", list(range(tasks)), **options)
            client.close()
            enqueued = _commands(r)
            _callgrind("-d", server.pid)  # dump 1: the enqueue
            r.config_resetstat()
            worker.send_signal(signal.SIGCONT)
            _wait(lambda: _status(r, ids[-1]) == b"COMPLETED"
                  and not r.xlen(f"{{{PREFIX}}}:stream:noop"), 600, "the drain")
            if coordinator:
                _wait(lambda: not r.xlen(f"{{{PREFIX}}}:events"), 120, "the statistics")
            time.sleep(0.5)  # the last heartbeats and reads: counted, as in a real drain
            _callgrind("-i", server.pid, "off")
            drained = _commands(r)
            _callgrind("-d", server.pid)  # dump 2: the drain
        finally:
            for d in daemons:
                d.send_signal(signal.SIGCONT)
                d.kill()
                d.wait()
            r.close()
            server.terminate()
            server.wait(60)
        return {"tasks": tasks,
                "enqueue_instructions_per_task": _total(out, 1) / tasks,
                "enqueue_commands_per_task": enqueued / tasks,
                "instructions_per_task": _total(out, 2) / tasks,
                "commands_per_task": drained / tasks}


def _pings(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False


def _status(r: redis.Redis, tid: str) -> Any:
    return r.hget(f"{{{PREFIX}}}:task:{tid}", "status")


def _callgrind(flag: str, pid: int, *more: str) -> None:
    subprocess.run(["callgrind_control", flag, *more, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--only", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("redis-server"):
        print("needs valgrind and redis-server on PATH (apt install valgrind redis-server)")
        return 2
    results = {}
    print(f"{'variant':<12} {'tasks':>6} {'drain: instructions':>20} {'commands':>9} "
          f"{'enqueue: instructions':>22} {'commands':>9}  (per task)")
    for name in args.only or list(VARIANTS):
        row = measure(args.tasks, **VARIANTS[name])
        results[name] = row
        print(f"{name:<12} {row['tasks']:>6.0f} {row['instructions_per_task']:>20,.0f} "
              f"{row['commands_per_task']:>9.2f} {row['enqueue_instructions_per_task']:>22,.0f} "
              f"{row['enqueue_commands_per_task']:>9.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
