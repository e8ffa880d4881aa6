"""Dramatiq: Redis broker, Results middleware with its Redis backend, ``dramatiq`` workers."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from typing import Any, ClassVar

import dramatiq
from dramatiq import Message, group, pipeline
from dramatiq.results import ResultFailure, ResultMissing, ResultTimeout
from dramatiq.results.backends import RedisBackend

from benchmarks.peers.base import (
    MISSING,
    Peer,
    Unsupported,
    WorkerProcess,
    WrongResult,
    collect,
    console_script,
)
from benchmarks.peers.dramatiq_tasks import ACTOR_OPTIONS, KIND_ENV, QUEUE, make_broker, noop_sync

#: milliseconds a round trip may take before it counts as lost
ROUND_TRIP_TIMEOUT_MS = 30_000
#: the deepest pipeline sent: each message carries the next one nested in its options, so
#: about 495 deep overflows the JSON encoder's recursion limit (and the first message of a
#: pipeline n deep is about 200 n bytes)
MAX_PIPELINE = 450


class Dramatiq(Peer):
    name = "dramatiq"
    package = "dramatiq"
    # Worker threads per process. The async kind too runs one message per thread, each
    # thread handing its coroutine to the AsyncIO middleware's event loop. The consumer
    # prefetches 2 messages per thread and sleeps while that many are in hand, so few
    # threads starve: on 3,000 no-op tasks (2 to 4 runs each, noisy), threads
    # 1/4/8/16/32/64 drained about 260/840/1,800/2,050/1,750/2,200 sync and
    # 260/970/1,500/1,750/1,650/1,500 async tasks/s: 16 is the best for async and within
    # the noise of the best for sync (8 is dramatiq's default).
    concurrency: ClassVar[dict[str, int]] = {"async": 16, "sync": 16}
    dag_kind = "sync"
    notes = ("no asyncio producer, no bulk enqueue (group.run() too sends one message at "
             "a time); results: Results middleware, RedisBackend (LINDEX pipelined, "
             "waits with get_result(block=True)); worker: dramatiq --processes 1 "
             "--threads 16 (beat 8, dramatiq's default); async def actors via the AsyncIO "
             "middleware; JSON encoder (the default); dependencies: pipeline for the "
             "chain; fan-in: a group completion callback, the group sent once the root's "
             "result is in (dramatiq cannot fan out from one message)")

    def open(self) -> None:
        self.broker = make_broker(self.url)
        backend = self.broker.get_results_backend()
        assert isinstance(backend, RedisBackend)
        self.backend = backend
        # the producer's handle on the workers' actor: same name, queue and options
        self.actor = dramatiq.actor(broker=self.broker, **ACTOR_OPTIONS)(noop_sync)

    def close(self) -> None:
        self.broker.close()
        self.broker.client.close()

    # ----- producer

    def enqueue_one(self, value: int) -> Message[Any]:
        return self.actor.send(value)

    # ----- results

    def is_done(self, handle: Message[Any]) -> bool:
        try:
            self.backend.get_result(handle)
        except ResultMissing:
            return False
        except ResultFailure:
            pass
        return True

    def outputs(self, handles: list[Message[Any]], timeout: float) -> list[Any]:
        return collect(len(handles), lambda idx: self._fetch([handles[i] for i in idx]),
                       lambda i, wait: self._block(handles[i], wait), timeout, self.name)

    def _fetch(self, messages: list[Message[Any]]) -> list[Any]:
        """The stored results of ``messages`` in one pipeline: each its output, or MISSING."""
        with self.backend.client.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.lindex(self.backend.build_message_key(message), 0)
            replies = pipe.execute()
        return [MISSING if data is None else self._unwrap(m, self.backend.encoder.decode(data))
                for m, data in zip(messages, replies)]

    def _unwrap(self, message: Message[Any], stored: Any) -> Any:
        try:
            return self.backend.unwrap_result(stored)
        except ResultFailure as exc:
            raise WrongResult(f"{self.name}: message {message.message_id} failed: {exc}") from exc

    def _block(self, message: Message[Any], seconds: int) -> None:
        """Wait server-side (BRPOPLPUSH) up to ``seconds`` for one result."""
        try:
            message.get_result(backend=self.backend, block=True, timeout=seconds * 1000)
        except (ResultTimeout, ResultFailure):
            pass

    # ----- workers

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        return [console_script("dramatiq"), "benchmarks.peers.dramatiq_tasks:setup",
                "--processes", "1", "--threads", str(concurrency), "--queues", QUEUE]

    def worker_env(self, kind: str, concurrency: int) -> dict[str, str]:
        env = super().worker_env(kind, concurrency)
        env[KIND_ENV] = kind
        return env

    def spawn(self, kind: str, concurrency: int | None = None) -> WorkerProcess:
        """As the base does, but stopped through dramatiq's main process only."""
        if kind not in self.handler_kinds:
            raise Unsupported(f"no {kind} handlers")
        c = concurrency or self.concurrency[kind]
        return MainProcessStop(self.worker_argv(kind, c), self.worker_env(kind, c),
                               self.logdir / f"{self.name}-worker.log")

    # ----- round trip and dependencies

    def round_trip(self, value: int) -> Any:
        return self._result(self.actor.send(value), ROUND_TRIP_TIMEOUT_MS)

    def chain(self, depth: int, timeout: float) -> None:
        if depth > MAX_PIPELINE:
            raise Unsupported(f"a pipeline deeper than about {MAX_PIPELINE} overflows the "
                              "JSON encoder's recursion (each message nests the next)")
        # pipe_ignore: each message keeps its own argument instead of getting the last result
        chained = pipeline([self.actor.message_with_options(args=(i,), pipe_ignore=True)
                            for i in range(depth)], broker=self.broker)
        chained.run()  # type: ignore[no-untyped-call]
        self._check(chained.messages[-1], timeout, depth - 1)

    def fan_in(self, width: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._result(self.actor.send(-1), _ms(timeout))
        children = group([self.actor.message(i) for i in range(width)],  # type: ignore[no-untyped-call]
                         broker=self.broker)
        sink = self.actor.message(width)
        children.add_completion_callback(sink)  # type: ignore[no-untyped-call]
        children.run()  # type: ignore[no-untyped-call]
        self._check(sink, deadline - time.monotonic(), width)

    def _result(self, message: Message[Any], timeout_ms: int) -> Any:
        """The message's output, waiting for it with the backend's blocking get."""
        try:
            return message.get_result(backend=self.backend, block=True, timeout=timeout_ms)
        except ResultTimeout as exc:
            raise TimeoutError(f"{self.name}: message {message.message_id} not done after "
                               f"{timeout_ms / 1000:.0f} s") from exc
        except ResultFailure as exc:
            raise WrongResult(f"{self.name}: message {message.message_id} failed: {exc}") from exc

    def _check(self, message: Message[Any], timeout: float, want: int) -> None:
        got = self._result(message, _ms(timeout))
        if got != want:
            raise WrongResult(f"{self.name}: last message returned {got!r}, expected {want!r}")


class MainProcessStop(WorkerProcess):
    """Stopped as dramatiq documents: SIGTERM to the main process, which relays it.

    SIGTERM to the whole group gives each worker process two (its own and the relayed
    one); on the second it exits without stopping its threads, and hangs until SIGKILL.
    """

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left of the group (the main process leads it)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        super().stop(timeout)


def _ms(seconds: float) -> int:
    """Whole seconds in ms, at least one: RedisBackend does not block for less than 1 s."""
    return 1000 * max(1, math.ceil(seconds))


#: what a fetch gives for a task whose result is not stored yet
