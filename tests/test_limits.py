"""Flow-control limits in the scripts, on fakeredis: a task over a rate waits for the turn
it reserved, one over a concurrency waits for a slot, no attempt spent; slots come back
on every way a task stops running, and bad limits are refused with nothing written."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from ceylon_redis import Client, Settings, TaskStatus, ValidationError
from ceylon_redis.codec import encode
from ceylon_redis.keys import Keys
from ceylon_redis.limits import make_limit, parse_rate
from ceylon_redis.protocol import enqueue_args, make_spec
from ceylon_redis.scripts import Scripts
from tests.test_scripts import Env, snapshot


@pytest.fixture
def env(fake_sync: fakeredis.FakeRedis, prefix: str) -> Env:
    return Env(fake_sync, Scripts.register(fake_sync), Keys(prefix), Settings(prefix=prefix))


def enqueue(env: Env, *tasks: tuple[str, str | None], **options: Any) -> None:
    specs = [make_spec(env.settings, "role", None, task_id=tid, limit_key=key, **options)
             for tid, key in tasks]
    assert env.run("enqueue", enqueue_args(specs))[0] == b"OK"


def set_limit(env: Env, per_key: bool = False, **limit: Any) -> int:
    return int(env.run("limit", ["set", "role", *make_limit(**limit).fields(per_key)]))


def take(env: Env, consumer: str = "c1", count: int = 100) -> list[tuple[str, str, int]]:
    """Read and start up to ``count`` entries in one call: (task id, entry, attempt) of
    each started; those held back by a limit are left out."""
    env.group()
    reply = env.run("start", ["role", consumer, ">", count])
    return [(item[0].decode(), entry.decode(), int(item[1]))
            for entry, item in zip(reply[0::2], reply[1::2]) if item[1]]


def complete(env: Env, started: tuple[str, str, int], consumer: str = "c1") -> None:
    tid, entry, attempt = started
    assert env.finish(consumer, (tid, entry, attempt, "COMPLETED", encode(1), "", "n")) == []


def held(env: Env) -> int:
    return int(env.r.hget(env.k.held, "role") or 0)


def test_a_rate_lets_one_start_per_turn_and_the_rest_wait_for_theirs(env: Env) -> None:
    set_limit(env, rate="10/s")
    enqueue(env, *[(f"t{i}", None) for i in range(5)])
    began = env.now_ms()
    first = take(env)
    assert [t for t, _, _ in first] == ["t0"]
    assert held(env) == 4
    dues = sorted(float(env.h(f"t{i}")["due_at"]) * 1000 - began for i in range(1, 5))
    for k, due in enumerate(dues, 1):  # one turn each, 100 ms apart: reserved, not raced
        assert 100 * k - 30 <= due <= 100 * k + 30
    for i in range(1, 5):
        h = env.h(f"t{i}")
        assert (h["status"], h.get("attempt", "0"), h["held"]) == ("SCHEDULED", "0", "r")
    time.sleep(0.45)
    env.run("promote", [100])
    rest = take(env)
    assert sorted(t for t, _, _ in rest) == ["t1", "t2", "t3", "t4"]  # their turns: no asking
    assert {a for _, _, a in rest} == {1} and held(env) == 0
    assert all("held" not in env.h(f"t{i}") for i in range(5))


def test_a_burst_lets_that_many_start_at_once(env: Env) -> None:
    set_limit(env, rate="1/min", burst=3)
    enqueue(env, *[(f"t{i}", None) for i in range(5)])
    assert len(take(env)) == 3 and held(env) == 2


def test_a_concurrency_limit_blocks_until_a_slot_frees(env: Env) -> None:
    set_limit(env, concurrency=2)
    enqueue(env, *[(f"t{i}", None) for i in range(5)])
    running = take(env)
    assert [t for t, _, _ in running] == ["t0", "t1"]
    assert env.r.lrange(env.k.base + "blocked:role", 0, -1) == [b"t2", b"t3", b"t4"]
    assert env.h("t2")["status"] == "QUEUED" and "entry" not in env.h("t2")
    assert held(env) == 3 and env.r.xlen(env.k.stream("role")) == 2  # the running ones
    complete(env, running[0])          # one slot frees: the oldest blocked goes back
    nxt = take(env)
    assert [t for t, _, _ in nxt] == ["t2"] and nxt[0][2] == 1
    assert env.r.smembers(env.k.running("role")) == {b"t1", b"t2"}
    assert held(env) == 2


def test_a_per_key_limit_holds_per_key_while_other_keys_run(env: Env) -> None:
    set_limit(env, per_key=True, concurrency=1)
    enqueue(env, ("a1", "a"), ("a2", "a"), ("b1", "b"), ("none", None))
    assert sorted(t for t, _, _ in take(env)) == ["a1", "b1", "none"]
    assert env.h("a2")["held"] == "role:a"
    assert env.r.smembers(env.k.running("role:a")) == {b"a1"}


def test_slots_come_back_on_retry_crash_and_cancel(env: Env) -> None:
    set_limit(env, concurrency=1)
    enqueue(env, ("t0", None), ("t1", None), ("t2", None), ("t3", None), max_attempts=3)
    (started,) = take(env)
    tid, entry, attempt = started
    env.finish("c1", (tid, entry, attempt, "FAILED", b"", "boom", "0"))   # retried at once
    assert env.r.smembers(env.k.running("role")) == set()
    (second,) = take(env)                         # t1 released by the retry, or t0 again
    assert env.run("requeue", ["c1", "worker c1 stopped", 604800, 0, "role"])[0] == 1
    assert env.r.smembers(env.k.running("role")) == set()   # a crash gives its slot back
    (third,) = take(env, "c2")
    env.run("cancel", ["no longer", "", third[0]])           # a cancel too
    assert env.r.smembers(env.k.running("role")) == set()
    assert second and third
    for tid in ("t0", "t1", "t2", "t3"):
        env.run("cancel", ["done", "", tid])
    assert held(env) == 0 and not env.r.exists(env.k.base + "blocked:role")


def test_cancelling_held_tasks_leaves_nothing_behind(env: Env) -> None:
    set_limit(env, rate="1/h")
    set_limit(env, per_key=True, concurrency=1)
    enqueue(env, ("run", "k"), ("rated", None), ("blocked", "k"))
    take(env)           # 'run' runs; 'rated' waits an hour for its turn, 'blocked' a slot
    assert env.h("rated")["status"] == "SCHEDULED" and held(env) == 2
    assert env.h("blocked")["held"] == "role:k"
    assert env.run("cancel", ["x", "", "rated", "blocked"])[1] == 2
    assert held(env) == 0 and not env.r.zcard(env.k.scheduled("role"))
    assert not env.r.exists(env.k.base + "blocked:role:k")


def test_changing_a_limit_lets_blocked_tasks_try_again(env: Env) -> None:
    set_limit(env, concurrency=1)
    enqueue(env, *[(f"t{i}", None) for i in range(4)])
    take(env)
    assert held(env) == 3
    assert set_limit(env, concurrency=10) == 3   # queued again
    assert len(take(env)) == 3 and held(env) == 0
    enqueue(env, ("late", None))
    assert int(env.run("limit", ["remove", "role", "rate", "period", "burst", "concurrency"])) \
        == 0
    assert not env.r.exists(env.k.limit("role")) and not env.r.smembers(env.k.limits)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rate": "100"}, "malformed rate"),
    ({"rate": "10/day"}, "malformed rate"),
    ({"rate": "0/s"}, "above zero"),
    ({"rate": "-5/s"}, "malformed rate"),
    ({"rate": "5/s", "burst": 0}, "burst must be"),
    ({"concurrency": 0}, "concurrency must be"),
    ({"concurrency": -3}, "concurrency must be"),
    ({"burst": 3}, "burst goes with a rate"),
    ({}, "give a rate"),
])
def test_bad_limits_are_refused_with_nothing_written(
        fake_sync: fakeredis.FakeRedis, kwargs: dict[str, Any], match: str) -> None:
    client = Client(prefix="lim", redis=fake_sync)
    with pytest.raises(ValidationError, match=match):
        client.set_limit("work", **kwargs)
    assert fake_sync.keys("*") == []


def test_rates_parse_per_second_minute_and_hour() -> None:
    assert parse_rate("100/s") == (100, 1000)
    assert parse_rate("5 / min") == (5, 60_000)
    assert parse_rate("2.5/h") == (2.5, 3_600_000)


def test_the_client_shows_a_limit_and_a_bad_limit_key_writes_nothing(
        fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(prefix="lim", redis=fake_sync)
    info = client.set_limit("work", rate="50/s", burst=5, concurrency=3)
    assert info.role_limit.text == "50/s burst 5, 3 at once" and info.per_key.text == "-"
    client.set_limit("work", rate="5/s", per_key=True)
    assert [i.per_key.text for i in client.limits()] == ["5/s"]
    before = snapshot(fake_sync)
    with pytest.raises(ValidationError, match="limit_key"):
        client.enqueue("work", 1, limit_key="has space")
    assert snapshot(fake_sync) == before
    tid = client.enqueue("work", 1, limit_key="customer-42")
    assert client.get(tid).limit_key == "customer-42"
    assert client.get(tid).status is TaskStatus.QUEUED
    assert client.remove_limit("work", per_key=True)
    assert client.limit("work").per_key.text == "-" and client.limit("work").role_limit.rate
    assert client.remove_limit("work") and client.limits() == []



def test_a_turn_reserved_under_a_rate_is_kept_through_a_wait_for_a_slot(env: Env) -> None:
    set_limit(env, rate="10/s", concurrency=2)
    enqueue(env, ("t0", None), ("t1", None), ("t2", None))
    (t0,) = take(env)                        # t1 and t2 reserve the next two turns
    assert env.h("t2")["held"] == "r" and "turn" in env.h("t2")
    tat = env.r.get(env.k.base + "bucket:role")
    time.sleep(0.25)
    env.run("promote", [100])
    assert [t for t, _, _ in take(env)] == ["t1"]   # t1 takes the second slot at its turn
    assert env.h("t2")["held"] == "role"     # t2 waits for a slot, its turn still held
    complete(env, t0)                        # a slot frees: t2 goes back and starts
    (t2,) = take(env)
    assert t2[0] == "t2" and t2[2] == 1
    assert env.r.get(env.k.base + "bucket:role") == tat   # it did not ask the rate again
    assert "turn" not in env.h("t2") and held(env) == 0



def test_a_cancel_that_left_slots_behind_gives_them_back_at_the_finish(env: Env) -> None:
    # a cancel by an older version leaves the running task's slots; its finish frees them
    set_limit(env, concurrency=1)
    enqueue(env, ("a", None), ("b", None))
    (a,) = take(env)
    env.r.hset(env.k.task("a"), "status", "CANCELLED")   # as that older cancel.lua left it
    complete(env, a)
    assert env.r.smembers(env.k.running("role")) == set()
    assert [t for t, _, _ in take(env)] == ["b"]


def test_purge_cancels_the_tasks_waiting_for_a_slot(fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(prefix="lim", redis=fake_sync)
    client.set_limit("work", concurrency=1)
    ids = client.enqueue_many("work", [1, 2, 3])
    scripts = Scripts.register(fake_sync)
    fake_sync.xgroup_create(client.keys.stream("work"), "workers", id="0")
    scripts.start(keys=[client.keys.base], args=["work", "c1", ">", 10])   # 1 runs, 2 wait
    assert client.purge("work") == 2
    assert [client.get(t).status for t in ids[1:]] == [TaskStatus.CANCELLED] * 2
    assert client.limit("work").held == 0


def test_changing_a_rate_resets_its_buckets_and_the_turns_reserved_under_it(env: Env) -> None:
    set_limit(env, rate="1/h")                  # a mistake: meant 1/s
    enqueue(env, *[(f"t{i}", None) for i in range(3)])
    take(env)
    assert float(env.h("t2")["due_at"]) * 1000 > env.now_ms() + 3_600_000
    set_limit(env, rate="1000/s", burst=10)     # corrected
    assert not env.r.exists(env.k.base + "bucket:role")
    assert all("turn" not in env.h(f"t{i}") for i in (1, 2))
    env.run("promote", [100])
    assert sorted(t for t, _, _ in take(env)) == ["t1", "t2"]   # at once, under the new rate
