"""Waiting for results: one reply channel per client, no poll loop, nothing missed.

A client subscribes once to its own channel. To wait for tasks it registers a
future per task, then runs the watch script, which either reports the task
final already or adds the channel to the task's ``reply_to`` so that its
finish publishes there. Thousands of waits share one connection.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from typing import Any, Generic, Protocol, TypeVar

import redis
from loguru import logger

from .errors import TaskTimeoutError, ValidationError
from .models import TaskResult
from .partitions import Partitions
from .protocol import is_unknown_watch, parse_notification, parse_watch

_CHUNK = 1000


OnResult = Callable[[TaskResult], None]
"""Called with each result as it arrives (say, to move a progress bar)."""


def check_callback(name: str, callback: Any, gets: str) -> None:
    """A coroutine function would never be awaited: say so instead of dropping it."""
    if callback is not None and (inspect.iscoroutinefunction(callback)
                                 or not callable(callback)):
        raise ValidationError(f"{name} must be a plain function called with each {gets}, "
                              f"not {callback!r}")


def check_on_result(on_result: OnResult | None) -> None:
    check_callback("on_result", on_result, "TaskResult")


def _report(done: Iterable[Any], on_result: OnResult | None) -> None:
    """Hand each finished wait's result to ``on_result``; errors surface in the final pass."""
    if on_result is None:
        return
    for fut in done:
        if not fut.cancelled() and fut.exception() is None:
            on_result(fut.result())


def _timeout_error(pending: list[str], timeout: float | None) -> TaskTimeoutError:
    shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
    return TaskTimeoutError(f"task {shown} not finished after {timeout} s")


class _Settable(Protocol):
    """What an asyncio and a concurrent.futures future both offer."""

    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def set_result(self, result: TaskResult, /) -> None: ...
    def set_exception(self, exc: BaseException, /) -> None: ...


F = TypeVar("F", bound=_Settable)


class _Pending(Generic[F]):
    """The futures of one client's waits, by task id: both waiters' bookkeeping (locked,
    since a blocking client's listener thread settles them)."""

    def __init__(self) -> None:
        self._futures: dict[str, list[F]] = defaultdict(list)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._futures)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._futures)

    def add(self, task_ids: list[str], make: Callable[[], F]) -> list[F]:
        """A new future per task id, in order."""
        with self._lock:
            futures = [make() for _ in task_ids]
            for task_id, fut in zip(task_ids, futures):
                self._futures[task_id].append(fut)
        return futures

    def deliver(self, result: TaskResult) -> None:
        with self._lock:
            futures = self._futures.pop(result.task_id or "", [])
        for fut in futures:
            if not fut.done():
                fut.set_result(result)

    def fail(self, task_id: str, exc: BaseException) -> None:
        with self._lock:
            futures = self._futures.pop(task_id, [])
        for fut in futures:
            if not fut.done():
                fut.set_exception(exc)

    def settle(self, found: dict[str, Any]) -> None:
        """Settle the waits that watch.lua's replies (by task id) show final or refused."""
        for task_id, reply in found.items():
            try:
                result = parse_watch(task_id, reply)
            except Exception as exc:
                self.fail(task_id, exc)
                continue
            if result is not None:
                self.deliver(result)

    def forget(self, task_ids: list[str], futures: list[F]) -> None:
        """Cancel and drop the futures of a wait that ended without them (timeout, error)."""
        with self._lock:
            for task_id, fut in zip(task_ids, futures):
                if not fut.done():
                    fut.cancel()
                    waiters = self._futures.get(task_id)
                    if waiters is not None and fut in waiters:
                        waiters.remove(fut)
                        if not waiters:
                            del self._futures[task_id]


def _watch_calls(parts: Partitions, ids: list[str], found: dict[str, Any]) -> Any:
    """The (keys, task ids) of each watch.lua call for ``ids``: their own partitions first,
    then the others for ids not found there (a graph's task lives in its graph's)."""
    return parts.probes(ids, lambda t: is_unknown_watch(found[t]))


