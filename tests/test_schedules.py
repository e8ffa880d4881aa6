"""Periodic tasks: validation, ticks on a timezone's clock (DST included, on an injected
clock), the missed-tick policies, the schedule scripts, and exactly-once firing by many
coordinators, one of them killed with SIGKILL."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import time
import zoneinfo
from typing import Any

import fakeredis
import pytest
import redis

from ceylon_redis import (
    AsyncClient,
    Client,
    Coordinator,
    UnknownScheduleError,
    ValidationError,
    Worker,
    current_task,
)
from ceylon_redis.keys import Keys
from ceylon_redis.scheduler import fire_due_ticks
from ceylon_redis.schedules import (
    CATCH_UP_LIMIT,
    Timing,
    cron_next,
    due_ticks,
    make_schedule,
)
from ceylon_redis.scripts import Scripts
from ceylon_redis.settings import Settings
from tests.cli_support import assert_one_error_line, cli, invoke
from tests.conftest import Daemon, spawn_coordinator

NY = "America/New_York"
UTC = dt.timezone.utc


def _ms(*args: int, tz: str = NY) -> int:
    return int(dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(tz)).timestamp() * 1000)


def _wall(ms: int, tz: str = NY) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).astimezone(zoneinfo.ZoneInfo(tz)) \
        .strftime("%Y-%m-%d %H:%M %Z")


def _ticks(expr: str, start: int, n: int, tz: str = NY) -> list[str]:
    out, t = [], start
    for _ in range(n):
        t = cron_next(expr, tz, t)
        out.append(_wall(t, tz))
    return out


# --- validation: a clear error, nothing written --------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cron": "61 * * * *"}, "is not valid"),
    ({"cron": "* * * *"}, "has 4 fields"),
    ({"cron": "* * * * * * *"}, "has 7 fields"),
    ({"cron": "0 0 30 2 *"}, "never matches"),
    ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"cron": "0 3 * * *", "every": 60}, "not both"),
    ({}, "one of them"),
    ({"every": 0}, "every must be a number of seconds"),
    ({"every": -5}, "every must be a number of seconds"),
    ({"every": "10"}, "every must be a number of seconds"),
    ({"every": float("inf")}, "every must be a number of seconds"),
    ({"every": 1e12}, "every must be a number of seconds from 0.1 to 315,360,000"),
    ({"every": 10, "tz": "Europe/Paris"}, "tz= applies to cron schedules only"),
    ({"every": 10, "missed": "some"}, "missed must be 'skip' or 'all'"),
    ({"every": 10, "depends_on": ["x"]}, "not depends_on"),
    ({"every": 10, "max_attempts": 0}, "max_attempts must be an integer"),
])
def test_bad_schedules_are_refused_naming_the_problem(kwargs: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_schedule(Settings(), "nightly", "reports", **kwargs)


def test_bad_ids_and_roles_are_refused() -> None:
    with pytest.raises(ValidationError, match="invalid schedule id"):
        make_schedule(Settings(), "no spaces", "reports", every=1)
    with pytest.raises(ValidationError, match="invalid role"):
        make_schedule(Settings(), "nightly", "bad role!", every=1)


def test_bad_input_writes_nothing(fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(prefix="sched", redis=fake_sync)
    with pytest.raises(ValidationError):
        client.add_schedule("nightly", "reports", cron="0 25 * * *")
    with pytest.raises(ValidationError):
        client.add_schedule("nightly", "reports", {"x": object()}, every=5)
    assert fake_sync.keys("*") == []


# --- when ticks fall ------------------------------------------------------------------------

def test_cron_runs_on_the_wall_clock_of_its_timezone() -> None:
    winter = cron_next("0 9 * * *", "Europe/Paris", _ms(2026, 1, 10, 12, 0, tz="UTC"))
    summer = cron_next("0 9 * * *", "Europe/Paris", _ms(2026, 7, 10, 12, 0, tz="UTC"))
    assert dt.datetime.fromtimestamp(winter / 1000, UTC).hour == 8   # UTC+1
    assert dt.datetime.fromtimestamp(summer / 1000, UTC).hour == 7   # UTC+2
    assert cron_next("0 9 * * *", "UTC", _ms(2026, 1, 10, 12, 0, tz="UTC")) == \
        _ms(2026, 1, 11, 9, 0, tz="UTC")


def test_six_fields_put_seconds_first() -> None:
    start = _ms(2026, 1, 10, 12, 0, 0, tz="UTC")
    assert cron_next("15 0 13 * * *", "UTC", start) == _ms(2026, 1, 10, 13, 0, 15, tz="UTC")


def test_spring_forward_a_missing_time_fires_once_at_the_end_of_the_gap() -> None:
    # 2026-03-08, New York: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
    assert _ticks("30 2 * * *", _ms(2026, 3, 7, 12, 0), 3) == [
        "2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT", "2026-03-10 02:30 EDT"]
    assert _ticks("*/30 * * * *", _ms(2026, 3, 8, 1, 0), 4) == [
        "2026-03-08 01:30 EST", "2026-03-08 03:00 EDT", "2026-03-08 03:30 EDT",
        "2026-03-08 04:00 EDT"]


def test_fall_back_a_repeated_time_fires_once() -> None:
    # 2026-11-01, New York: 02:00 EDT goes back to 01:00 EST; 01:30 happens twice.
    assert _ticks("30 1 * * *", _ms(2026, 10, 31, 12, 0), 3) == [
        "2026-11-01 01:30 EDT", "2026-11-02 01:30 EST", "2026-11-03 01:30 EST"]
    assert _ticks("30 2 * * *", _ms(2026, 10, 31, 12, 0), 2) == [
        "2026-11-01 02:30 EST", "2026-11-02 02:30 EST"]
    hourly = _ticks("30 * * * *", _ms(2026, 11, 1, 0, 0), 3)
    assert hourly == ["2026-11-01 00:30 EDT", "2026-11-01 01:30 EDT", "2026-11-01 02:30 EST"]


def test_missed_ticks_skip_runs_the_latest_once() -> None:
    timing = Timing(every_ms=1000)
    assert due_ticks(timing, 10_000, 14_500) == ([14_000], 15_000, 4)
    assert due_ticks(timing, 10_000, 9_000) == ([], 10_000, 0)
    daily = Timing(cron="30 2 * * *", tz=NY)
    first = _ms(2026, 3, 9, 2, 30)
    ticks, next_ms, skipped = due_ticks(daily, first, _ms(2026, 3, 12, 8, 0))
    assert [_wall(t) for t in ticks] == ["2026-03-12 02:30 EDT"]
    assert (_wall(next_ms), skipped) == ("2026-03-13 02:30 EDT", 3)


def test_missed_ticks_all_catches_up_bounded() -> None:
    timing = Timing(every_ms=1000, missed="all")
    assert due_ticks(timing, 10_000, 13_000) == ([10_000, 11_000, 12_000, 13_000], 14_000, 0)
    ticks, next_ms, skipped = due_ticks(timing, 0, 1000 * (CATCH_UP_LIMIT + 49))
    assert len(ticks) == CATCH_UP_LIMIT and skipped == 50
    assert ticks[-1] == 1000 * (CATCH_UP_LIMIT + 49) and next_ms == ticks[-1] + 1000
    cron = Timing(cron="*/10 * * * * *", tz="UTC", missed="all")
    assert due_ticks(cron, 10_000, 45_000) == ([10_000, 20_000, 30_000, 40_000], 50_000, 0)


# --- the scripts, on fakeredis -------------------------------------------------------------

def test_upsert_keeps_an_unchanged_schedule_in_time(fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(prefix="sched", redis=fake_sync)
    first = client.add_schedule("beat", "work", {"n": 1}, every=60)
    time.sleep(0.01)
    again = client.add_schedule("beat", "work", {"n": 1}, every=60)
    assert again.next_run == first.next_run
    changed = client.add_schedule("beat", "work", {"n": 2}, every=60, name="beat 2")
    assert changed.next_run is not None and first.next_run is not None
    assert changed.next_run > first.next_run and changed.name == "beat 2"
    assert [s.id for s in client.schedules()] == ["beat"]
    assert fake_sync.hgetall("{sched}:schedule_roles") == {b"work": b"1"}
    client.add_schedule("beat", "other", every=60)
    assert fake_sync.hgetall("{sched}:schedule_roles") == {b"other": b"1"}


def test_pause_resume_remove(fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(prefix="sched", redis=fake_sync)
    client.add_schedule("beat", "work", every=60)
    client.pause_schedule("beat")
    paused = client.schedule("beat")
    assert paused.paused and paused.next_run is None
    client.add_schedule("beat", "work", every=30)  # an update keeps the pause
    assert client.schedule("beat").paused
    client.resume_schedule("beat")
    resumed = client.schedule("beat")
    assert not resumed.paused and resumed.next_run is not None
    assert client.remove_schedule("beat") is True
    assert client.remove_schedule("beat") is False
    with pytest.raises(UnknownScheduleError, match="no schedule beat"):
        client.schedule("beat")
    with pytest.raises(UnknownScheduleError):
        client.pause_schedule("beat")
    assert fake_sync.keys("*schedule*") == []


async def test_a_tick_is_claimed_once_however_many_fire_it(
        fake_async: fakeredis.FakeAsyncRedis) -> None:
    client = AsyncClient(prefix="sched", redis=fake_async)
    await client.add_schedule("beat", "work", {"n": 1}, every=0.1, max_attempts=2)
    await fake_async.zadd("{sched}:schedules", {"beat": 1000})  # long overdue
    scripts, keys = Scripts.register(fake_async), Keys("sched")
    due = await scripts.schedules_due(keys=[keys.base], args=[100])
    assert due[2] == b"beat"
    args = [1, "beat", due[3], due[4], 99_999_999_999_999, 0, 1, 1000]
    assert await scripts.tick(keys=[keys.base], args=args) == [1, 1]
    assert await scripts.tick(keys=[keys.base], args=args) == [0, 0]  # a second scheduler
    enqueued, _ = await fire_due_ticks(scripts, keys)
    assert enqueued == 0  # next tick far ahead
    task = await client.get("beat.1000")
    assert (task.status.value, task.role, task.name, task.data, task.max_attempts) == \
        ("QUEUED", "work", "beat", {"n": 1}, 2)
    info = await client.schedule("beat")
    assert (info.ticks, info.last_task_id) == (1, "beat.1000")
    assert info.last_run == dt.datetime.fromtimestamp(1, UTC)


async def test_a_changed_schedule_refuses_a_tick_read_before(
        fake_async: fakeredis.FakeAsyncRedis) -> None:
    client = AsyncClient(prefix="sched", redis=fake_async)
    await client.add_schedule("beat", "work", every=0.1)
    await fake_async.zadd("{sched}:schedules", {"beat": 1000})
    scripts, keys = Scripts.register(fake_async), Keys("sched")
    due = await scripts.schedules_due(keys=[keys.base], args=[100])
    await client.pause_schedule("beat")
    await client.resume_schedule("beat")
    await fake_async.zadd("{sched}:schedules", {"beat": 1000})
    assert await scripts.tick(keys=[keys.base],
                              args=[1, "beat", due[3], due[4], 5000, 0, 1, 1000]) == [0, 0]


# --- on real Redis --------------------------------------------------------------------------

def _ticks_enqueued(sync_redis: redis.Redis, prefix: str, role: str, sid: str) -> list[int]:
    entries = sync_redis.xrange(Keys(prefix).stream(role))
    return [int(f[b"id"].decode().rsplit(".", 1)[1]) for _, f in entries
            if f[b"id"].decode().startswith(sid + ".")]


@pytest.mark.slow
def test_three_schedulers_one_killed_enqueue_each_tick_exactly_once(
        redis_url: str, prefix: str, client: Client, sync_redis: redis.Redis,
        daemons: list[Daemon]) -> None:
    client.add_schedule("beat", "ticks", every=1)
    coordinators = [spawn_coordinator(daemons, redis_url, prefix) for _ in range(3)]
    time.sleep(8)
    coordinators[1].proc.kill()
    coordinators[1].proc.wait(10)
    time.sleep(12)
    for c in (coordinators[0], coordinators[2]):
        assert c.stop() == 0
    ticks = _ticks_enqueued(sync_redis, prefix, "ticks", "beat")
    assert len(ticks) >= 18, ticks
    assert len(set(ticks)) == len(ticks), "a tick was enqueued twice"
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks)), f"a tick is missing: {ticks}"
    info = client.schedule("beat")
    assert (info.ticks, info.skipped) == (len(ticks), 0)


@pytest.mark.parametrize(("missed", "expect_skipped"), [("skip", True), ("all", False)])
def test_a_restart_after_all_were_down_follows_the_missed_policy(
        redis_url: str, prefix: str, client: Client, sync_redis: redis.Redis,
        daemons: list[Daemon], missed: str, expect_skipped: bool) -> None:
    added = client.add_schedule("beat", "ticks", every=1, missed=missed)
    assert added.next_run is not None
    first_due = int(added.next_run.timestamp() * 1000)
    time.sleep(3.3)  # ticks first_due, +1 s, +2 s pass with no scheduler running
    coordinator = spawn_coordinator(daemons, redis_url, prefix)
    deadline = time.monotonic() + 10
    while client.schedule("beat").ticks == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    coordinator.stop()
    ticks = _ticks_enqueued(sync_redis, prefix, "ticks", "beat")
    info = client.schedule("beat")
    assert len(set(ticks)) == len(ticks) == info.ticks
    if expect_skipped:
        assert ticks[0] >= first_due + 2000 and info.skipped >= 2, (ticks, info)
    else:
        assert ticks[0] == first_due and info.skipped == 0, (ticks, info)
        assert all(b - a == 1000 for a, b in itertools.pairwise(ticks))


async def _tick_time(data: Any) -> float:
    at = current_task().scheduled_at
    assert at is not None
    return at.timestamp()


async def _always_fails(data: Any) -> None:
    raise RuntimeError("scheduled failure")


async def test_a_tick_runs_through_the_usual_path_and_knows_its_time(
        redis_url: str, prefix: str) -> None:
    client = AsyncClient(redis_url, prefix)
    workers = [Worker(_tick_time, role="tick_time", url=redis_url, prefix=prefix, grace=1),
               Worker(_always_fails, role="fails", url=redis_url, prefix=prefix, grace=1)]
    coordinator = Coordinator(url=redis_url, prefix=prefix)
    tasks = [asyncio.create_task(d.run()) for d in (*workers, coordinator)]
    try:
        await client.add_schedule("clock", "tick_time", every=0.5)
        await client.add_schedule("broken", "fails", every=0.5, max_attempts=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            clock, broken = await client.schedule("clock"), await client.schedule("broken")
            if clock.last_task_id and broken.last_task_id:
                break
            await asyncio.sleep(0.05)
        assert clock.last_task_id and broken.last_task_id
        result = await client.wait(clock.last_task_id, timeout=10)
        assert result.success
        assert result.output == int(clock.last_task_id.rsplit(".", 1)[1]) / 1000
        failed = await client.wait(broken.last_task_id, timeout=10)
        assert not failed.success and "scheduled failure" in (failed.error or "")
        dead = await client.dead_letter(broken.last_task_id)
        assert dead.role == "fails"
    finally:
        for w in workers:
            w.stop()
        coordinator.stop()
        await asyncio.gather(*tasks)
        await client.close()


# --- the command line -----------------------------------------------------------------------

def test_cli_adds_lists_pauses_resumes_and_removes(env: dict[str, str], client: Client,
                                                   restore_loguru: None) -> None:
    add = invoke(env, "schedule", "add", "nightly", "reports", '{"kind": "daily"}',
                 "--cron", "30 2 * * *", "--tz", "Europe/Paris", "--max-attempts", "3")
    assert add.exit_code == 0, add.output
    assert "nightly: cron 30 2 * * * Europe/Paris, next run" in add.output
    assert invoke(env, "schedule", "add", "beat", "pings", "--every", "30").exit_code == 0
    rows = json.loads(invoke(env, "schedule", "list", "--json").output)
    assert [(r["id"], r["role"], r["cron"], r["every"]) for r in rows] == [
        ("beat", "pings", None, 30.0), ("nightly", "reports", "30 2 * * *", None)]
    assert invoke(env, "schedule", "pause", "beat").exit_code == 0
    assert "paused" in invoke(env, "schedule", "list").output
    assert client.schedule("beat").paused
    assert invoke(env, "schedule", "resume", "beat").exit_code == 0
    assert not client.schedule("beat").paused
    assert invoke(env, "schedule", "remove", "beat").output == "removed beat\n"
    assert [s.id for s in client.schedules()] == ["nightly"]


@pytest.mark.parametrize(("args", "message"), [
    (["add", "x", "r", "--cron", "61 * * * *"], "error: cron expression '61 * * * *' is not "
                                                "valid"),
    (["add", "x", "r", "--cron", "0 3 * * *", "--tz", "Nowhere/City"],
     "error: unknown timezone 'Nowhere/City'"),
    (["add", "x", "r", "--every", "0"], "error: every must be a number of seconds"),
    (["add", "x", "bad role", "--every", "5"], "error: invalid role 'bad role'"),
    (["pause", "nope"], "error: no schedule nope"),
    (["remove", "nope"], "error: no schedule nope"),
])
def test_cli_bad_input_is_one_error_line_and_writes_nothing(
        env: dict[str, str], sync_redis: redis.Redis, prefix: str, args: list[str],
        message: str) -> None:
    run = cli(env, "schedule", *args)
    assert run.returncode == 1
    assert assert_one_error_line(run.stderr).startswith(message)
    assert sync_redis.keys("{" + prefix + "}:*") == []


def test_cli_needs_cron_or_every(env: dict[str, str], restore_loguru: None) -> None:
    run = invoke(env, "schedule", "add", "x", "r")
    assert run.exit_code == 2 and "give --cron EXPR or --every SECONDS" in run.output


def test_queues_and_stats_show_what_schedules_feed_each_role(
        env: dict[str, str], client: Client, restore_loguru: None) -> None:
    client.add_schedule("nightly", "reports", cron="30 2 * * *")
    client.add_schedule("hourly", "reports", cron="0 * * * *")
    client.add_schedule("beat", "pings", every=30)
    rows = {q.role: q.schedules for q in client.queues()}
    assert rows == {"pings": 1, "reports": 2}  # roles no task has reached yet
    assert client.stats().overall.schedules == 3
    queues = invoke(env, "queues").output
    assert re.search(r"^reports\s+0\s+0\s+0\s+0\s+0\s+0\s+0\s+-\s+2\s+0$", queues, re.M), queues
    assert "periodic schedules do not tick" in queues
    stats = invoke(env, "stats").output
    assert "periodic schedules feed: pings (1), reports (2)" in stats
    client.remove_schedule("beat")
    assert {q.role: q.schedules for q in client.queues()} == {"reports": 2}


def test_a_fast_cron_after_a_long_outage_costs_what_a_short_one_does() -> None:
    every_second = Timing(cron="* * * * * *", tz="UTC")
    began = time.perf_counter()
    ticks, next_ms, skipped = due_ticks(every_second, 0, 86_400_000)  # a day down
    assert time.perf_counter() - began < 2  # the walk from the start took ~7 s
    assert ticks == [86_400_000] and next_ms == 86_401_000
    assert 86_000 <= skipped <= 86_400
    catch_up = Timing(cron="* * * * * *", tz="UTC", missed="all")
    ticks, _, _ = due_ticks(catch_up, 0, 86_400_000)
    assert ticks == list(range(86_400_000 - 99_000, 86_400_001, 1000))


async def test_a_schedule_edited_by_hand_does_not_stop_the_ticks(
        fake_async: fakeredis.FakeAsyncRedis) -> None:
    client = AsyncClient(prefix="sched", redis=fake_async)
    await client.add_schedule("good", "work", every=0.1)
    await client.add_schedule("no-data", "work", every=0.1)
    await client.add_schedule("gone", "work", every=0.1)
    await fake_async.hdel("{sched}:schedule:no-data", "data", "ttl")
    await fake_async.delete("{sched}:schedule:gone")
    await fake_async.zadd("{sched}:schedules", {"good": 1000, "no-data": 1000, "gone": 1000})
    scripts, keys = Scripts.register(fake_async), Keys("sched")
    enqueued, _ = await fire_due_ticks(scripts, keys)
    assert enqueued == 2
    task_id = (await client.schedule("no-data")).last_task_id
    assert task_id and (await client.get(task_id)).status.value == "QUEUED"
    assert await fake_async.zscore("{sched}:schedules", "gone") is None
