"""The lifecycle stream and progress, on fakeredis: each script notes the transitions it
makes in the same call (one entry per kind, role and status reached), the cap is the
caller's and 0 turns events off, progress is fenced like a finish, and the clients read
both (events, recent_events, watch, wait with on_progress)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from ceylon_redis import AsyncClient, Client, Settings, TaskStatus, Worker, current_task
from ceylon_redis.errors import ValidationError
from ceylon_redis.events import parse_entry
from ceylon_redis.keys import Keys
from ceylon_redis.scripts import Scripts
from tests.conftest import delete_namespace
from tests.test_scripts import Env


@pytest.fixture
def env(fake_sync: fakeredis.FakeRedis, prefix: str) -> Env:
    return Env(fake_sync, Scripts.register(fake_sync), Keys(prefix), Settings(prefix=prefix))


def _events(env: Env) -> list[tuple[str, str, str, int | None]]:
    """(kind, task id, status, attempt) of every event in the stream, in order."""
    return [(e.kind, e.task_id, e.status.value, e.attempt)
            for eid, fields in env.r.xrange(env.k.lifecycle) for e in parse_entry(eid, fields)]


def test_a_task_run_retried_and_dead_lettered_leaves_each_transition_once(env: Env) -> None:
    env.enqueue({"id": "ok"}, {"id": "bad", "max_attempts": 2})
    assert _events(env) == [("enqueued", "ok", "QUEUED", None),
                            ("enqueued", "bad", "QUEUED", None)]
    assert len(env.r.xrange(env.k.lifecycle)) == 1    # one call, one kind: one entry
    took = env.take("w1")
    assert env.finish("w1", ("ok", *took["ok"], "COMPLETED", b"", "", "n"),
                      ("bad", *took["bad"], "FAILED", b"", "boom", "0")) == []
    took = env.take("w1")
    env.finish("w1", ("bad", *took["bad"], "FAILED", b"", "boom", "0"))
    assert _events(env)[2:] == [
        ("started", "ok", "RUNNING", 1), ("started", "bad", "RUNNING", 1),
        ("completed", "ok", "COMPLETED", 1), ("retried", "bad", "QUEUED", 1),
        ("started", "bad", "RUNNING", 2),
        ("failed", "bad", "FAILED", 2), ("dead", "bad", "FAILED", 2)]
    worker = {e.worker for eid, f in env.r.xrange(env.k.lifecycle)[1:]
              for e in parse_entry(eid, f)}
    assert worker == {"w1"}


def test_waiting_released_cancelled_and_requeued_transitions_are_noted(env: Env) -> None:
    env.enqueue({"id": "a"}, {"id": "b", "depends_on": ["a"]}, {"id": "c", "depends_on": ["a"]})
    env.run("cancel", ["by hand", "", "c"])
    took = env.take("w1")
    env.run("requeue", ["w1", "stopping", 604800, 0, "role"])   # w1 gives a back, mid-run
    took = env.take("w2")
    env.finish("w2", ("a", *took["a"], "COMPLETED", b"", "", "n"))
    kinds = [(k, t, s) for k, t, s, _ in _events(env)]
    assert kinds == [("enqueued", "a", "QUEUED"), ("enqueued", "b", "WAITING"),
                     ("enqueued", "c", "WAITING"), ("cancelled", "c", "CANCELLED"),
                     ("started", "a", "RUNNING"), ("requeued", "a", "QUEUED"),
                     ("started", "a", "RUNNING"), ("completed", "a", "COMPLETED"),
                     ("released", "b", "QUEUED")]


def test_an_entry_holds_at_most_sixteen_tasks(env: Env) -> None:
    env.enqueue(*({"id": f"t{i}"} for i in range(40)))
    assert [len(f[b"t"].split()) for _, f in env.r.xrange(env.k.lifecycle)] == [16, 16, 8]
    took = env.take("w")
    attempts = [f.get(b"a") for _, f in env.r.xrange(env.k.lifecycle)][3:]
    assert attempts == [b" ".join([b"1"] * 16), b" ".join([b"1"] * 16), b" ".join([b"1"] * 8)]
    assert [t for _, t, _, _ in _events(env)] == [f"t{i}" for i in range(40)] * 2
    del took


def test_no_events_when_the_cap_is_zero(fake_sync: fakeredis.FakeRedis, prefix: str) -> None:
    env = Env(fake_sync, Scripts.register(fake_sync, 0), Keys(prefix), Settings(prefix=prefix))
    env.enqueue({"id": "t"})
    took = env.take("w")
    env.finish("w", ("t", *took["t"], "COMPLETED", b"", "", "n"))
    assert env.h("t")["status"] == "COMPLETED"
    assert not env.r.exists(env.k.lifecycle)


def test_the_cap_trims_the_stream(fake_sync: fakeredis.FakeRedis, prefix: str) -> None:
    env = Env(fake_sync, Scripts.register(fake_sync, 50), Keys(prefix), Settings(prefix=prefix))
    for i in range(300):
        env.enqueue({"id": f"t{i}"})
    assert 50 <= env.r.xlen(env.k.lifecycle) <= 150   # MAXLEN ~: whole nodes go


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
def any_env(request: pytest.FixtureRequest, fake_sync: fakeredis.FakeRedis,
            prefix: str) -> Iterator[Env]:
    """The scripts on fakeredis, and on the real Redis (the test's namespace there)."""
    r = fake_sync if request.param == "fakeredis" else request.getfixturevalue("sync_redis")
    yield Env(r, Scripts.register(r), Keys(prefix), Settings(prefix=prefix))
    if r is not fake_sync:
        delete_namespace(r, prefix)


def test_progress_is_fenced_to_the_running_attempt_of_its_worker(any_env: Env) -> None:
    env = any_env
    env.enqueue({"id": "t"})
    took = env.take("w1")
    assert env.run("progress", ["w1", "role", "t", 1, "0.25", '{"step":1}']) == []
    h = env.h("t")
    assert (h["progress"], h["progress_info"]) == ("0.25", '{"step":1}')
    env.run("requeue", ["w1", "worker w1 died", 604800, 0, "role"])  # reclaimed
    assert "progress" in env.h("t")
    env.take("w2")                                   # attempt 2 starts afresh
    assert "progress" not in env.h("t") and "progress_info" not in env.h("t")
    before = env.h("t")
    assert env.run("progress", ["w1", "role", "t", 1, "0.9", ""]) == [b"t"]   # late
    assert env.run("progress", ["w2", "role", "t", 1, "0.9", ""]) == [b"t"]   # old attempt
    assert env.h("t") == before
    assert env.run("progress", ["w2", "role", "t", 2, "0.5", ""]) == []
    assert env.h("t")["progress"] == "0.5"
    entry, attempt = env.take("w2").get("t", (env.h("t")["entry"], 2))
    env.finish("w2", ("t", entry, attempt, "COMPLETED", b"", "", "n"))
    assert env.h("t")["progress"] == "1"            # completed: all of it
    assert env.run("progress", ["w2", "role", "t", 2, "0.7", ""]) == [b"t"]   # after the end
    assert env.h("t")["progress"] == "1"
    progress = [(k, a) for k, _, _, a in _events(env) if k == "progress"]
    assert progress == [("progress", 1), ("progress", 2)]
    del took


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half", True, None])
def test_a_bad_progress_value_raises_in_the_handler(bad: Any) -> None:
    from ceylon_redis.progress import check_fraction
    with pytest.raises(ValidationError, match="progress must be"):
        check_fraction(bad)


def test_progress_info_must_be_json_and_small() -> None:
    from ceylon_redis.progress import encode_info
    assert encode_info({"step": "upload", "n": 3}) == '{"step":"upload","n":3}'
    with pytest.raises(ValidationError, match="JSON-encodable"):
        encode_info({1, 2})
    with pytest.raises(ValidationError, match="bytes encoded"):
        encode_info("x" * 20_000)


def test_current_task_progress_outside_a_worker_says_so() -> None:
    from ceylon_redis.process import TaskContext
    ctx = TaskContext(id="t", role="r", name="", attempt=1, worker="w", dependency_data={})
    with pytest.raises(RuntimeError, match="only from a task a worker runs"):
        ctx.progress(0.5)


async def test_watch_and_events_through_both_clients(
        fake_async: fakeredis.FakeAsyncRedis, fake_sync: fakeredis.FakeRedis,
        prefix: str) -> None:
    settings = Settings(prefix=prefix, progress_interval=0.02, block_ms=50)
    gate = asyncio.Event()

    async def steps(data: Any) -> Any:
        for i in range(1, 11):
            current_task().progress(i / 10, {"i": i})
            await asyncio.sleep(0.03)
        await gate.wait()
        return "done"

    async with AsyncClient(settings=settings, redis=fake_async) as client:
        tid = await client.enqueue("steps", None)
        worker = Worker(steps, role="steps", settings=settings, redis_client=fake_async,
                        reap=False)
        run = asyncio.create_task(worker.run())
        seen = []
        async for update in client.watch(tid, timeout=10):
            seen.append(update)
            if update.progress == 1.0:
                gate.set()
        worker.stop()
        await run
        assert seen[-1].result is not None and seen[-1].result.output == "done"
        assert seen[-1].status is TaskStatus.COMPLETED and seen[-1].progress == 1.0
        fractions = [u.progress for u in seen if u.progress is not None]
        assert fractions == sorted(fractions) and len(set(fractions)) >= 4
        assert any(u.progress_info == {"i": 10} for u in seen)
        kinds = [e.kind async for e in client.events(task_id=tid)]
        assert kinds[:2] == ["enqueued", "started"] and kinds[-1] == "completed"
        assert 4 <= kinds.count("progress") <= 10
        later = [e async for e in client.events(dt.datetime.now(dt.timezone.utc))]
        assert later == []
    with Client(settings=settings, redis=fake_sync) as sync:
        assert [u.status for u in sync.watch(tid)] == [TaskStatus.COMPLETED]
        recent = sync.recent_events(2, task_id=tid)
        assert [e.kind for e in recent] == kinds[-2:]
        with pytest.raises(ValidationError, match="unknown event kind nope"):
            list(sync.events(kinds=["nope"]))
        with pytest.raises(ValidationError, match="since must be"):
            list(sync.events("yesterday"))


async def test_wait_with_on_progress_sees_the_reports(
        fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    settings = Settings(prefix=prefix, progress_interval=0.02, block_ms=50)

    async def steps(data: Any) -> Any:
        for i in range(1, 6):
            current_task().progress(i / 5)
            await asyncio.sleep(0.05)
        return data

    async with AsyncClient(settings=settings, redis=fake_async) as client:
        tid = await client.enqueue("steps", 7)
        worker = Worker(steps, role="steps", settings=settings, redis_client=fake_async,
                        reap=False)
        run = asyncio.create_task(worker.run())
        got: list[float] = []
        result = await client.wait(tid, timeout=10,
                                   on_progress=lambda u: got.append(u.progress or 0))
        worker.stop()
        await run
    assert result.output == 7
    assert len(got) >= 3 and got == sorted(got)


def test_entries_of_several_partitions_come_out_in_id_order() -> None:
    from ceylon_redis.events import EntryMerge

    merge = EntryMerge(["a", "b"], "0", batch=2)
    assert merge.to_read() == ["a", "b"]
    merge.add("a", [["a", [(b"1-0", {}), (b"5-0", {})]]])   # a full batch: may hold more
    merge.add("b", [["b", [(b"2-0", {})]]])                 # read to its end
    assert [merge.pop()[0], merge.pop()[0]] == [b"1-0", b"2-0"]
    assert merge.pop()[0] == b"5-0"
    assert merge.pop() is None and merge.to_read() == ["a"]   # a must be read past 5-0
    merge.add("a", [["a", [(b"7-0", {})]]])
    assert merge.pop()[0] == b"7-0" and merge.pop() is None and merge.to_read() == []
    merge.again()
    assert merge.to_read() == ["a", "b"] and merge.position == {"a": "7-0", "b": "2-0"}


async def test_a_process_worker_reports_progress_too(
        fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    from ceylon_redis import ProcessRequest, ProcessWorker

    class Counting(ProcessWorker):
        async def _processor(self, request: ProcessRequest, time: int) -> Any:
            for i in range(1, 4):
                current_task().progress(i / 4, {"at": i})
                await asyncio.sleep(0.05)
            return True, request.data

    settings = Settings(prefix=prefix, progress_interval=0.02, block_ms=50)
    async with AsyncClient(settings=settings, redis=fake_async) as client:
        tid = await client.enqueue("count", {"data": 5})
        worker = Worker(Counting("counter", "count"), settings=settings,
                        redis_client=fake_async, reap=False)
        run = asyncio.create_task(worker.run())
        seen = [u async for u in client.watch(tid, timeout=10, interval=0.02)]
        worker.stop()
        await run
    steps = [u.progress_info["at"] for u in seen if u.progress_info]
    assert steps and steps == sorted(steps) and set(steps) <= {1, 2, 3}
    assert seen[-1].result is not None and seen[-1].result.output == 5


async def test_events_of_every_partition_are_followed_in_order(
        fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    settings = Settings(prefix=prefix, partitions=3)
    async with AsyncClient(settings=settings, redis=fake_async) as client:
        await client.enqueue("r", 0)
        seen: list[Any] = []

        async def follow() -> None:
            async for e in client.events("$", follow=True, block=0.05):
                seen.append(e)
                if len(seen) == 30:
                    return

        following = asyncio.create_task(follow())
        await asyncio.sleep(0.1)  # blocked in one read of all three streams
        ids = [await client.enqueue("r", i) for i in range(30)]
        await asyncio.wait_for(following, 10)
    # every partition's, each once, none before "$"; within one millisecond two
    # partitions' entries may share an id, so the order is the ids', not the enqueues'
    assert sorted(e.task_id for e in seen) == sorted(ids)
    homes = {client.parts.home(t).partition for t in ids}
    assert homes == {0, 1, 2}
    order = [tuple(int(n) for n in e.id.split("-")) for e in seen]
    assert order == sorted(order)
