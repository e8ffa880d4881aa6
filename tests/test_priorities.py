"""Priorities within a role: a worker takes the highest waiting first, whatever the order
tasks were queued in, through retries, cancels and reclaims; scripts on fakeredis."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from ceylon_redis import AsyncClient, Client, Settings, TaskDef, ValidationError
from ceylon_redis.codec import encode
from ceylon_redis.keys import GROUP, Keys
from ceylon_redis.protocol import enqueue_args, make_spec, make_specs
from ceylon_redis.scheduler import fire_due_ticks
from ceylon_redis.schedules import make_schedule
from ceylon_redis.scripts import Scripts
from tests.test_scripts import Env, snapshot


@pytest.fixture
def env(fake_sync: fakeredis.FakeRedis, prefix: str) -> Env:
    return Env(fake_sync, Scripts.register(fake_sync), Keys(prefix), Settings(prefix=prefix))


def enqueue(env: Env, *tasks: tuple[str, int | None], **options: Any) -> None:
    specs = [make_spec(env.settings, "role", None, task_id=tid, priority=p, **options)
             for tid, p in tasks]
    assert env.run("enqueue", enqueue_args(specs))[0] == b"OK"


def take(env: Env, consumer: str, count: int) -> list[tuple[str, str, int]]:
    """Read and start up to ``count`` entries in one call (the worker's take):
    (task id, entry, attempt) of each started; placeholders dropped are left out."""
    env.group()
    reply = env.run("start", ["role", consumer, ">", count])
    out = []
    for entry, item in zip(reply[0::2], reply[1::2]):
        if item[1]:
            out.append((item[0].decode(), entry.decode(), int(item[1])))
    return out


def drain(env: Env, count: int = 1) -> list[str]:
    """Task ids in the order workers start them, ``count`` per read, each completed."""
    order: list[str] = []
    while True:
        got = take(env, "c1", count)
        if not got and not env.r.xlen(env.k.stream("role")):
            return order
        for tid, entry, attempt in got:
            order.append(tid)
            assert env.finish("c1", (tid, entry, attempt, "COMPLETED", encode(1), "", "n")) == []


def test_default_tasks_keep_their_own_entries_and_pay_nothing(env: Env) -> None:
    enqueue(env, ("a", None), ("b", 5))
    assert [f[b"id"] for _, f in env.entries()] == [b"a", b"b"]
    assert not env.r.exists(env.k.base + "priority:role")
    assert "priority" not in env.h("a")
    assert drain(env) == ["a", "b"]


def test_the_highest_priority_waiting_runs_first_fifo_within_a_level(env: Env) -> None:
    enqueue(env, ("d1", None), ("d2", None))       # before any priority: own entries
    enqueue(env, ("low", 0), ("hi1", 9), ("d3", None), ("mid", 7), ("hi2", 9), ("low2", 1))
    assert drain(env) == ["hi1", "hi2", "mid", "d1", "d2", "d3", "low2", "low"]
    assert env.r.xlen(env.k.stream("role")) == 0
    assert not env.r.exists(env.k.base + "priority:role", env.k.base + "bound:role")


def test_a_thousand_mixed_priorities_come_out_sorted(env: Env) -> None:
    tasks = [(f"t{i}", (i * 7919) % 10) for i in range(1000)]
    enqueue(env, *tasks)
    order = drain(env, count=10)
    rank = dict(tasks)
    assert sorted(order) == sorted(t for t, _ in tasks)
    assert [rank[t] for t in order] == sorted(rank.values(), reverse=True)
    for level in range(10):  # and first come, first served within a level
        queued = [t for t, p in tasks if p == level]
        assert [t for t in order if rank[t] == level] == queued


def test_a_retry_keeps_its_priority(env: Env) -> None:
    enqueue(env, ("d", None), ("hi", 8), max_attempts=2)
    tid, entry, attempt = take(env, "c1", 1)[0]
    assert tid == "hi"
    env.finish("c1", (tid, entry, attempt, "FAILED", b"", "boom", "0"))  # retry at once
    assert env.h("hi")["status"] == "QUEUED" and env.h("hi")["priority"] == "8"
    assert drain(env) == ["hi", "d"]


@pytest.mark.parametrize("read_before", [False, True])
def test_a_cancelled_prioritized_task_leaves_nothing_behind(env: Env, read_before: bool) -> None:
    if read_before:  # the role's group exists (a worker read it)
        enqueue(env, ("first", None))
        assert drain(env) == ["first"]
    enqueue(env, ("d", None), ("gone", 9), ("kept", 2))
    assert env.run("cancel", ["no longer wanted", "", "gone"])[1] == 1
    assert [m.split(b":")[-1] for m in env.r.zrange(env.k.base + "priority:role", 0, -1)] \
        == [b"kept"]
    assert len(env.entries()) == 2  # its placeholder went with it
    assert drain(env) == ["d", "kept"]
    assert env.h("gone")["status"] == "CANCELLED"
    assert not env.r.exists(env.k.base + "dead")


def test_a_reclaimed_prioritized_task_runs_again_and_a_placeholder_is_given_back(
        env: Env) -> None:
    enqueue(env, ("d", None), ("hi", 9), ("lo", 1), max_attempts=3)
    started = take(env, "dead", 1)  # 'hi' on d's entry, 'd' back in the zset
    assert [t for t, _, _ in started] == ["hi"]
    env.read("dead", count=1)  # a placeholder read, never started (the worker died)
    assert env.run("requeue", ["dead", "worker dead stopped", 604800, 0, "role"]) == [1, 0]
    assert env.h("hi")["status"] == "QUEUED" and env.h("hi")["crashes"] == "1"
    assert not env.r.hlen(env.k.base + "bound:role")
    assert drain(env) == ["hi", "d", "lo"]


def test_a_start_again_after_a_lost_reply_serves_the_same_task(env: Env) -> None:
    enqueue(env, ("d", None), ("hi", 9))
    pairs = env.read("c1", count=1)  # d's own entry
    first = env.start("c1", pairs)
    again = env.start("c1", pairs)
    assert first == again and first[0][:2] == [b"hi", 1]
    assert env.h("d")["status"] == "QUEUED"


@pytest.mark.parametrize("bad", [10, -1, "5", 2.5, True])
def test_a_priority_out_of_range_is_refused(env: Env, bad: Any) -> None:
    before = snapshot(env.r)
    with pytest.raises(ValidationError, match="priority must be an integer from 0"):
        make_spec(env.settings, "role", None, priority=bad)
    with pytest.raises(ValidationError, match="priority"):
        make_specs(env.settings, "role", [1, 2], None, priority=bad)
    assert snapshot(env.r) == before


def test_the_script_refuses_a_priority_that_is_not_a_digit(env: Env) -> None:
    spec = make_spec(env.settings, "role", None, task_id="t")
    header, data = spec.args()
    lines = header.split("\n")
    lines[9] = "12"
    reply = env.run("enqueue", ["", 0, 1, "\n".join(lines), data])
    assert reply[:2] == [b"ERR", b"INVALID"] and b"priority of task t" in reply[2]
    assert not env.r.exists(env.k.task("t"))


async def test_a_schedule_s_ticks_carry_its_priority(
        fake_async: fakeredis.FakeAsyncRedis) -> None:
    client = AsyncClient(prefix="sched", redis=fake_async)
    await client.enqueue("work", "plain")
    info = await client.add_schedule("beat", "work", {"n": 1}, every=0.1, priority=9)
    assert info.priority == 9
    await fake_async.zadd("{sched}:schedules", {"beat": 1000})  # due
    scripts, keys = Scripts.register(fake_async), Keys("sched")
    enqueued, _ = await fire_due_ticks(scripts, keys)
    assert enqueued == 1
    tick = (await client.schedule("beat")).last_task_id
    assert tick is not None
    task = await client.get(tick)
    assert (task.status.value, task.priority) == ("QUEUED", 9)
    await fake_async.xgroup_create(keys.stream("work"), GROUP, id="0")
    reply = await scripts.start(keys=[keys.base], args=["work", "c1", ">", 1])
    assert reply[1][0] == tick.encode()  # ahead of the plain task queued before it


def test_schedule_without_priority_keeps_its_digest() -> None:
    # schedules made before priorities existed must not move in time at an upgrade
    plain = make_schedule(Settings(), "s", "work", every=5)
    assert make_schedule(Settings(), "s", "work", every=5, priority=5).digest == plain.digest
    assert make_schedule(Settings(), "s", "work", every=5, priority=6).digest != plain.digest


def test_the_client_and_cli_take_a_priority_and_refuse_a_bad_one(
        fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(prefix="cli", redis=fake_sync)
    tid = client.enqueue("work", 1, priority=0)
    assert client.get(tid).priority == 0
    assert client.get(client.enqueue("work", 2)).priority == 5
    graph = client.enqueue_graph([TaskDef("work", 3, id="g1", priority=8)])
    assert client.get("g1").priority == 8 and graph
    before = snapshot(fake_sync)
    with pytest.raises(ValidationError, match="priority"):
        client.enqueue("work", 1, priority=10)
    with pytest.raises(ValidationError, match="priority"):
        client.enqueue_graph([TaskDef("work", 3, id="g2", priority=-1)])
    assert snapshot(fake_sync) == before


def test_a_start_again_after_a_lost_reply_keeps_its_task_when_a_better_one_arrived(
        env: Env) -> None:
    enqueue(env, ("t", None))          # its own entry: queued before any priority
    pairs = env.read("c1")
    first = env.start("c1", pairs)     # done by Redis, its reply lost
    enqueue(env, ("hi", 9))            # a better task arrives meanwhile
    again = env.start("c1", pairs)
    assert again == first and first[0][:2] == [b"t", 1]
    assert env.h("hi")["status"] == "QUEUED"       # still waiting for its placeholder
    assert [t for t, _, _ in take(env, "c2", 10)] == ["hi"]
    assert env.pending("c1") == [pairs[0][0]]      # t's entry stays pending: it can finish


def test_a_binding_of_a_task_cancelled_between_a_start_and_its_retry_is_dropped(
        env: Env) -> None:
    enqueue(env, ("d", None), ("hi", 9))
    pairs = env.read("c1", count=1)
    assert env.start("c1", pairs)[0][:2] == [b"hi", 1]   # hi runs on d's entry
    env.run("cancel", ["no longer", "", "hi"])
    assert env.start("c1", pairs)[0][1] == 0              # stale now: dropped
    assert not env.r.hlen(env.k.bound("role"))


def test_promote_puts_back_a_placeholder_that_went_missing(env: Env) -> None:
    enqueue(env, ("hi", 9))
    env.group()
    (entry, _), = env.read("old")      # an older worker took the placeholder...
    env.r.xack(env.k.stream("role"), "workers", entry)
    env.r.xdel(env.k.stream("role"), entry)  # ...and dead-lettered it
    assert drain(env) == []
    env.run("promote", [100])
    assert drain(env) == ["hi"]
