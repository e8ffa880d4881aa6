"""`queues` ages and dead-letter count, and `purge ROLE`, through the CLI on a real Redis."""

from __future__ import annotations

import json
import time

import pytest
import redis

from ceylon_redis import Client, TaskStatus
from ceylon_redis.keys import GROUP, Keys
from ceylon_redis.scripts import script_protocol

from .cli_support import assert_one_error_line, cli, invoke
from .conftest import Daemon, spawn_worker
from .test_integration import worker_id_of

pytestmark = pytest.mark.redis


def test_queues_shows_the_oldest_ready_age_and_the_dead_letters(
        env: dict[str, str], client: Client, restore_loguru: None) -> None:
    client.enqueue_many("aging", [1, 2, 3])
    client.enqueue("fresh", 1, delay=3600)  # scheduled only: nothing ready
    client.redis.xadd(client.keys.stream("garbage"), {"junk": "1"})
    for role in ("aging", "aging", "fresh", "gone-role"):
        client.redis.xadd(client.keys.dead, {"task": "x", "role": role, "reason": "test"})
    time.sleep(1.1)

    data = json.loads(invoke(env, "queues", "--json").output)

    rows = {q["role"]: q for q in data["queues"]}
    assert 1.0 <= rows["aging"]["oldest_ready_age"] < 30
    assert rows["fresh"]["oldest_ready_age"] is None and rows["fresh"]["scheduled"] == 1
    assert (rows["aging"]["dead"], rows["fresh"]["dead"]) == (2, 1)
    assert data["dead_letters"] == 4
    text = invoke(env, "queues").output
    assert "OLDEST READY" in text and "dead letters: 4" in text
    header, *lines = text.splitlines()
    assert header.split()[5] == "DEAD"
    assert next(line for line in lines if line.startswith("aging ")).split()[5] == "2"

    assert client.dead_letter_counts(scan=2) == {"gone-role": 1, "fresh": 1, "?": 2}


def test_purge_asks_then_cancels_what_has_not_started(
        env: dict[str, str], client: Client, sync_redis: redis.Redis,
        restore_loguru: None) -> None:
    ready = client.enqueue_many("p", [1, 2, 3])
    later = client.enqueue("p", 4, delay=3600)
    upstream = client.enqueue("other", 0)
    waiting = client.enqueue("p", 5, depends_on=[upstream])
    downstream = client.enqueue("other", 6, depends_on=[ready[0]])
    sync_redis.xgroup_create(client.keys.stream("p"), GROUP, id="0")
    taken = sync_redis.xreadgroup(GROUP, "someone", {client.keys.stream("p"): ">"}, count=1)
    taken_id = taken[0][1][0][1][b"id"].decode()           # delivered: not purged
    purged = [t for t in [*ready, later, waiting] if t != taken_id]

    refused = invoke(env, "purge", "p", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert {client.get(t).status for t in purged} != {TaskStatus.CANCELLED}

    done = invoke(env, "purge", "p", input="y\n")

    assert done.exit_code == 0, done.output
    assert f"cancelled {len(purged)} tasks of role 'p'" in done.output
    assert {client.get(t).status for t in purged} == {TaskStatus.CANCELLED}
    assert client.get(taken_id).status is TaskStatus.QUEUED
    assert client.get(upstream).status is TaskStatus.QUEUED
    if taken_id != ready[0]:
        assert client.get(downstream).status is TaskStatus.CANCELLED  # settled as for cancel
    (q,) = [q for q in client.queues() if q.role == "p"]
    assert (q.ready, q.scheduled, q.waiting, q.running) == (0, 0, 0, 1)
    assert invoke(env, "purge", "p", "--yes").output.strip() == "cancelled 0 tasks of role 'p'"


def test_purge_of_an_unknown_role_is_a_usage_error(
        env: dict[str, str], client: Client, restore_loguru: None) -> None:
    result = invoke(env, "purge", "nosuchrole", "--yes")
    assert result.exit_code == 2 and "no role 'nosuchrole'" in result.output


def test_a_worker_refuses_to_join_live_workers_of_another_version(
        redis_url: str, prefix: str, env: dict[str, str], sync_redis: redis.Redis,
        own_daemons: list[Daemon]) -> None:
    keys = Keys(prefix)
    sec, usec = sync_redis.time()
    sync_redis.zadd(keys.workers, {"old-1": sec * 1000 + usec // 1000})
    sync_redis.hset(keys.worker("old-1"), mapping={"roles": "v", "pid": 1,
                                                    "protocol": "0123456789ab"})

    proc = cli(env, "worker", "tests.handlers_for_tests:echo", "--role", "v", timeout=30)

    assert proc.returncode == 1
    line = assert_one_error_line(proc.stderr.splitlines()[-1])
    assert "1 live workers of prefix" in line and "old-1: protocol 0123456789ab" in line
    assert sync_redis.zrange(keys.workers, 0, -1) == [b"old-1"]      # it never registered

    sync_redis.zadd(keys.workers, {"old-1": 0})                      # now long dead
    d = spawn_worker(own_daemons, redis_url, prefix, "tests.handlers_for_tests:echo",
                     "--role", "v")
    assert d.proc.poll() is None
    assert sync_redis.hget(keys.worker(worker_id_of(d)), "protocol") == (
        script_protocol().encode())
