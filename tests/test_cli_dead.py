"""Retries, delays, cancels and dead letters through a worker daemon and the CLI (real Redis)."""

from __future__ import annotations

import re
import time

import pytest
import redis

from ceylon_redis import Client, TaskStatus

from .cli_support import cli
from .conftest import Daemon, spawn_worker
from .handlers_for_tests import runs_key

pytestmark = pytest.mark.redis
H = "tests.handlers_for_tests:"


def ok(env: dict[str, str], *args: str) -> str:
    proc = cli(env, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_failing_task_is_retried_dead_lettered_and_retried_from_the_cli(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        sync_redis: redis.Redis) -> None:
    d = spawn_worker(daemons, redis_url, prefix, H + "flaky", "--role", "f", "--max-attempts", "3",
                     env={"CEYLON_REDIS_RETRY_BACKOFF": "0.2"})
    fail_key = "{" + prefix + "}:test:fail:t1"
    sync_redis.set(fail_key, 1)
    began = time.monotonic()
    proc = cli(env, "enqueue", "f", "{}", "--id", "t1", "--wait", "--timeout", "20")
    assert proc.returncode == 3, proc.stderr               # FAILED
    assert time.monotonic() - began >= 0.3                 # two backoffs: >= 0.1 + 0.2 s
    assert int(sync_redis.get(runs_key(prefix, "t1")) or 0) == 3
    d.wait_for("task t1 dead-lettered: out of attempts (3 of 3)")
    log = d.output()
    assert re.search(r"task t1 failed \(attempt 1 of 3\); retrying in 0\.\d s: .*t1 is told "
                     r"to fail", log), log
    assert "task t1 failed (attempt 2 of 3)" in log

    listed = ok(env, "dead", "list")
    assert re.search(r"^t1\s+f\s+.*out of attempts \(3 of 3\)$", listed, re.MULTILINE), listed
    shown = ok(env, "dead", "show", "t1")
    assert "t1 is told to fail" in shown and re.search(r"^attempts:\s+3$", shown, re.MULTILINE)

    sync_redis.delete(fail_key)
    assert ok(env, "dead", "retry", "t1").strip() == "retried 1 task"
    with Client(redis_url, prefix) as client:
        assert client.wait("t1", timeout=20).output == {"task": "t1", "attempt": 1}
    assert int(sync_redis.get(runs_key(prefix, "t1")) or 0) == 4
    assert ok(env, "dead", "list").strip() == "no dead letters"

    usage = cli(env, "dead", "retry")
    assert usage.returncode == 2 and "give task ids or --all" in usage.stderr
    missing = cli(env, "dead", "show", "nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: no dead letter for nope"


def test_a_delayed_task_shows_as_scheduled_then_runs(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "echo", "--role", "later")
    # long enough for two CLI processes to start on a loaded machine (CI runs two suites)
    tid = ok(env, "enqueue", "later", '"hello"', "--delay", "5").strip()
    text = ok(env, "queues")
    assert re.search(r"^later\s+0\s+1\s+0\s+0\s+", text, re.MULTILINE), text  # SCHEDULED 1
    assert re.search(r"^status:\s+SCHEDULED$", ok(env, "task", tid), re.MULTILINE)
    with Client(redis_url, prefix) as client:
        result = client.wait(tid, timeout=20)
        info = client.get(tid)
    assert result.output == {"echo": "hello"}
    assert info.started_at is not None and info.enqueued_at is not None
    assert (info.started_at - info.enqueued_at).total_seconds() >= 4.9


def test_cancel_from_the_cli_interrupts_a_daemons_running_task(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    d = spawn_worker(daemons, redis_url, prefix, H + "slow", "--role", "s", "--concurrency", "1")
    with Client(redis_url, prefix) as client:
        long = client.enqueue("s", {"sleep": 60})
        nxt = client.enqueue("s", {"sleep": 0})
        deadline = time.monotonic() + 15
        while client.get(long).status is not TaskStatus.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        began = time.monotonic()
        assert ok(env, "cancel", long, "--reason", "not needed").strip() == f"{long} CANCELLED"
        assert client.wait(nxt, timeout=10).success       # the one slot was freed at once
        assert time.monotonic() - began < 5
        assert client.get(long).error == "not needed"
    d.wait_for(f"task {long} cancelled while running")
    assert d.stop() == 0
