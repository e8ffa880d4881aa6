"""``python -m benchmarks.redis_instructions``: Redis's own work per drained task, counted in
CPU instructions under valgrind's callgrind, which gives the same figure run after run
whatever else the machine does (``INFO cpu`` on a shared 2-core VM moves by 20 % between
runs). The redis-server runs under callgrind with instrumentation off; a worker daemon
drains a queue, and only the instructions between its first result and its last count.

Variants: plain (no coordinator), with a coordinator (its statistics included: the
deployment most users run) and with the lifecycle stream off. A figure is instructions
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
VARIANTS = {
    "plain": {"coordinator": False, "events": True},
    "coordinator": {"coordinator": True, "events": True},
    "events off": {"coordinator": False, "events": False},
}


def _total(outfile: Path) -> int:
    """Instructions recorded in callgrind's dumps of ``outfile`` (one per dump)."""
    total = 0
    for dump in outfile.parent.glob(outfile.name + "*"):
        for line in dump.read_text().splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _daemon(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ceylon_redis", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(tasks: int, coordinator: bool, events: bool) -> dict[str, float]:
    """Instructions and commands of the server per task of one drain of ``tasks`` no-ops."""
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
            first = client.enqueue("noop", 0)
            ids = client.enqueue_many("noop", list(range(tasks)))
            client.close()
            worker = _daemon(["worker", "benchmarks.handlers:noop_async", "--role", "noop",
                              "--url", url, "--prefix", PREFIX, "--concurrency", "100"], env)
            daemons.append(worker)
            # scripts loaded and connections open before counting: the first task done
            _wait(lambda: _status(r, first) == b"COMPLETED", 120, "the first task")
            worker.send_signal(signal.SIGSTOP)
            time.sleep(0.5)
            before = sum(1 for t in ids if _status(r, t) == b"COMPLETED")
            r.config_resetstat()
            _callgrind("-z", server.pid)
            _callgrind("-i", server.pid, "on")
            worker.send_signal(signal.SIGCONT)
            _wait(lambda: _status(r, ids[-1]) == b"COMPLETED"
                  and not r.xlen(f"{{{PREFIX}}}:stream:noop"), 600, "the drain")
            if coordinator:
                _wait(lambda: not r.xlen(f"{{{PREFIX}}}:events"), 120, "the statistics")
            time.sleep(0.5)  # the last heartbeats and reads: counted, as in a real drain
            _callgrind("-i", server.pid, "off")
            stats = r.info("commandstats")
            _callgrind("-d", server.pid)
            counted = tasks - before
            commands = sum(int(v["calls"]) for k, v in stats.items()
                           if k not in ("cmdstat_info", "cmdstat_config", "cmdstat_hget",
                                        "cmdstat_xlen"))
        finally:
            for d in daemons:
                d.send_signal(signal.SIGCONT)
                d.kill()
                d.wait()
            r.close()
            server.terminate()
            server.wait(60)
        return {"tasks": counted, "instructions_per_task": _total(out) / counted,
                "commands_per_task": commands / counted}


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
    print(f"{'variant':<12} {'tasks':>6} {'instructions/task':>18} {'commands/task':>14}")
    for name in args.only or list(VARIANTS):
        row = measure(args.tasks, **VARIANTS[name])
        results[name] = row
        print(f"{name:<12} {row['tasks']:>6.0f} {row['instructions_per_task']:>18,.0f} "
              f"{row['commands_per_task']:>14.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
