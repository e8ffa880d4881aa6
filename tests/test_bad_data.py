"""Garbage in Redis (stream entries added by hand, task hashes edited into nonsense) never
crashes a worker or the readers, and is dead-lettered with a reason; property-based."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceylon_redis import (
    AsyncClient,
    Client,
    EncodeError,
    Settings,
    TaskStatus,
    UnknownTaskError,
    ValidationError,
    Worker,
)
from ceylon_redis.codec import Undecodable, decode, encode
from ceylon_redis.keys import GROUP, Keys
from ceylon_redis.protocol import (
    enqueue_args,
    make_spec,
    parse_dead_letter,
    parse_started,
    parse_task,
)
from ceylon_redis.scripts import Scripts
from tests.test_scripts import Env

KEYS = Keys("prop")
field_bytes = st.binary(max_size=40)
entries = st.lists(st.dictionaries(field_bytes.filter(bool), field_bytes, min_size=1,
                                   max_size=4), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries)
def test_any_stream_entry_is_started_or_dead_lettered_never_an_error(
        raw_entries: list[dict[bytes, bytes]]) -> None:
    r = fakeredis.FakeRedis()
    scripts = Scripts.register(r)
    stream = KEYS.stream("role")
    r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for fields in raw_entries:
        r.xadd(stream, fields)  # type: ignore[arg-type]
    (_, delivered), = r.xreadgroup(GROUP, "c1", {stream: ">"})
    args: list[Any] = ["role", "c1"]
    for entry_id, fields in delivered:
        args += [entry_id, fields.get(b"id", b"")]
    items = scripts.start(keys=[KEYS.base], args=args)
    assert len(items) == len(raw_entries)
    for item in items:
        started = parse_started(item)
        assert started.attempt == 0 and started.reason          # nothing here is a real task
    assert r.xlen(stream) == 0 and r.xpending(stream, GROUP)["pending"] == 0
    dead = r.xrange(KEYS.dead)
    assert len(dead) == len(raw_entries)
    for entry_id, fields in dead:
        letter = parse_dead_letter(entry_id, fields)
        assert letter.reason.startswith(("malformed entry", "entry names unknown task"))


@given(st.dictionaries(field_bytes, field_bytes, max_size=8))
def test_any_dead_letter_entry_parses(fields: dict[bytes, bytes]) -> None:
    letter = parse_dead_letter(b"1-0", fields)
    assert letter.id == "1-0" and letter.attempts >= 0


@given(st.dictionaries(st.sampled_from([b"status", b"attempt", b"max_attempts", b"timeout",
                                        b"enqueued_at", b"due_at", b"role", b"name"]),
                       field_bytes, min_size=1))
def test_a_task_hash_of_nonsense_reads_as_a_validation_error_or_a_task(
        fields: dict[bytes, bytes]) -> None:
    try:
        info = parse_task("t", fields)
    except ValidationError as exc:
        assert "task t has an invalid" in str(exc)
    else:
        assert isinstance(info.status, TaskStatus)


async def test_a_worker_fails_a_task_whose_hash_was_edited_into_nonsense_and_carries_on(
        fake_async: fakeredis.FakeAsyncRedis) -> None:
    settings_ = Settings(prefix="corrupt", block_ms=50)
    client = AsyncClient(redis=fake_async, settings=settings_)
    bad = await client.enqueue("role", 1)
    child = await client.enqueue("role", 2, depends_on=[bad])
    await fake_async.hset(client.keys.task(bad), "attempt", "lots")

    async def echo(data: Any) -> Any:
        return data

    worker = Worker(echo, role="role", redis_client=fake_async, settings=settings_)
    running = asyncio.create_task(worker.run())
    try:
        result = await client.wait(bad, timeout=5)
        assert result.status is TaskStatus.FAILED
        assert result.error == "task hash is corrupt: attempt is not a number"
        assert (await client.wait(child, timeout=5)).status is TaskStatus.CANCELLED
        assert (await client.wait(await client.enqueue("role", 3), timeout=5)).output == 3
        (letter,) = await client.dead_letters()
        assert letter.task_id == bad
        with pytest.raises(ValidationError, match="invalid attempt 'lots'"):
            await client.get(bad)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 5)
        await client.close()


# --- task hashes edited by hand (issue 27, item 5): each ends visibly, with the field named ---


@pytest.fixture
def senv(fake_sync: fakeredis.FakeRedis, prefix: str) -> Env:
    """The scripts on a fake Redis, with test_scripts' helpers."""
    return Env(fake_sync, Scripts.register(fake_sync), Keys(prefix), Settings(prefix=prefix))


def _dead_reasons(env: Env) -> dict[str, str]:
    return {f[b"task"].decode(): f[b"reason"].decode() for _, f in env.r.xrange(env.k.dead)}


NONSENSE = "task hash is corrupt: its status field holds 'NONSENSE', not a status"


