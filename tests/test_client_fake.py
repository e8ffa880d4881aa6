"""AsyncClient, Client and Worker end to end on fakeredis: no Redis server needed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import pytest

from ceylon_redis import (
    AsyncClient,
    Client,
    DependencyError,
    EncodeError,
    ProcessRequest,
    ProcessWorker,
    Settings,
    TaskDef,
    TaskExistsError,
    TaskResult,
    TaskStatus,
    TaskTimeoutError,
    UnknownTaskError,
    ValidationError,
    Worker,
    current_task,
)


def settings_for(prefix: str, **changes: Any) -> Settings:
    changes.setdefault("retry_backoff", 0.05)
    return Settings(prefix=prefix, block_ms=50, **changes)


@pytest.fixture
async def client(fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(redis=fake_async, prefix=prefix)
    yield c
    await c.close()


@pytest.fixture
def run_worker(fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> Callable[..., Any]:
    """``async with run_worker(handler, role=...) as worker:`` runs it as an asyncio task."""

    @asynccontextmanager
    async def run(handler: Any, role: str | None = "role", **options: Any) -> AsyncIterator[Worker]:
        options.setdefault("settings", settings_for(prefix))
        worker = Worker(handler, role=role, redis_client=fake_async, **options)
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)

    return run


async def namespace_keys(r: fakeredis.FakeAsyncRedis, prefix: str) -> list[bytes]:
    return sorted(await r.keys("{" + prefix + "}:*"))


# --- the basics ----------------------------------------------------------------------------


async def test_enqueue_and_wait_returns_the_output(client: AsyncClient, run_worker: Any) -> None:
    async def double(data: Any) -> Any:
        return {"doubled": data["n"] * 2, "tags": {"a"}}

    async with run_worker(double):
        tid = await client.enqueue("role", {"n": 21}, name="dbl")
        result = await client.wait(tid, timeout=5)
    assert result.success is True
    assert result.output == {"doubled": 42, "tags": {"a"}}
    assert result.error is None
    assert result.task_id == tid
    assert result.status is TaskStatus.COMPLETED


async def test_handler_returning_none_completes_with_no_output(client: AsyncClient,
                                                                run_worker: Any) -> None:
    async with run_worker(lambda data: None):
        result = await client.wait(await client.enqueue("role"), timeout=5)
    assert (result.success, result.output) == (True, None)


async def test_sync_handler_runs_in_a_thread(client: AsyncClient, run_worker: Any) -> None:
    loop_thread = threading.current_thread()
    seen: dict[str, Any] = {}

    def blocking(data: Any) -> str:
        seen["thread"] = threading.current_thread()
        seen["task"] = current_task()
        time.sleep(0.05)  # would stall the event loop if run on it
        return f"hello {data}"

    async with run_worker(blocking) as worker:
        tid = await client.enqueue("role", "world", name="greet")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        result = await client.wait(tid, timeout=5)
        t.cancel()
    assert result.output == "hello world"
    assert seen["thread"] is not loop_thread
    assert seen["thread"].name.startswith("ceylon-redis-sync")
    assert seen["task"].id == tid
    assert seen["task"].name == "greet"
    assert seen["task"].attempt == 1
    assert seen["task"].worker in worker.ids
    assert ticks >= 3  # the loop kept running while the handler slept


async def test_raising_handler_fails_with_the_exception_text(client: AsyncClient,
                                                             run_worker: Any) -> None:
    async def broken(data: Any) -> None:
        raise ValueError(f"bad input {data!r}")

    async with run_worker(broken):
        result = await client.wait(await client.enqueue("role", 7), timeout=5)
    assert result.success is False
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert "ValueError: bad input 7" in result.error
    assert "broken" in result.error  # where it was raised
    assert result.output is None


async def test_unencodable_output_fails_the_task(client: AsyncClient, run_worker: Any) -> None:
    async with run_worker(lambda data: {"x": object()}):
        result = await client.wait(await client.enqueue("role"), timeout=5)
    assert result.success is False
    assert result.error is not None
    assert "EncodeError" in result.error and "output['x']" in result.error


async def test_wait_after_the_task_finished_still_returns(
        fake_async: fakeredis.FakeAsyncRedis, prefix: str, run_worker: Any) -> None:
    producer = AsyncClient(redis=fake_async, prefix=prefix)
    async with run_worker(lambda d: d + 1):
        tid = await producer.enqueue("role", 1)
        for _ in range(200):
            if (await producer.get(tid)).status is TaskStatus.COMPLETED:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("task never completed")
    # the worker is gone; the completion was published before anyone listened
    late = AsyncClient(redis=fake_async, prefix=prefix)
    try:
        result = await asyncio.wait_for(late.wait(tid, timeout=2), 3)
        assert (result.success, result.output) == (True, 2)
        # and again, from the client that enqueued it
        assert (await producer.wait(tid, timeout=2)).output == 2
    finally:
        await late.close()
        await producer.close()


async def test_wait_times_out_quickly_on_a_task_nobody_runs(client: AsyncClient) -> None:
    tid = await client.enqueue("nobody", 1)
    began = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        await client.wait(tid, timeout=0.2)
    elapsed = time.monotonic() - began
    assert 0.15 <= elapsed < 1.5
    assert isinstance(info.value, TimeoutError)
    assert tid in str(info.value)
    with pytest.raises(TimeoutError):
        await client.wait_many([tid], timeout=0.05)
    # nothing left registered for the timed-out waits
    assert not client._waiter._futures


async def test_enqueue_and_wait_returns_the_result_without_a_watch_call(
        client: AsyncClient, run_worker: Any) -> None:
    async with run_worker(lambda d: d * 2):
        result = await client.enqueue_and_wait("role", 21, timeout=5, name="double")
        assert (result.success, result.output) == (True, 42)
        info = await client.get(result.task_id)
        assert info.name == "double"
        # its reply channel, set at enqueue, goes with the outcome it was told
        assert await client.redis.hget(client.keys.task(result.task_id), "reply_to") is None
    assert not client._waiter._futures


async def test_enqueue_and_wait_times_out_and_leaves_the_task_queued(
        client: AsyncClient) -> None:
    with pytest.raises(TaskTimeoutError):
        await client.enqueue_and_wait("nobody", 1, timeout=0.1)
    assert not client._waiter._futures
    (queue,) = await client.queues()
    assert (queue.role, queue.ready) == ("nobody", 1)


async def test_enqueue_and_wait_refuses_bad_input_before_writing(client: AsyncClient) -> None:
    with pytest.raises(ValidationError, match="role"):
        await client.enqueue_and_wait("bad role!", 1, timeout=1)
    assert await client.queues() == []
    assert not client._waiter._futures


async def test_sync_enqueue_and_wait(fake_sync: Any, prefix: str, run_worker: Any) -> None:
    producer = Client(redis=fake_sync, prefix=prefix)
    try:
        async with run_worker(lambda d: d + 1):
            result = await asyncio.to_thread(producer.enqueue_and_wait, "role", 1, timeout=5)
        assert (result.success, result.output) == (True, 2)
        with pytest.raises(TaskTimeoutError):
            producer.enqueue_and_wait("role", 1, timeout=0.1)
        assert not producer._waiter._futures
    finally:
        producer.close()


async def test_wait_on_an_unknown_task(client: AsyncClient) -> None:
    with pytest.raises(UnknownTaskError, match="never-enqueued"):
        await client.wait("never-enqueued", timeout=1)
    with pytest.raises(UnknownTaskError):
        await client.get("never-enqueued")


async def test_wait_many_of_500_tasks(client: AsyncClient, run_worker: Any) -> None:
    async def square(n: int) -> int:
        return n * n

    async with run_worker(square, concurrency=100):
        ids = await client.enqueue_many("role", range(500))
        assert len(set(ids)) == 500
        results = await client.wait_many(ids, timeout=20)
    assert [r.output for r in results] == [n * n for n in range(500)]
    assert [r.task_id for r in results] == ids
    assert all(r.success for r in results)


async def test_wait_many_with_repeated_ids(client: AsyncClient, run_worker: Any) -> None:
    async with run_worker(lambda d: d):
        a = await client.enqueue("role", "a")
        b = await client.enqueue("role", "b")
        results = await client.wait_many([a, b, a], timeout=5)
    assert [r.output for r in results] == ["a", "b", "a"]


async def test_get_shows_attempt_worker_and_timings(client: AsyncClient, run_worker: Any) -> None:
    async def slow(data: Any) -> str:
        await asyncio.sleep(0.1)
        return "done"

    tid = await client.enqueue("role", {"in": 1}, name="slow one", max_attempts=2)
    info = await client.get(tid)
    assert info.status is TaskStatus.QUEUED
    assert (info.attempt, info.worker, info.started_at, info.result) == (0, None, None, None)
    assert info.data == {"in": 1}
    async with run_worker(slow) as worker:
        await client.wait(tid, timeout=5)
    info = await client.get(tid)
    assert info.status is TaskStatus.COMPLETED
    assert info.attempt == 1
    assert info.max_attempts == 2
    assert info.worker in worker.ids
    assert info.name == "slow one"
    assert info.role == "role"
    assert info.enqueued_at is not None and info.started_at is not None
    assert info.finished_at is not None
    assert info.enqueued_at <= info.started_at <= info.finished_at
    assert info.run_time is not None and info.run_time >= 0.09
    assert info.queue_wait is not None and info.queue_wait >= 0
    assert info.result is not None and info.result.output == "done"


# --- refusals write nothing ----------------------------------------------------------------


async def test_enqueue_of_unencodable_data_writes_nothing(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    with pytest.raises(EncodeError, match=r"data\['bad'\]"):
        await client.enqueue("role", {"bad": object()})
    with pytest.raises(EncodeError, match=r"cannot encode items\[1\]"):
        await client.enqueue_many("role", [1, object(), 3])
    with pytest.raises(EncodeError):
        await client.enqueue_graph([TaskDef("role", data=1, id="ok"),
                                    TaskDef("role", data={1, object}, id="bad")])
    assert await fake_async.dbsize() == 0
    assert await namespace_keys(fake_async, prefix) == []


async def test_enqueue_invalid_role_or_id_writes_nothing(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis) -> None:
    with pytest.raises(ValidationError, match="'no spaces'"):
        await client.enqueue("no spaces", 1)
    with pytest.raises(ValidationError, match="'a:b'"):
        await client.enqueue("role", 1, task_id="a:b")
    assert await fake_async.dbsize() == 0


async def test_enqueue_graph_rejects_a_cycle_naming_it(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis) -> None:
    tasks = [TaskDef("r1", id="a", depends_on=["b"]), TaskDef("r2", id="b", depends_on=["a"]),
             TaskDef("r1", id="c")]
    with pytest.raises(DependencyError, match="cycle: a -> b -> a"):
        await client.enqueue_graph(tasks)
    assert await fake_async.dbsize() == 0


async def test_enqueue_existing_id_and_unknown_prerequisite(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    await client.enqueue("role", 1, task_id="t1")
    before = await namespace_keys(fake_async, prefix)
    with pytest.raises(TaskExistsError, match="t1"):
        await client.enqueue("role", 2, task_id="t1")
    with pytest.raises(UnknownTaskError, match="ghost"):
        await client.enqueue("role", 3, depends_on=["ghost"])
    keys_now = await namespace_keys(fake_async, prefix)
    assert set(before) <= set(keys_now)
    assert (await client.get("t1")).data == 1


# --- dependencies --------------------------------------------------------------------------


async def test_dependency_outputs_reach_current_task(client: AsyncClient,
                                                     run_worker: Any) -> None:
    seen: dict[str, dict[str, Any]] = {}

    async def handler(data: Any) -> Any:
        ctx = current_task()
        seen[ctx.id] = dict(ctx.dependency_data)
        return {"from": ctx.id, "data": data}

    graph = await client.enqueue_graph([
        TaskDef("role", data="x", id="first"),
        TaskDef("role", data="y", id="second"),
        TaskDef("role", data="z", id="last", depends_on=["first", "second"]),
    ])
    ids = await graph.task_ids()
    assert ids == ["first", "second", "last"]
    assert (await client.get("last")).status is TaskStatus.WAITING
    async with run_worker(handler):
        results = await client.wait_many(ids, timeout=5)
    assert all(r.success for r in results)
    assert seen["first"] == {}
    assert seen["last"] == {"first": {"from": "first", "data": "x"},
                            "second": {"from": "second", "data": "y"}}
    assert results[2].output == {"from": "last", "data": "z"}


async def test_failed_prerequisite_cancels_the_dependent(client: AsyncClient,
                                                         run_worker: Any) -> None:
    ran: list[str] = []

    async def handler(data: Any) -> Any:
        ran.append(current_task().id)
        if data == "fail":
            raise RuntimeError("nope")
        return data

    graph = await client.enqueue_graph([TaskDef("role", data="fail", id="p"),
                                        TaskDef("role", data="ok", id="c", depends_on=["p"])])
    ids = await graph.task_ids()
    async with run_worker(handler):
        p, c = await client.wait_many(ids, timeout=5)
    assert ran == ["p"]
    assert p.status is TaskStatus.FAILED
    assert c.status is TaskStatus.CANCELLED and not c.success
    assert c.error is not None and c.error.startswith("dependency p failed: RuntimeError: nope")


class Summer(ProcessWorker):
    def __init__(self, name: str, role: str) -> None:
        super().__init__(name, role)
        self.requests: list[ProcessRequest] = []

    async def _processor(self, request: ProcessRequest, time: int) -> Any:
        self.requests.append(request)
        deps = request.dependency_data or {}
        return sum(r.output for r in deps.values()) + (request.data or 0)


async def test_process_worker_gets_dependency_data(client: AsyncClient, run_worker: Any) -> None:
    pw = Summer("summer", "sum")
    graph = await client.enqueue_graph([
        TaskDef("sum", data={"data": 1}, id="one", name="n1"),
        TaskDef("sum", data={"data": 2}, id="two"),
        TaskDef("sum", data={"data": 10, "extra": True}, id="total", depends_on=["one", "two"]),
    ])
    ids = await graph.task_ids()
    async with run_worker(pw, role=None):
        results = await client.wait_many(ids, timeout=5)
    assert [r.output for r in results] == [1, 2, 13]
    by_id = {r.task_id: r for r in pw.requests}
    assert by_id["total"].dependency_data == {  # TaskResults, as Ceylon's ProcessRequest has
        "one": TaskResult(success=True, output=1, task_id="one", status=TaskStatus.COMPLETED),
        "two": TaskResult(success=True, output=2, task_id="two", status=TaskStatus.COMPLETED)}
    assert by_id["one"].dependency_data is None
    assert by_id["total"].data == 10
    assert by_id["total"].input_data == {"data": 10, "extra": True}
    assert by_id["total"].task_type == "sum"
    assert by_id["one"].task_name == "n1"
    assert by_id["one"].attempt == 1


async def test_process_worker_reporting_failure_is_not_retried(client: AsyncClient,
                                                               run_worker: Any) -> None:
    calls: list[int] = []

    class Refuser(ProcessWorker):
        async def _processor(self, request: ProcessRequest, time: int) -> Any:
            calls.append(request.attempt)
            return (False, {"why": "not today", "input": request.data})

    tid = await client.enqueue("refuse", {"data": 5}, max_attempts=3)
    async with run_worker(Refuser("refuser", "refuse"), role=None):
        result = await client.wait(tid, timeout=5)
        await asyncio.sleep(0.1)  # time for a (wrong) retry to show up
    assert result.success is False
    assert result.status is TaskStatus.FAILED
    assert result.output == {"why": "not today", "input": 5}
    assert result.error == "processor reported failure"
    assert calls == [1]
    assert (await client.get(tid)).attempt == 1


async def test_process_worker_success_pair_and_plain_value(client: AsyncClient,
                                                           run_worker: Any) -> None:
    class Pair(ProcessWorker):
        async def _processor(self, request: ProcessRequest, time: int) -> Any:
            return (True, "fine") if request.data == "pair" else ("not", "a pair")

    async with run_worker(Pair("p", "pair"), role=None):
        a = await client.wait(await client.enqueue("pair", {"data": "pair"}), timeout=5)
        b = await client.wait(await client.enqueue("pair", {"data": "x"}), timeout=5)
    assert (a.success, a.output) == (True, "fine")
    assert (b.success, b.output) == (True, ["not", "a pair"])


async def test_raising_handler_runs_max_attempts_times(client: AsyncClient,
                                                       run_worker: Any) -> None:
    attempts: list[int] = []

    async def flaky(data: Any) -> None:
        attempts.append(current_task().attempt)
        raise ConnectionError(f"try {len(attempts)}")

    tid = await client.enqueue("role", None, max_attempts=3)
    async with run_worker(flaky):
        result = await client.wait(tid, timeout=5)
    assert attempts == [1, 2, 3]
    assert result.success is False
    assert result.error is not None and "try 3" in result.error
    info = await client.get(tid)
    assert info.attempt == 3
    assert info.status is TaskStatus.FAILED


async def test_flaky_handler_succeeds_on_a_later_attempt(client: AsyncClient,
                                                         run_worker: Any) -> None:
    async def flaky(data: Any) -> int:
        if current_task().attempt < 2:
            raise RuntimeError("first try fails")
        return current_task().attempt

    async with run_worker(flaky):
        result = await client.wait(await client.enqueue("role", max_attempts=3), timeout=5)
    assert (result.success, result.output) == (True, 2)


async def test_the_workers_max_attempts_applies_to_tasks_without_their_own(
        client: AsyncClient, prefix: str, run_worker: Any) -> None:
    calls: dict[str, int] = {}

    async def failing(data: Any) -> None:
        calls[data] = calls.get(data, 0) + 1
        raise RuntimeError("x")

    async with run_worker(failing, settings=settings_for(prefix, max_attempts=2)):
        await client.wait_many([await client.enqueue("role", "default"),
                                await client.enqueue("role", "own", max_attempts=3)], timeout=5)
    assert calls == {"default": 2, "own": 3}
    assert (await client.get(await client.enqueue("role", "x"))).max_attempts is None


# --- the worker's life ---------------------------------------------------------------------


async def test_stop_lets_an_in_flight_task_finish(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    started = asyncio.Event()

    async def slow(data: Any) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    worker = Worker(slow, role="role", redis_client=fake_async, settings=settings_for(prefix))
    runner = asyncio.create_task(worker.run())
    tid = await client.enqueue("role", 1)
    await asyncio.wait_for(started.wait(), 5)
    worker.stop()
    await asyncio.wait_for(runner, 5)
    info = await client.get(tid)
    assert info.status is TaskStatus.COMPLETED
    assert info.result is not None and info.result.output == "finished"
    # deregistered
    assert await fake_async.zcard(client.keys.workers) == 0
    assert not await fake_async.exists(client.keys.worker(worker.ids[0]))


async def test_stop_after_grace_gives_the_task_back(
        client: AsyncClient, fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    started = asyncio.Event()

    async def forever(data: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = Worker(forever, role="role", redis_client=fake_async, settings=settings_for(prefix),
                    grace=0.1)
    runner = asyncio.create_task(worker.run())
    tid = await client.enqueue("role", 1, max_attempts=2)
    await asyncio.wait_for(started.wait(), 5)
    worker.stop()
    await asyncio.wait_for(runner, 5)
    info = await client.get(tid)
    assert info.status is TaskStatus.QUEUED
    assert info.attempt == 1
    assert info.error is not None and "stopped" in info.error


def test_prefetch_defaults_to_the_concurrency_of_sync_functions_only() -> None:
    async def a(data: Any) -> None: ...

    def s(data: Any) -> None: ...

    slots = [c.slots for c in Worker([a, s], role="role", concurrency=3,
                                     url="embedded://").consumers]
    assert [(sl.concurrency, sl.prefetch) for sl in slots] == [(3, 0), (3, 3)]
    assert Worker(s, role="role", prefetch=0, url="embedded://").consumers[0].slots.permits is None
    with pytest.raises(ValidationError, match="prefetch must not be negative"):
        Worker(s, role="role", prefetch=-1, url="embedded://")


async def test_prefetched_sync_tasks_run_concurrency_at_a_time_each_timed_from_its_start(
        client: AsyncClient, run_worker: Any, prefix: str) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def slow(data: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.25)
        with lock:
            running -= 1
        return data

    # Four taken at once, two threads: the last two wait 0.25 s, over half their time limit.
    async with run_worker(slow, concurrency=2, prefetch=2,
                          settings=settings_for(prefix, task_timeout=0.4)):
        ids = await client.enqueue_many("role", [1, 2, 3, 4])
        results = await client.wait_many(ids, timeout=10)
    assert [(r.success, r.output) for r in results] == [(True, 1), (True, 2), (True, 3), (True, 4)]
    assert most == 2


async def test_a_prefetched_task_cancelled_before_it_starts_never_runs(
        client: AsyncClient, run_worker: Any) -> None:
    release = threading.Event()
    ran: list[Any] = []

    def blocked(data: Any) -> Any:
        ran.append(data)
        release.wait(10)
        return data

    async with run_worker(blocked, concurrency=1, prefetch=1) as worker:
        first, second = await client.enqueue_many("role", ["first", "second"])
        for _ in range(200):  # both taken: one running, one waiting for the thread
            if sum(len(c.waiting) for c in worker.consumers) == 1 and ran:
                break
            await asyncio.sleep(0.02)
        assert ran == ["first"]
        assert await client.cancel(second)
        await asyncio.sleep(0.2)
        release.set()
        assert (await client.wait(first, timeout=5)).output == "first"
        assert (await client.get(second)).status is TaskStatus.CANCELLED
        assert sum(len(c.waiting) + len(c.inflight) for c in worker.consumers) == 0
    assert ran == ["first"]


async def test_worker_registers_and_queues_reports(client: AsyncClient, run_worker: Any) -> None:
    async def h(data: Any) -> None:
        return None

    async with run_worker(h) as worker:
        await client.wait(await client.enqueue("role"), timeout=5)
        workers = await client.workers()
        assert [w.id for w in workers] == worker.ids
        assert workers[0].roles == ["role"] and workers[0].alive
        queues = await client.queues()
        assert [q.role for q in queues] == ["role"]
        assert queues[0].workers_alive == 1
    assert await client.workers() == []


async def test_a_set_of_tuples_does_not_crash_the_worker(client: AsyncClient,
                                                         run_worker: Any) -> None:
    """Whatever enqueue accepts must not take the worker down (nor the tasks next to it)."""
    async with run_worker(lambda d: "ok") as worker:
        try:
            poison = await client.enqueue("role", {(1, 2)})
        except EncodeError:
            poison = None  # refusing it up front is fine too
        good = await client.enqueue("role", "fine")
        result = await client.wait(good, timeout=3)
        assert (result.success, result.output) == (True, "ok")
        if poison is not None:
            assert (await client.wait(poison, timeout=3)).status.is_final
        assert worker.consumers[0].slots.processed >= 1


# --- the blocking client -------------------------------------------------------------------


async def test_sync_client_against_the_async_worker(
        fake_server: fakeredis.FakeServer, prefix: str, run_worker: Any) -> None:
    sync_redis = fakeredis.FakeRedis(server=fake_server)
    client = Client(redis=sync_redis, prefix=prefix)
    try:
        async with run_worker(lambda d: {"echo": d}):
            tid = client.enqueue("role", [1, 2])
            result = await asyncio.to_thread(client.wait, tid, 5)
            assert (result.success, result.output) == (True, {"echo": [1, 2]})
            ids = client.enqueue_many("role", range(50), names=[f"n{i}" for i in range(50)])
            results = await asyncio.to_thread(client.wait_many, ids, 10)
            assert [r.output for r in results] == [{"echo": i} for i in range(50)]
            info = client.get(ids[3])
            assert info.name == "n3" and info.attempt == 1 and info.worker
            graph = client.enqueue_graph([TaskDef("role", 1, id="g1"),
                                          TaskDef("role", 2, id="g2", depends_on=["g1"])])
            assert [r.output for r in await asyncio.to_thread(graph.wait, 5)] == [
                {"echo": 1}, {"echo": 2}]
        # finished before this wait began: still returned
        assert client.wait(tid, timeout=2).output == {"echo": [1, 2]}
        lonely = client.enqueue("nobody", 1)
        began = time.monotonic()
        with pytest.raises(TaskTimeoutError):
            client.wait(lonely, timeout=0.2)
        assert time.monotonic() - began < 1.5
        with pytest.raises(EncodeError):
            client.enqueue("role", object())
        with pytest.raises(DependencyError, match="x -> x"):
            client.enqueue_graph([TaskDef("role", id="x", depends_on=["x"])])
        with pytest.raises(ValueError, match="names"):
            client.enqueue_many("role", [1, 2], names=["one"])
    finally:
        client.close()
        sync_redis.close()


async def test_sync_client_with_worker_in_a_background_thread(
        fake_server: fakeredis.FakeServer, prefix: str) -> None:
    """The async worker runs in its own thread's event loop; this test only blocks."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def worker_thread() -> None:
        async def main() -> None:
            r = fakeredis.FakeAsyncRedis(server=fake_server)
            w = Worker(lambda d: d.upper(), role="upper", redis_client=r,
                       settings=settings_for(prefix))
            holder["worker"], holder["loop"] = w, asyncio.get_running_loop()
            ready.set()
            await w.run()
            await r.aclose()

        asyncio.run(main())

    t = threading.Thread(target=worker_thread, daemon=True)
    t.start()
    assert ready.wait(5)
    sync_redis = fakeredis.FakeRedis(server=fake_server)
    try:
        with Client(redis=sync_redis, prefix=prefix) as client:
            ids = await asyncio.to_thread(client.enqueue_many, "upper", ["a", "b", "c"])
            results = await asyncio.to_thread(client.wait_many, ids, 5)
            assert [r.output for r in results] == ["A", "B", "C"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["worker"].stop)
        await asyncio.to_thread(t.join, 5)
        sync_redis.close()
    assert not t.is_alive()
