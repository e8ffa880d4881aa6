"""What every peer adapter provides, and the timed workloads built from it.

An adapter wraps one job queue (ceylon-redis, arq, RQ, ...) used idiomatically: its
own producer API, its own worker command as a real process, its own result store.
The workloads (:class:`Workloads`) are written once against these primitives, so
every peer is timed the same way. A primitive a peer does not offer raises
:class:`Unsupported` with the reason, and the table shows a dash.

Every task is a no-op that returns its input, an ``int``; every result is checked.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

#: env var telling a worker process (and the module it imports) which Redis to use
URL_ENV = "BENCH_REDIS_URL"
#: env var carrying the concurrency a worker process should run with
CONCURRENCY_ENV = "BENCH_CONCURRENCY"


class Unsupported(Exception):
    """The peer has no idiomatic way to do this workload; the message says why."""


class WrongResult(Exception):
    """A result that is missing, failed, or not the task's own input."""


def check_outputs(peer: str, values: Sequence[int], outputs: Sequence[Any]) -> None:
    """Raise WrongResult unless ``outputs[i] == values[i]`` for every task."""
    if len(outputs) != len(values):
        raise WrongResult(f"{peer}: {len(outputs)} results for {len(values)} tasks")
    for i, (want, got) in enumerate(zip(values, outputs)):
        if got != want:
            raise WrongResult(f"{peer}: task #{i} returned {got!r}, expected {want!r}")


class WorkerProcess:
    """One worker process of a peer's own worker command, stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.log_path = log
        self._log = log.open("ab")
        self._log.write(f"\n$ {' '.join(argv)}\n".encode())
        self._log.flush()
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole process group; SIGKILL it if it does not exit in time, and
        whatever of the group outlived its leader."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # children the leader left behind would share the CPU with the next runs
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()

    def tail(self, n: int = 15) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


@dataclass
class DrainTime:
    """Seconds from the workers' spawn to the last result, and from the first result; and
    Redis's work over the drain (see RedisCost), when it was metered."""

    from_spawn: float
    from_first: float | None
    commands: int | None = None
    cpu_us: float | None = None


class RedisCost:
    """Redis's own work over a span, whoever asked for it: commands from INFO commandstats
    (those a script runs included, the metering's own INFO and CONFIG left out) and CPU
    from INFO cpu (user and system, main thread)."""

    OWN = ("cmdstat_info", "cmdstat_config")

    def __init__(self, r: Any) -> None:
        self.r = r
        self.cpu0 = 0.0

    def _cpu(self) -> float:
        info = self.r.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def start(self) -> None:
        self.r.config_resetstat()
        self.cpu0 = self._cpu()

    def stop(self) -> tuple[int, float]:
        """(commands, microseconds of Redis CPU) since start()."""
        cpu_us = (self._cpu() - self.cpu0) * 1e6
        stats = self.r.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k not in self.OWN), cpu_us