def test_start_fails_a_queued_task_whose_status_is_nonsense(senv: Env) -> None:
    senv.enqueue({"id": "bad"}, {"id": "child", "depends_on": ["bad"]}, {"id": "ok"})
    senv.r.hset(senv.k.task("bad"), "status", "NONSENSE")
    taken = senv.take("c1")
    assert list(taken) == ["bad", "ok"] and taken["bad"][1] == 0  # skipped, not run
    bad = senv.h("bad")
    assert (bad["status"], bad["error"]) == ("FAILED", NONSENSE)
    assert senv.r.ttl(senv.k.task("bad")) > 0                     # it expires, as any result
    assert _dead_reasons(senv) == {"bad": NONSENSE}
    assert senv.h("child")["status"] == "CANCELLED"
    assert senv.entries() == [(taken["ok"][0], {b"id": b"ok"})]   # only the good one left


def test_finish_fails_a_running_task_whose_status_was_set_back_to_queued(senv: Env) -> None:
    senv.enqueue({"id": "t", "max_attempts": 3}, {"id": "child", "depends_on": ["t"]})
    entry, attempt = senv.take("c1")["t"]
    senv.r.hset(senv.k.task("t"), "status", "QUEUED")             # by hand, while it runs
    assert senv.finish("c1", ("t", entry, attempt, "COMPLETED", encode("out"), "", False)) == []
    why = "task hash is corrupt: its status field was changed to 'QUEUED' while attempt 1 ran on c1"
    assert senv.dead == ["t"]
    h = senv.h("t")
    assert (h["status"], h["error"], "entry" in h) == ("FAILED", why, False)
    assert decode(h["output"]) == "out"                          # what the attempt made, kept
    assert _dead_reasons(senv) == {"t": why}
    assert senv.h("child")["status"] == "CANCELLED"
    assert senv.entries() == [] and senv.pending("c1") == []
    assert senv.fenced() == 0


def test_finish_still_fences_an_attempt_that_lost_its_task(senv: Env) -> None:
    """The new branch takes only this attempt's own entry: a reclaimed task stays fenced."""
    senv.enqueue({"id": "t", "max_attempts": 3})
    entry, attempt = senv.take("c1")["t"]
    senv.run("requeue", ["c1", "worker c1 stopped", 604800, 0, "role"])  # reclaimed: new entry
    assert senv.finish("c1", ("t", entry, attempt, "COMPLETED", encode(1), "", False)) == ["t"]
    assert senv.h("t")["status"] == "QUEUED" and senv.dead == []


def test_giving_back_fails_a_task_whose_status_was_edited_while_it_ran(senv: Env) -> None:
    senv.enqueue({"id": "t"})
    senv.take("c1")
    senv.r.hset(senv.k.task("t"), "status", "NONSENSE")
    assert senv.run("requeue", ["c1", "worker c1 stopped", 604800, 0, "role"]) == [0, 1]
    h = senv.h("t")
    assert h["status"] == "FAILED"
    assert h["error"] == ("task hash is corrupt: its status field was changed to 'NONSENSE' "
                          "while attempt 1 was pending (worker c1 stopped)")
    assert list(_dead_reasons(senv)) == ["t"]
    assert senv.entries() == []


def test_promote_fails_a_scheduled_task_whose_status_is_nonsense(senv: Env) -> None:
    senv.run("enqueue", enqueue_args([make_spec(senv.settings, "role", 1, task_id="later",
                                                delay=0.001)]))
    senv.r.hset(senv.k.task("later"), "status", "NONSENSE")
    time.sleep(0.01)
    assert senv.run("promote", [100])[0] == 0
    assert (senv.h("later")["status"], senv.h("later")["error"]) == ("FAILED", NONSENSE)
    assert senv.r.zcard(senv.k.scheduled("role")) == 0
    assert list(_dead_reasons(senv)) == ["later"]


def test_a_waiting_task_whose_status_is_nonsense_fails_when_its_prerequisite_ends(
        senv: Env) -> None:
    senv.enqueue({"id": "p"}, {"id": "w", "depends_on": ["p"]})
    senv.r.hset(senv.k.task("w"), "status", "NONSENSE")
    entry, attempt = senv.take("c1")["p"]
    senv.finish("c1", ("p", entry, attempt, "COMPLETED", encode(1), "", False))
    w = senv.h("w")
    assert (w["status"], w["error"]) == ("FAILED", NONSENSE)
    assert senv.r.scard(senv.k.waiting("role")) == 0             # not counted as waiting


@pytest.mark.parametrize("running", [False, True], ids=["queued", "running"])
def test_cancel_ends_a_task_whose_status_is_nonsense(senv: Env, running: bool) -> None:
    senv.enqueue({"id": "t"})
    if running:
        senv.take("c1")
    senv.r.hset(senv.k.task("t"), "status", "NONSENSE")
    pubsub = senv.r.pubsub()
    pubsub.subscribe(senv.k.base + "control")
    reply = senv.run("cancel", ["by hand", "", "t"])
    assert reply[1] == 1 and reply[2] == [b"t", b"NONSENSE"]
    assert (senv.h("t")["status"], senv.h("t")["error"]) == ("CANCELLED", "by hand")
    assert senv.entries() == []                                   # it will not start either
    messages = [m["data"] for m in iter(lambda: pubsub.get_message(timeout=0.1), None)
                if m["type"] == "message"]
    assert messages == ([b"cancel c1 t"] if running else [])


