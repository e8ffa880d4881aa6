"""Garbage in Redis (stream entries added by hand, task hashes edited into nonsense) never
crashes a worker or the readers, and is dead-lettered with a reason; property-based."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceylon_redis import AsyncClient, Settings, TaskStatus, ValidationError, Worker
from ceylon_redis.keys import GROUP, Keys
from ceylon_redis.protocol import parse_dead_letter, parse_started, parse_task
from ceylon_redis.scripts import Scripts

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