class Peer(ABC):
    """One job queue under test. Subclasses override the primitives they offer.

    Primitives may be plain methods or coroutines (``async def``): :meth:`call` runs
    either, coroutines on the adapter's own event loop, which lives as long as the
    adapter (so async clients are made once, in :meth:`open`).
    """

    #: the name in the table (and on the command line)
    name: ClassVar[str]
    #: the PyPI distribution whose version is reported
    package: ClassVar[str]
    #: handler kinds its worker runs: "async" (``async def``) and/or "sync" (``def``)
    handler_kinds: ClassVar[tuple[str, ...]] = ("async", "sync")
    #: the concurrency one worker process runs with, per handler kind
    concurrency: ClassVar[dict[str, int]] = {"async": 100, "sync": 10}
    #: what bulk enqueue uses, for the notes under the table
    notes: ClassVar[str] = ""

    def __init__(self, url: str, logdir: Path) -> None:
        self.url = url
        self.logdir = logdir
        self.loop = asyncio.new_event_loop()
        #: the handler kind the next enqueues are for ("async" or "sync"); most peers
        #: ignore it, as their workers of either kind register the task under one name
        self.kind = self.handler_kinds[0]

    # ----- lifecycle

    @abstractmethod
    def open(self) -> None:
        """Make the producer's clients (async ones with ``self.aw``)."""

    @abstractmethod
    def close(self) -> None:
        """Close what :meth:`open` made."""

    def shutdown(self) -> None:
        try:
            self.close()
        finally:
            self.loop.close()

    def aw(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to its end on this adapter's loop."""
        return self.loop.run_until_complete(coro)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a primitive, sync or async."""
        if inspect.iscoroutinefunction(fn):
            return self.aw(fn(*args))
        return fn(*args)

    # ----- producer primitives (override what the peer offers)

    def enqueue_one(self, value: int) -> Any:
        """Enqueue one task from a sync producer; return its handle."""
        raise Unsupported("no sync producer")

    async def enqueue_one_async(self, value: int) -> Any:
        """Enqueue one task from an asyncio producer; return its handle."""
        raise Unsupported("no asyncio producer")

    def enqueue_bulk(self, values: list[int]) -> list[Any]:
        """Enqueue many tasks in one call (the peer's bulk API), sync; their handles."""
        raise Unsupported("no sync bulk enqueue")

    async def enqueue_bulk_async(self, values: list[int]) -> list[Any]:
        """Enqueue many tasks in one call (the peer's bulk API), asyncio; their handles."""
        raise Unsupported("no asyncio bulk enqueue")

    def handles_for(self, values: list[int], kind: str) -> list[Any]:
        """Enqueue ``values`` for a worker running ``kind`` handlers, fastest way; untimed."""
        self.kind = kind
        try:
            return self.call(self.enqueue_bulk_for(kind), values)  # type: ignore[no-any-return]
        except Unsupported:
            one = self.enqueue_one_for(kind)
            return [self.call(one, v) for v in values]

    def enqueue_bulk_for(self, kind: str) -> Callable[..., Any]:
        """The bulk primitive that reaches a worker of this handler kind."""
        if type(self).enqueue_bulk is not Peer.enqueue_bulk:
            return self.enqueue_bulk
        if type(self).enqueue_bulk_async is not Peer.enqueue_bulk_async:
            return self.enqueue_bulk_async
        raise Unsupported("no bulk enqueue")

    def enqueue_one_for(self, kind: str) -> Callable[..., Any]:
        if type(self).enqueue_one is not Peer.enqueue_one:
            return self.enqueue_one
        return self.enqueue_one_async

    # ----- results

    @abstractmethod
    def is_done(self, handle: Any) -> Any:
        """True once the task's result is stored (sync or async)."""

    @abstractmethod
    def outputs(self, handles: list[Any], timeout: float) -> Any:
        """Wait until every task is done; return their outputs in order (sync or async).

        Raise WrongResult for a failed task, TimeoutError past ``timeout``.
        """

    # ----- workers

    @abstractmethod
    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        """The peer's own worker command, for one process of ``kind`` handlers."""

    def worker_env(self, kind: str, concurrency: int) -> dict[str, str]:
        env = dict(os.environ)
        env[URL_ENV] = self.url
        env[CONCURRENCY_ENV] = str(concurrency)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", ""))
                                            if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, kind: str, concurrency: int | None = None) -> WorkerProcess:
        if kind not in self.handler_kinds:
            raise Unsupported(f"no {kind} handlers")
        c = concurrency or self.concurrency[kind]
        return WorkerProcess(self.worker_argv(kind, c), self.worker_env(kind, c),
                             self.logdir / f"{self.name}-worker.log")

    def ready_check(self, kind: str, timeout: float = 60.0) -> None:
        """Round-trip one task, so the workers are known to be reading."""
        handles = self.handles_for([-1], kind)
        check_outputs(self.name, [-1], self.call(self.outputs, handles, timeout))

    # ----- round trip

    def round_trip(self, value: int) -> Any:
        """Enqueue one task and wait for its output (sync or async)."""
        raise Unsupported("no enqueue-and-wait")

    # ----- dependencies (workers of kind ``dag_kind`` are running)

    dag_kind: ClassVar[str] = "async"

    def chain(self, depth: int, timeout: float) -> Any:
        """Enqueue ``depth`` tasks each after the one before; wait for the last.

        Return after the last result is stored (sync or async). Timed by the caller.
        """
        raise Unsupported("no task dependencies")

    def fan_in(self, width: int, timeout: float) -> Any:
        """One root, ``width`` children after it, one sink after all; wait for the sink."""
        raise Unsupported("no task dependencies")


def wait_until(pred: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.002) -> float:
    """Poll ``pred`` until true; return the time it became true. TimeoutError past ``timeout``."""
    deadline = time.perf_counter() + timeout
    while True:
        if pred():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(interval)


#: what a ``collect`` fetch gives for a task whose result is not in yet
MISSING: Any = object()
#: the fewest and most results read per pipeline
WINDOW = (64, 1024)


class _Window:
    """The pending tasks of a reader, and how many of the oldest to read next: it doubles
    while whole windows are done, else shrinks to about twice what finished since the last
    read, so few missing results are read again and again while the workers run."""

    def __init__(self, n: int, timeout: float, peer: str) -> None:
        self.out: list[Any] = [None] * n
        self.pending = list(range(n))
        self.size = WINDOW[0]
        self.deadline = time.monotonic() + timeout
        self.timeout, self.peer = timeout, peer

    def next(self) -> list[int]:
        return self.pending[:self.size]

    def update(self, batch: list[int], got: list[Any]) -> list[int]:
        """Store what came in (MISSING for what did not); returns the batch's missing."""
        missing = []
        for i, value in zip(batch, got):
            if value is MISSING:
                missing.append(i)
            else:
                self.out[i] = value
        self.pending[:len(batch)] = missing
        if not missing:
            self.size = min(2 * self.size, WINDOW[1])
            return missing
        self.size = max(WINDOW[0], min(self.size, 2 * (len(batch) - len(missing))))
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"{self.peer}: {len(self.pending)} of {len(self.out)} results "
                               f"not in after {self.timeout:.0f} s")
        return missing


