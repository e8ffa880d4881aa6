"""Huey: ``RedisHuey`` producer (calling the task enqueues it), ``huey_consumer`` worker
processes (threads), Huey's own result store (a Redis hash, read back once per result).

Huey has no asyncio producer and no bulk enqueue: a bulk is one enqueue per task.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import huey  # noqa: F401  (a missing library skips the peer, as for the others)
from redis import Redis

from benchmarks.peers.base import MISSING, URL_ENV, Peer, WrongResult, collect, console_script

#: seconds a round trip may take before it counts as lost
ROUND_TRIP_TIMEOUT = 30


class Huey(Peer):
    name = "huey"
    package = "huey"
    handler_kinds = ("sync",)
    concurrency: ClassVar[dict[str, int]] = {"sync": 10}
    dag_kind = "sync"
    notes = ("no asyncio producer, no bulk enqueue (one call per task); worker: "
             "huey_consumer -k thread -w 10 (threads), polling the queue; results: Huey's "
             "result hash, each read (and removed) once; pickle serializer (Huey's own)")

    def open(self) -> None:
        os.environ[URL_ENV] = self.url  # read by huey_tasks at import (the consumer's too)
        from benchmarks.peers import huey_tasks

        self.app, self.task = huey_tasks.huey, huey_tasks.noop
        self.app.storage.conn = Redis.from_url(self.url)  # if imported earlier, elsewhere

    def close(self) -> None:
        self.app.storage.conn.close()

    # ----- producer

    def enqueue_one(self, value: int) -> Any:
        return self.task(value)

    # ----- results

    def is_done(self, handle: Any) -> bool:
        return bool(self.app.storage.has_data_for_key(handle.id))

    def outputs(self, handles: list[Any], timeout: float) -> list[Any]:
        return collect(len(handles), lambda idx: [self._take(handles[i]) for i in idx],
                       lambda i, wait: self.is_done(handles[i]) or bool(
                           handles[i].get(blocking=True, timeout=wait, preserve=True)
                           is not None), timeout, self.name)

    def _take(self, handle: Any) -> Any:
        """The output of a finished task, MISSING while it is not; WrongResult if it raised."""
        try:
            value = handle.get(preserve=True)
        except Exception as exc:  # huey.exceptions.TaskException: the task raised
            raise WrongResult(f"{self.name}: task {handle.id} failed: {exc}") from None
        return MISSING if value is None else value

    # ----- workers

    def worker_argv(self, kind: str, concurrency: int) -> list[str]:
        return [console_script("huey_consumer"), "benchmarks.peers.huey_tasks.huey",
                "-k", "thread", "-w", str(concurrency), "-q"]

    # ----- round trip

    def round_trip(self, value: int) -> Any:
        return self.task(value).get(blocking=True, timeout=ROUND_TRIP_TIMEOUT)
