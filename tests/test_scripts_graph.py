"""Failure policies, cancel, graphs and statistics at the script level, on fakeredis."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from ceylon_redis.coordinator import Coordinator, outcome_args
from ceylon_redis.keys import COORDINATOR_GROUP, Keys
from ceylon_redis.protocol import enqueue_args, make_spec, parse_graph, parse_started
from ceylon_redis.scripts import Scripts
from ceylon_redis.settings import Settings
from ceylon_redis.stats import bucket_bounds, percentiles, role_stats, stale_minute_fields
from tests.test_scripts import Env, snapshot


@pytest.fixture(name="env")
def env_fixture(fake_sync: fakeredis.FakeRedis, prefix: str) -> Env:
    return Env(fake_sync, Scripts.register(fake_sync), Keys(prefix), Settings(prefix=prefix))


def graph(env: Env, gid: str, *tasks: dict[str, Any], ttl: int = 500) -> list[Any]:
    specs = [make_spec(env.settings, t.get("role", "role"), t.get("data"), task_id=t["id"],
                       depends_on=t.get("depends_on", ()), on_failure=t.get("on_failure", "cancel"),
                       result_ttl=ttl) for t in tasks]
    return env.run("enqueue", enqueue_args(specs, gid, ttl))


def run_all(env: Env, outcome: dict[str, str] | None = None, consumer: str = "c1") -> set[str]:
    """Take and finish everything ready, repeatedly; FAILED for ids in ``outcome``."""
    ran: set[str] = set()
    while taken := env.take(consumer):
        for tid, (entry, attempt) in taken.items():
            status = (outcome or {}).get(tid, "COMPLETED")
            env.finish(consumer, (tid, entry, attempt, status, "", "it broke" if status ==
                                  "FAILED" else "", False))
            ran.add(tid)
    return ran


def ginfo(env: Env, gid: str) -> Any:
    return parse_graph(gid, env.r.hgetall(env.k.graph(gid)))


def test_policy_on_an_already_failed_prerequisite(env: Env) -> None:
    env.enqueue({"id": "p"})
    run_all(env, {"p": "FAILED"})
    before = snapshot(env.r)
    with pytest.raises(AssertionError):
        assert env.enqueue({"id": "x", "depends_on": ["p"]})[0] == b"OK"
    assert snapshot(env.r) == before
    specs = [make_spec(env.settings, "role", None, task_id="r", depends_on=["p"],
                       on_failure="run"),
             make_spec(env.settings, "role", None, task_id="i", depends_on=["p"],
                       on_failure="ignore")]
    assert env.run("enqueue", enqueue_args(specs))[:3] == [b"OK", 2, 0]
    assert env.h("r")["failed_deps"] == "p" and "failed_deps" not in env.h("i")
    items = {it[0]: parse_started(it) for it in env.start("c1", env.read("c1"))}
    assert items[b"r"].failed == {"p": "it broke"} and items[b"r"].outputs == {}
    assert items[b"i"].failed == {} and items[b"i"].outputs == {}


def test_waiting_set_follows_the_task(env: Env) -> None:
    env.enqueue({"id": "a"}, {"id": "b", "depends_on": ["a"]}, {"id": "c", "depends_on": ["a"]})
    assert env.r.smembers(env.k.waiting("role")) == {b"b", b"c"}
    assert env.run("cancel", ["stop", "", "c"])[:2] == [b"OK", 1]
    assert env.r.smembers(env.k.waiting("role")) == {b"b"}
    run_all(env)
    assert env.r.scard(env.k.waiting("role")) == 0
    assert env.h("b")["status"] == "COMPLETED" and env.h("c")["status"] == "CANCELLED"


def test_cancel_each_state(env: Env) -> None:
    env.enqueue({"id": "run"}, {"id": "queued"}, {"id": "waits", "depends_on": ["run"]},
                {"id": "after", "depends_on": ["waits"]})
    (pair, *_) = env.read("c1", count=1)
    (item,) = env.start("c1", [pair])
    assert item[0] == b"run"
    reply = env.run("cancel", ["operator said so", "", "run", "queued", "done?", "waits"])
    assert reply[1] == 4  # run, queued, waits, and after through the cascade
    before = dict(zip(reply[2][::2], reply[2][1::2]))
    assert before == {b"run": b"RUNNING", b"queued": b"QUEUED", b"done?": None,
                      b"waits": b"WAITING"}
    for tid in ("run", "queued", "waits"):  # each named task gets the reason given
        assert env.h(tid)["status"] == "CANCELLED" and env.h(tid)["error"] == \
            "operator said so"
    assert env.h("after")["error"] == "dependency waits cancelled: operator said so"
    assert [tid for _, f in env.entries() for tid in [f[b"id"]]] == [b"run"]  # queued's gone
    # The running attempt's outcome is dropped quietly: acked, not fenced, not recorded.
    assert env.finish("c1", ("run", pair[0], 1, "COMPLETED", "out", "", False)) == []
    assert env.fenced() == 0 and env.pending("c1") == []
    assert env.h("run")["status"] == "CANCELLED" and "output" not in env.h("run")
    assert env.run("cancel", ["again", "", "run"])[1] == 0


def test_graph_keys_expire_together_when_its_last_task_ends(env: Env) -> None:
    assert graph(env, "g", {"id": "a"}, {"id": "b", "depends_on": ["a"]}, ttl=77)[0] == b"OK"
    (tid, (entry, attempt)), = env.take("c1").items()
    env.finish("c1", (tid, entry, attempt, "COMPLETED", "", "", False))
    assert env.r.ttl(env.k.task("a")) == -1  # done, but its graph is not
    assert ginfo(env, "g").status == "running" and ginfo(env, "g").done == 1
    run_all(env)
    for key in (env.k.task("a"), env.k.task("b"), env.k.graph("g"), env.k.graph_tasks("g")):
        assert 0 < env.r.ttl(key) <= 77, key
    info = ginfo(env, "g")
    assert (info.status, info.completed, info.total) == ("completed", 2, 2)
    assert graph(env, "g", {"id": "other"})[:2] == [b"ERR", b"EXISTS"]


def test_graph_retry_reruns_the_failed_subtree_only(env: Env) -> None:
    env.enqueue({"id": "outside"})
    graph(env, "g", {"id": "in1"}, {"id": "in2", "depends_on": ["in1"]},
          {"id": "soft", "depends_on": ["in1"], "on_failure": "run"},
          {"id": "after_soft", "depends_on": ["soft"]},
          {"id": "ignorer", "depends_on": ["in1"], "on_failure": "ignore"},
          {"id": "blocked", "depends_on": ["outside"]},
          {"id": "below", "depends_on": ["blocked"]})
    run_all(env, {"in1": "FAILED", "outside": "FAILED"})
    assert env.h("soft")["failed_deps"] == "in1"
    info = ginfo(env, "g")
    assert (info.status, info.completed, info.failed, info.cancelled) == ("failed", 3, 1, 3)
    # in1 and in2 (its cancelled dependent); soft and after_soft ran on in1's failure, so
    # they run again; ignorer did not use in1; blocked and below would be cancelled again.
    assert env.run("graph_retry", ["g"]) == [b"OK", 4, []]
    assert env.h("in1")["status"] == "QUEUED" and env.h("in1")["attempt"] == "0"
    assert env.h("in2")["status"] == "WAITING" and env.r.hgetall(env.k.deps("in2")) == {
        b"in1": b"c"}
    assert env.h("soft")["status"] == "WAITING" and "failed_deps" not in env.h("soft")
    assert env.h("after_soft")["status"] == "WAITING"
    assert env.h("blocked")["status"] == "CANCELLED" and env.h("ignorer")["status"] == \
        "COMPLETED"
    assert env.r.ttl(env.k.task("ignorer")) == -1
    assert run_all(env) == {"in1", "in2", "soft", "after_soft"}
    info = ginfo(env, "g")
    assert (info.completed, info.failed, info.cancelled) == (5, 0, 2)
    assert env.run("graph_retry", ["nope"])[:2] == [b"ERR", b"UNKNOWN"]


def test_graph_cancel_marks_the_graph(env: Env) -> None:
    graph(env, "g", {"id": "a"}, {"id": "b", "depends_on": ["a"]})
    assert env.run("cancel", ["graph g cancelled", "g"])[1] == 2
    info = ginfo(env, "g")
    assert (info.status, info.cancelled, info.done) == ("cancelled", 2, 2)
    assert env.h("a")["error"] == env.h("b")["error"] == "graph g cancelled"
    assert env.run("graph_retry", ["g"]) == [b"OK", 2, []]
    assert ginfo(env, "g").status == "running"


def events_group(env: Env) -> None:
    env.r.xgroup_create(env.k.events, COORDINATOR_GROUP, id="0", mkstream=True)


def read_events(env: Env, consumer: str) -> list[Any]:
    reply = env.r.xreadgroup(COORDINATOR_GROUP, consumer, {env.k.events: ">"}, count=1000)
    return reply[0][1] if reply else []


def apply(env: Env, entries: list[Any], keep: int = 10_000) -> int:
    args: list[Any] = [COORDINATOR_GROUP, keep, 86400]
    for eid, f in entries:
        args += outcome_args(eid, f)
    return int(env.run("stats", args))


def test_no_events_are_stored_until_a_coordinator_exists(env: Env) -> None:
    env.enqueue({"id": "a"})
    run_all(env)
    assert not env.r.exists(env.k.events)
    events_group(env)
    env.enqueue({"id": "b", "max_attempts": 3})
    (tid, (entry, attempt)), = env.take("c1").items()
    env.finish("c1", (tid, entry, attempt, "FAILED", "", "retry me", True))
    run_all(env)
    ((_, f),) = env.r.xrange(env.k.events)
    assert (f[b"t"], f[b"r"], f[b"s"], f[b"a"]) == (b"b", b"role", b"COMPLETED", b"2")
    assert f[b"w"].isdigit() and f[b"x"].isdigit()


def test_an_event_is_counted_once_however_often_it_is_applied(env: Env) -> None:
    events_group(env)
    env.enqueue({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["b"]})
    run_all(env, {"b": "FAILED"})
    entries = read_events(env, "co1")
    # a finish call's outcomes share an entry: b's failure and c's cancel, which it made
    assert [f[b"t"] for _, f in entries] == [b"a", b"b c"]
    assert apply(env, entries) == 3
    assert apply(env, entries) == 0  # a second coordinator with the same batch
    stats = {k.decode(): int(v) for k, v in env.r.hgetall(env.k.stats("role")).items()}
    assert (stats["completed"], stats["failed"], stats["cancelled"]) == (1, 1, 1)
    assert sum(v for k, v in stats.items() if k[0] == "r" and k[1:].isdigit()) == 2
    assert sum(v for k, v in stats.items() if k[0] == "m") == 3
    assert env.r.xlen(env.k.events) == 0  # applied events are deleted


def test_a_batch_with_a_hand_edited_retry_budget_still_settles_every_dependent(
        env: Env) -> None:
    # finish settles a batch's dependents and stream entries at the end of the call: a
    # task whose max_attempts, crashes and backoff were edited into words must not make
    # the call fail half-way (the defaults stand in)
    env.enqueue({"id": "a"}, {"id": "bad"}, {"id": "c", "depends_on": ["a"]})
    taken = env.take("c1")
    env.r.hset(env.k.task("bad"), mapping={"max_attempts": "many", "crashes": "x",
                                           "backoff": "soon"})
    assert env.finish("c1", ("a", *taken["a"], "COMPLETED", "", "", "n"),
                      ("bad", *taken["bad"], "FAILED", "", "it broke", True)) == []
    assert env.h("c")["status"] == "QUEUED" and env.h("a")["status"] == "COMPLETED"
    assert env.h("bad")["status"] == "FAILED" and env.dead == ["bad"]  # default: 1 attempt
    assert [f[b"id"] for _, f in env.entries()] == [b"c"]


async def test_a_coordinator_applies_a_read_in_calls_of_bounded_size(
        env: Env, fake_async: fakeredis.FakeAsyncRedis, prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ceylon_redis.coordinator as coordinator_module
    monkeypatch.setattr(coordinator_module, "_OUTCOMES_PER_CALL", 60)
    events_group(env)
    for e in range(7):  # 7 entries of 50 outcomes: calls of 2 entries, then of 1
        ids = " ".join(f"t{e}-{i}" for i in range(50))
        env.r.xadd(env.k.events, {"t": ids, "r": "role", "s": " ".join(["COMPLETED"] * 50),
                                  "a": " ".join(["1"] * 50), "w": " ".join(["2"] * 50),
                                  "x": " ".join(["3"] * 50), "f": "60"})
    co = Coordinator(settings=Settings(prefix=prefix), redis_client=fake_async)
    entries = read_events(env, "co")
    assert await co._apply((env.k, env.k.events), entries) == 350
    assert await co._apply((env.k, env.k.events), entries) == 0  # counted once
    stats = env.r.hgetall(env.k.stats("role"))
    assert (int(stats[b"completed"]), int(stats[b"run_sum"])) == (350, 1050)
    assert env.r.xlen(env.k.events) == 0


async def test_a_live_coordinator_claims_a_dead_ones_events(
        env: Env, fake_async: fakeredis.FakeAsyncRedis, prefix: str) -> None:
    events_group(env)
    env.enqueue({"id": "a"}, {"id": "b"})
    run_all(env)
    assert len(read_events(env, "dead-one")) == 2  # read, never applied: it died
    env.r.zadd(env.k.coordinators, {"dead-one": 0})
    co = Coordinator(settings=Settings(prefix=prefix, worker_timeout=0.002,
                                       heartbeat_interval=0.001), redis_client=fake_async)
    await asyncio.sleep(0.01)
    await co._claim_orphans()
    assert co.claimed == 2 and co.applied == 2
    assert int(env.r.hget(env.k.stats("role"), "completed") or 0) == 2
    assert not env.r.zscore(env.k.coordinators, "dead-one")
    consumers = [c["name"] for c in env.r.xinfo_consumers(env.k.events, COORDINATOR_GROUP)]
    assert b"dead-one" not in consumers and "dead-one" not in consumers
    await co._claim_orphans()
    assert co.applied == 2


def test_percentiles_from_buckets() -> None:
    assert bucket_bounds(0) == (0.0, 1.0)
    lo, hi = bucket_bounds(31)
    assert lo == pytest.approx(1000) and hi == pytest.approx(1000 * 10 ** 0.1)
    assert percentiles({}, 0).p50 is None
    # 90 samples near 10 ms (bucket 11: [10, 12.6) ms), 10 near 1 s (bucket 31)
    p = percentiles({11: 90, 31: 10}, 90 * 11 + 10 * 1100)
    assert p.count == 100 and 0.010 <= p.p50 < 0.0126  # type: ignore[operator]
    assert 1.0 <= p.p95 < 1.26 and 1.0 <= p.p99 < 1.26  # type: ignore[operator]
    assert p.mean == pytest.approx((90 * 11 + 10 * 1100) / 100 / 1000)


def test_stats_buckets_agree_with_the_python_bounds(env: Env) -> None:
    events_group(env)
    for i, ms in enumerate([0, 1, 5, 999, 1001, 3_600_000, 10**9]):
        env.r.xadd(env.k.events, {"t": f"t{i}", "r": "role", "s": "COMPLETED", "a": "1",
                                  "w": str(ms), "x": str(ms), "f": "60"})
    apply(env, read_events(env, "co"))
    raw = {k.decode(): int(v) for k, v in env.r.hgetall(env.k.stats("role")).items()}
    buckets = sorted(int(k[1:]) for k, v in raw.items() if k[0] == "w" and k[1:].isdigit()
                     for _ in range(v))
    for b, ms in zip(buckets, [0, 1, 5, 999, 1001, 3_600_000, 10**9]):
        lo, hi = bucket_bounds(b)
        assert lo <= ms and (ms < hi or b == 71), (ms, b)
    assert raw["m1"] == 7


def test_stats_keep_each_minutes_buckets_for_the_latency_chart(env: Env) -> None:
    events_group(env)
    rows = [("a", 60, 5, 20), ("a", 61, 5, 20), ("a", 61, 5, 900), ("b", 61, 1, 2)]
    for i, (role, minute_s, wait_ms, run_ms) in enumerate(rows):
        env.r.xadd(env.k.events, {"t": f"t{i}", "r": role, "s": "COMPLETED", "a": "1",
                                  "w": str(wait_ms), "x": str(run_ms),
                                  "f": str(minute_s * 60 + 1)})
    apply(env, read_events(env, "co"))
    raw = {k.decode(): int(v) for k, v in env.r.hgetall(env.k.stats("a")).items()}
    # summed per batch: one field per distinct (minute, bucket), the totals as before
    assert raw["completed"] == 3 and raw["m60"] == 1 and raw["m61"] == 2
    assert raw["run_sum"] == 940 and raw["wait_sum"] == 15
    assert raw["M61w7"] == 2 and raw["M60r14"] == 1 and raw["M61r14"] == 1
    stats = role_stats("a", [env.r.hgetall(env.k.stats("a"))], 61)
    assert stats.run_by_minute[-1].count == 2 and stats.run_by_minute[-2].count == 1
    assert 0.5 < stats.run_by_minute[-1].p99 < 1.0  # type: ignore[operator]
    assert all(p.count == 0 for p in stats.run_by_minute[:-2])
    assert set(stale_minute_fields(list(raw), 121)) == {"m60", "M60w7", "M60r14"}
    assert "b" not in raw and env.r.hget(env.k.stats("b"), "M61r4") == b"1"


def test_stats_list_each_roles_latest_finished_tasks_capped(env: Env) -> None:
    events_group(env)
    statuses = ["COMPLETED", "FAILED", "CANCELLED", "COMPLETED", "COMPLETED"]
    for i, status in enumerate(statuses):
        env.r.xadd(env.k.events, {"t": f"t{i}", "r": "a", "s": status, "a": "1", "w": "",
                                  "x": "", "f": "60"})
    apply(env, read_events(env, "co"), keep=4)
    assert env.r.lrange(env.k.recent("a"), 0, -1) == [b"C 60 t4", b"C 60 t3", b"X 60 t2",
                                                      b"F 60 t1"]
    env.r.xadd(env.k.events, {"t": "t9", "r": "a", "s": "FAILED", "a": "2", "w": "",
                              "x": "", "f": "61.5"})
    apply(env, read_events(env, "co"), keep=4)
    assert env.r.lrange(env.k.recent("a"), 0, -1) == [b"F 61 t9", b"C 60 t4", b"C 60 t3",
                                                      b"X 60 t2"]
    # failures are kept further back: completed tasks do not push them out
    assert env.r.lrange(env.k.failures("a"), 0, -1) == [b"F 61 t9", b"X 60 t2", b"F 60 t1"]
    assert 86000 < env.r.ttl(env.k.recent("a")) <= 86400  # it goes with the results it names
    env.r.xadd(env.k.events, {"t": "t10", "r": "b", "s": "FAILED", "a": "1", "w": "",
                              "x": "", "f": "61"})
    env.r.xadd(env.k.events, {"t": "t11", "r": "a", "s": "FAILED", "a": "1", "w": "",
                              "x": "", "f": "61"})
    apply(env, read_events(env, "co"), keep=0)
    assert not env.r.exists(env.k.recent("b")) and not env.r.exists(env.k.recent("a"))
    assert not env.r.exists(env.k.failures("a"))


def test_stats_drop_absurd_numbers_and_count_the_rest_of_the_batch(env: Env) -> None:
    events_group(env)
    for i, (w, x, f) in enumerate([("nan", "5", "60"), ("inf", "1e300", "x"), ("3", "4", "61")]):
        env.r.xadd(env.k.events, {"t": f"t{i}", "r": "a", "s": "COMPLETED", "a": "1",
                                  "w": w, "x": x, "f": f})
    assert apply(env, read_events(env, "co")) == 3
    raw = {k.decode(): int(v) for k, v in env.r.hgetall(env.k.stats("a")).items()}
    assert raw["completed"] == 3 and raw["wait_sum"] == 3 and raw["run_sum"] == 9
    assert env.r.xlen(env.k.events) == 0


def test_an_events_entry_gives_each_of_its_outcomes_and_an_old_single_one_reads_alike(
        ) -> None:
    packed = {b"t": b"a b", b"r": b"role", b"s": b"COMPLETED CANCELLED", b"a": b"1 0",
              b"w": b"3 -", b"x": b"7 -", b"f": b"60.5"}
    assert outcome_args(b"1-0", packed) == [
        b"1-0", b"role", b"COMPLETED", b"1", b"3", b"7", b"60.5", b"a",
        b"1-0", b"role", b"CANCELLED", b"0", b"-", b"-", b"60.5", b"b"]
    single = {b"t": b"a", b"r": b"role", b"s": b"CANCELLED", b"a": b"0", b"w": b"",
              b"x": b"", b"f": b"60"}
    assert outcome_args(b"2-0", single) == [b"2-0", b"role", b"CANCELLED", b"0", b"", b"",
                                            b"60", b"a"]
    assert outcome_args(b"3-0", None) == [b"3-0", "", "", "", "", "", "0", ""]


def test_outcomes_that_never_ran_count_no_wait_or_run_time(env: Env) -> None:
    events_group(env)
    env.r.xadd(env.k.events, {"t": "a b", "r": "role", "s": "COMPLETED CANCELLED",
                              "a": "1 0", "w": "3 -", "x": "7 -", "f": "60"})
    assert apply(env, read_events(env, "co")) == 2
    raw = {k.decode(): int(v) for k, v in env.r.hgetall(env.k.stats("role")).items()}
    assert (raw["completed"], raw["cancelled"], raw["wait_sum"], raw["run_sum"]) == (1, 1, 3, 7)
    assert sum(v for k, v in raw.items() if k[0] == "w" and k[1:].isdigit()) == 1