def collect(n: int, fetch: Callable[[Sequence[int]], list[Any]],
            block: Callable[[int, int], Any], timeout: float, peer: str) -> list[Any]:
    """Outputs of n tasks in order, read a window of pending tasks per pipeline.

    ``fetch(indexes)`` gives each task's output or MISSING; ``block(i, seconds)`` waits
    server-side for task i (a second at most, so the deadline is kept). While a window is
    not all done, the reader blocks on its last missing task: tasks finish about in queue
    order, so one wait then one pipeline per window keeps the reader off the workers' CPU.
    """
    w = _Window(n, timeout, peer)
    while w.pending:
        batch = w.next()
        missing = w.update(batch, fetch(batch))
        if missing:
            block(missing[-1], 1)
    return w.out


async def collect_async(n: int, fetch: Callable[[Sequence[int]], Coroutine[Any, Any, list[Any]]],
                        poll: float, timeout: float, peer: str) -> list[Any]:
    """``collect`` for peers with no server-side wait: sleeps ``poll`` seconds between
    reads of a window that is not all done."""
    w = _Window(n, timeout, peer)
    while w.pending:
        batch = w.next()
        if w.update(batch, await fetch(batch)):
            await asyncio.sleep(poll)
    return w.out


class Workloads:
    """The timed workloads, the same for every peer."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    # 1. enqueue

    def enqueue(self, peer: Peer, mode: str, n: int) -> float:
        """Tasks/s for one of the four producer modes; nothing consumes them."""
        values = list(range(n))
        if mode == "sync one":
            if type(peer).enqueue_one is Peer.enqueue_one:
                raise Unsupported("no sync producer")
            began = time.perf_counter()
            for v in values:
                peer.enqueue_one(v)
            return n / (time.perf_counter() - began)
        if mode == "sync bulk":
            began = time.perf_counter()
            peer.enqueue_bulk(values)
            return n / (time.perf_counter() - began)
        if mode == "async one":
            async def one() -> float:
                began = time.perf_counter()
                for v in values:
                    await peer.enqueue_one_async(v)
                return n / (time.perf_counter() - began)
            return peer.aw(one())
        if mode == "async bulk":
            async def bulk() -> float:
                began = time.perf_counter()
                await peer.enqueue_bulk_async(values)
                return n / (time.perf_counter() - began)
            return peer.aw(bulk())
        raise ValueError(f"unknown enqueue mode {mode!r}")

    # 2. and 6. drain

    def drain(self, peer: Peer, kind: str, n: int, processes: int = 1,
              cost: RedisCost | None = None) -> DrainTime:
        """Enqueue n tasks, then start the workers; time until every result is stored (and
        read back). With ``cost``, Redis's work from the workers' spawn to then."""
        values = list(range(n))
        handles = peer.handles_for(values, kind)
        if cost is not None:
            cost.start()
        workers = [peer.spawn(kind) for _ in range(processes)]
        try:
            spawned = workers[0].spawned_at
            first = wait_until(lambda: bool(peer.call(peer.is_done, handles[0])), self.timeout,
                               f"{peer.name} drain: first task")
            outputs = peer.call(peer.outputs, handles, self.timeout)
            done = time.perf_counter()
        except BaseException:
            for w in workers:
                if not w.alive():
                    raise RuntimeError(f"{peer.name} worker exited {w.proc.returncode}:\n"
                                       f"{w.tail()}") from None
            raise
        finally:
            for w in workers:
                w.stop()
        metered = cost.stop() if cost is not None else (None, None)
        check_outputs(peer.name, values, outputs)
        steady = (done - first) if n > 1 and done > first else None
        return DrainTime(done - spawned, steady, *metered)

    # 3. round trip

    def round_trip(self, peer: Peer, n: int, warmup: int = 20) -> list[float]:
        """Seconds of each of n sequential enqueue-and-wait round trips."""
        kind = "async" if "async" in peer.handler_kinds else "sync"
        worker = peer.spawn(kind)
        try:
            peer.ready_check(kind, self.timeout)
            fn = peer.round_trip
            if inspect.iscoroutinefunction(fn):
                async def run() -> list[float]:
                    out = []
                    for i in range(-warmup, n):
                        began = time.perf_counter()
                        got = await fn(i)
                        out.append(time.perf_counter() - began)
                        check_outputs(peer.name, [i], [got])
                    return out[warmup:]
                return peer.aw(run())
            samples = []
            for i in range(-warmup, n):
                began = time.perf_counter()
                got = fn(i)
                samples.append(time.perf_counter() - began)
                check_outputs(peer.name, [i], [got])
            return samples[warmup:]
        finally:
            worker.stop()

    # 4. dependencies

    def dag(self, peer: Peer, shape: str, size: int) -> float:
        """Seconds for a chain of ``size`` or a fan-out/fan-in of ``size``, workers running."""
        run = peer.chain if shape == "chain" else peer.fan_in
        if type(peer).chain is Peer.chain:
            raise Unsupported("no task dependencies")
        worker = peer.spawn(peer.dag_kind)
        try:
            peer.ready_check(peer.dag_kind, self.timeout)
            began = time.perf_counter()
            peer.call(run, size, self.timeout)
            return time.perf_counter() - began
        finally:
            worker.stop()

    # 5. memory

    def memory(self, peer: Peer, n: int, used_memory: Callable[[], int]) -> tuple[float, float]:
        """Bytes of Redis memory per queued task, and per stored result after a drain."""
        kind = "async" if "async" in peer.handler_kinds else "sync"
        values = list(range(n))
        # opens the producer's connections, whose buffers are not the tasks' cost
        warmup = peer.handles_for([-1] * 20, kind)
        before = used_memory()
        handles = peer.handles_for(values, kind)
        queued = used_memory()
        worker = peer.spawn(kind)
        try:
            outputs = peer.call(peer.outputs, handles, self.timeout)
            peer.call(peer.outputs, warmup, self.timeout)
        finally:
            worker.stop()
        check_outputs(peer.name, values, outputs)
        stored = used_memory()
        return (queued - before) / n, (stored - before) / n


def python() -> str:
    """The interpreter peers' worker commands run under (the benchmark's own)."""
    return sys.executable


def console_script(name: str) -> str:
    """Path of a console script installed beside this interpreter (``celery``, ``rq``...)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise Unsupported(f"{name} is not installed beside {sys.executable}")
    return str(path)