class AsyncWaiter:
    """The asyncio side: a listener task resolving futures from one pub/sub channel."""

    def __init__(self, redis_client: Any, parts: Partitions, watch_script: Any) -> None:
        self._redis = redis_client
        self._parts = parts
        self._watch = watch_script
        self.channel = parts.all[0].reply_channel(uuid.uuid4().hex)
        self._futures: _Pending[asyncio.Future[TaskResult]] = _Pending()
        self._listener: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._pubsub: Any = None

    async def _ensure_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name="ceylon-redis-replies")
        assert self._ready is not None
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._listener.done():
            self._listener.result()  # raises what stopped it (say, no Redis)

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub = pubsub
            try:
                await pubsub.subscribe(self.channel)
                # Watching before Redis confirms could miss a reply, and hides a refusal.
                await pubsub.get_message(timeout=1.0)
                assert self._ready is not None
                self._ready.set()
                if not first:  # completions published while we were away: ask again
                    await self._rewatch()
                first = False
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=30.0)
                    if message and message["type"] == "message":
                        self._futures.deliver(parse_notification(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if first:
                    raise
                logger.warning("reply channel lost ({}); reconnecting in {:.1f} s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    async def _rewatch(self) -> None:
        ids = self._futures.ids()
        for i in range(0, len(ids), _CHUNK):
            await self._watch_chunk(ids[i:i + _CHUNK])

    async def _watch_chunk(self, ids: list[str]) -> None:
        found: dict[str, Any] = {}
        for keys, group in _watch_calls(self._parts, ids, found):
            found.update(zip(group, await self._watch(keys=[keys.base],
                                                      args=[self.channel, *group])))
        self._futures.settle(found)

    async def wait_many(self, task_ids: list[str], timeout: float | None,
                        on_result: OnResult | None = None,
                        send: Callable[[str], Awaitable[None]] | None = None,
                        ) -> list[TaskResult]:
        """Results of the tasks, in order; TaskTimeoutError when ``timeout`` runs out.

        ``send``, if given, enqueues the tasks with this waiter's channel as their
        ``reply_to`` (it is called with the channel): no watch call is needed then.
        """
        await self._ensure_listening()
        futures = self._futures.add(task_ids, asyncio.get_running_loop().create_future)
        try:
            if send is not None:
                await send(self.channel)
            else:
                unique = list(dict.fromkeys(task_ids))
                for i in range(0, len(unique), _CHUNK):
                    await self._watch_chunk(unique[i:i + _CHUNK])
            deadline = None if timeout is None else time.monotonic() + timeout
            pending: set[asyncio.Future[TaskResult]] = set(futures)
            while pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, pending = await asyncio.wait(
                    pending, timeout=left,
                    return_when=asyncio.FIRST_COMPLETED if on_result else asyncio.ALL_COMPLETED)
                if not done:
                    raise _timeout_error(
                        [t for t, f in zip(task_ids, futures) if not f.done()], timeout)
                _report(done, on_result)
            return [f.result() for f in futures]
        finally:
            self._futures.forget(task_ids, futures)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None


class SyncWaiter:
    """The blocking side: a daemon thread reads the channel and resolves futures."""

    def __init__(self, redis_client: Any, parts: Partitions, watch_script: Any) -> None:
        self._redis = redis_client
        self._parts = parts
        self._watch = watch_script
        self.channel = parts.all[0].reply_channel(uuid.uuid4().hex)
        self._futures: _Pending[Future[TaskResult]] = _Pending()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started: Future[None] | None = None

    def _ensure_listening(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._started = Future()
                self._stop.clear()
                self._thread = threading.Thread(target=self._listen, daemon=True,
                                                name="ceylon-redis-replies")
                self._thread.start()
            started = self._started
        assert started is not None
        started.result()

    def _listen(self) -> None:
        backoff = 0.1
        first = True
        assert self._started is not None
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                pubsub.get_message(timeout=1.0)  # the subscribe confirmation
                if first:
                    self._started.set_result(None)
                else:
                    self._rewatch()
                first = False
                backoff = 0.1
                while not self._stop.is_set():
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message and message["type"] == "message":
                        self._futures.deliver(parse_notification(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if first:
                    self._started.set_exception(exc)
                    return
                logger.warning("reply channel lost ({}); reconnecting in {:.1f} s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:  # e.g. an ACL user without the channel: tell the waiters
                if first:
                    self._started.set_exception(exc)
                else:
                    for task_id in self._futures.ids():
                        self._futures.fail(task_id, exc)
                return
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _rewatch(self) -> None:
        ids = self._futures.ids()
        for i in range(0, len(ids), _CHUNK):
            self._watch_chunk(ids[i:i + _CHUNK])

    def _watch_chunk(self, ids: list[str]) -> None:
        found: dict[str, Any] = {}
        for keys, group in _watch_calls(self._parts, ids, found):
            found.update(zip(group, self._watch(keys=[keys.base], args=[self.channel, *group])))
        self._futures.settle(found)

    def wait_many(self, task_ids: list[str], timeout: float | None,
                  on_result: OnResult | None = None,
                  send: Callable[[str], None] | None = None) -> list[TaskResult]:
        """Results of the tasks, in order; TaskTimeoutError when ``timeout`` runs out.

        ``send``: as for the asyncio waiter.
        """
        self._ensure_listening()
        futures: list[Future[TaskResult]] = self._futures.add(task_ids, Future)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if send is not None:
                send(self.channel)
            else:
                unique = list(dict.fromkeys(task_ids))
                for i in range(0, len(unique), _CHUNK):
                    self._watch_chunk(unique[i:i + _CHUNK])
            pending: set[Future[TaskResult]] = set(futures)
            while pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, pending = wait_futures(
                    pending, timeout=left,
                    return_when=FIRST_COMPLETED if on_result else ALL_COMPLETED)
                if not done:
                    raise _timeout_error(
                        [t for t, f in zip(task_ids, futures) if not f.done()], timeout)
                _report(done, on_result)
            return [f.result() for f in futures]
        finally:
            self._futures.forget(task_ids, futures)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