def test_a_crash_budget_field_set_by_hand_is_not_read(senv: Env) -> None:
    """requeue.lua read a `max_crashes` field nothing writes: the budget is 3, as documented."""
    senv.enqueue({"id": "t"})
    senv.r.hset(senv.k.task("t"), "max_crashes", "0")
    senv.take("c1")
    assert senv.run("requeue", ["c1", "worker c1 died", 604800, 0, "role"]) == [1, 0]
    assert senv.h("t")["status"] == "QUEUED" and senv.h("t")["crashes"] == "1"


def test_reading_a_task_never_fails_on_its_stored_data_or_output(
        fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(redis=fake_sync, settings=Settings(prefix="rd"))
    tid = client.enqueue("role", {"n": 1})
    key = client.keys.task(tid)
    fake_sync.hset(key, "data", encode({"n": 1}) + b"\x01")              # extra data
    info = client.get(tid)
    assert isinstance(info.data, Undecodable) and info.data.field == "data"
    assert str(info.data) == "undecodable data (ExtraData: unpack(b) received extra data.)"
    fake_sync.hset(key, "data", b"\x81\x92\x01\x02\xa1t")               # {[1, 2]: "t"}
    assert client.get(tid).data.error == "TypeError: unhashable type: 'list'"
    fake_sync.hset(key, mapping={"status": "COMPLETED", "output": b"\xc1"})  # never used byte
    info = client.get(tid)
    assert info.result is not None and isinstance(info.result.output, Undecodable)
    assert info.result.output.field == "output" and info.result.output.raw == b"\xc1"
    assert client.wait(tid, timeout=1).output == info.result.output    # wait does not fail
    client.close()


def test_a_payload_with_a_tuple_key_is_refused_with_nothing_written(
        fake_sync: fakeredis.FakeRedis) -> None:
    client = Client(redis=fake_sync, settings=Settings(prefix="tk"))
    with pytest.raises(EncodeError, match=r"cannot encode data key \(1, 2\): .* it would "
                                          r"arrive as a list"):
        client.enqueue("work", {"n": 1, (1, 2): "t"}, task_id="t1")
    with pytest.raises(EncodeError, match=r"items\[1\]\['d'\] key \(3,\)"):
        client.enqueue_many("work", [{"ok": 1}, {"d": {(3,): 1}}])
    assert fake_sync.keys("*") == []
    with pytest.raises(UnknownTaskError):
        client.get("t1")
    client.close()


# --- the same with a real worker on a real Redis -------------------------------------------


@pytest.mark.redis
async def test_a_real_worker_ends_hand_edited_tasks_visibly(redis_url: str, prefix: str) -> None:
    """NONSENSE on a queued task: the waiting client gets FAILED (wait raised a raw
    ValueError); QUEUED on a running one: FAILED too (it stayed QUEUED forever, READY 0);
    undecodable data: dead-lettered naming the field. The worker carries on."""
    settings_ = Settings(url=redis_url, prefix=prefix, block_ms=50)
    client = AsyncClient(settings=settings_)
    release = asyncio.Event()
    started: list[Any] = []

    async def handler(data: Any) -> Any:
        if data == "hold":
            started.append(data)
            await release.wait()
        return data

    nonsense = await client.enqueue("role", 1)
    await client.redis.hset(client.keys.task(nonsense), "status", "NONSENSE")
    undecodable = await client.enqueue("role", 2)
    await client.redis.hset(client.keys.task(undecodable), "data", b"\x01\x02")
    waiting = asyncio.create_task(client.wait(nonsense, timeout=10))
    await asyncio.sleep(0.1)                     # wait() watches the NONSENSE status first
    worker = Worker(handler, role="role", settings=settings_)
    running = asyncio.create_task(worker.run())
    try:
        result = await waiting
        assert (result.status, result.error) == (TaskStatus.FAILED, NONSENSE)
        bad = await client.wait(undecodable, timeout=10)
        assert bad.status is TaskStatus.FAILED
        assert bad.error == "undecodable task data: unpack(b) received extra data."
        held = await client.enqueue("role", "hold")
        for _ in range(200):
            if started:
                break
            await asyncio.sleep(0.02)
        await client.redis.hset(client.keys.task(held), "status", "QUEUED")
        release.set()
        ended = await client.wait(held, timeout=10)
        assert ended.status is TaskStatus.FAILED
        assert ended.error is not None and ended.error.startswith(
            "task hash is corrupt: its status field was changed to 'QUEUED' while attempt 1 "
            "ran on ")
        letters = {d.task_id: d.reason for d in await client.dead_letters()}
        assert letters[nonsense] == NONSENSE and letters[held] == ended.error
        assert letters[undecodable] == "failed, not retryable"
        assert (await client.wait(await client.enqueue("role", 3), timeout=10)).output == 3
        (q,) = await client.queues()
        assert (q.ready, q.running) == (0, 0)
    finally:
        release.set()
        worker.stop()
        await asyncio.wait_for(running, 10)
        await client.close()
