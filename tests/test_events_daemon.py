"""Progress and the lifecycle stream with worker daemons on real Redis: a task reporting 100
steps is watched to its end from both clients at once, and the stream of a 2,000-task run
with retries and a kill -9 holds exactly the transitions the task hashes show."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
from collections import defaultdict

import pytest

from ceylon_redis import AsyncClient, Client, Settings, TaskStatus, TaskUpdate
from tests.cli_support import invoke
from tests.conftest import Daemon, spawn_worker
from tests.test_integration import FAST_REAP, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]
PROGRESSING = "tests.handlers_for_tests:progressing"
FAST_PROGRESS = {"CEYLON_REDIS_PROGRESS_INTERVAL": "0.05"}


def test_a_hundred_steps_are_watched_to_the_end_from_both_clients(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon]) -> None:
    spawn_worker(daemons, redis_url, prefix, PROGRESSING, "--role", "steps", env=FAST_PROGRESS)
    tid = client.enqueue("steps", {"steps": 100, "sleep": 0.02})
    seen_sync: list[TaskUpdate] = []

    def watch_sync() -> None:
        with Client(redis_url, prefix) as other:
            seen_sync.extend(other.watch(tid, timeout=30, interval=0.05))

    thread = threading.Thread(target=watch_sync)
    thread.start()

    async def watch_async() -> list[TaskUpdate]:
        async with AsyncClient(redis_url, prefix) as aclient:
            return [u async for u in aclient.watch(tid, timeout=30, interval=0.05)]

    seen_async = asyncio.run(watch_async())
    thread.join(30)
    for seen in (seen_sync, seen_async):
        final = seen[-1]
        assert final.status is TaskStatus.COMPLETED and final.result is not None
        assert final.result.output == 100 and final.progress == 1.0
        fractions = [u.progress for u in seen if u.progress is not None]
        assert fractions == sorted(fractions)
        assert len(set(fractions)) >= 10            # 2 s of steps, written every 0.05 s
        steps = [u.progress_info["step"] for u in seen if u.progress_info]
        assert steps == sorted(steps) and steps[-1] >= 90
    print(f"\nwatched 100 steps: {len(seen_async)} updates (async), {len(seen_sync)} (sync)")


def test_the_stream_of_a_run_with_retries_and_a_kill_nine_matches_the_task_hashes(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon]) -> None:
    items = [{"steps": 2, "sleep": 0.01, "fail_first": i % 10 == 0} for i in range(2000)]
    ids = client.enqueue_many("run", items, max_attempts=3, backoff=0.1)
    env = {**FAST_REAP, **FAST_PROGRESS}
    victim = spawn_worker(daemons, redis_url, prefix, PROGRESSING, "--role", "run", "-c", "20",
                          env=env)
    spawn_worker(daemons, redis_url, prefix, PROGRESSING, "--role", "run", "-c", "20", env=env)
    started = re.search(r"worker (\S+) started", victim.output())
    assert started is not None
    vid = started.group(1)
    stream = client.keys.stream("run")

    def victim_busy() -> bool:  # so that the kill cuts attempts short: 5 of them RUNNING
        running = 0  # (an entry read but not yet started is pending too, yet not RUNNING)
        for row in client.redis.xpending_range(stream, "workers", "-", "+", 20,
                                               consumername=vid):
            entry = client.redis.xrange(stream, row["message_id"], row["message_id"])
            task = entry[0][1].get(b"id", b"").decode() if entry else ""
            running += task != "" and client.redis.hget(client.keys.task(task),
                                                        "status") == b"RUNNING"
        return running >= 5

    wait_until(victim_busy, 30, "the victim running tasks")
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    results = client.wait_many(ids, timeout=120)
    assert all(r.success for r in results)

    by_task: dict[str, list[str]] = defaultdict(list)
    started: dict[str, list[int]] = defaultdict(list)
    for e in client.events("0", role="run"):
        by_task[e.task_id].append(e.kind)
        if e.kind == "started":
            assert e.attempt is not None
            started[e.task_id].append(e.attempt)
        elif e.kind == "unstarted":
            started[e.task_id].pop()
    assert set(by_task) == set(ids)
    crashed = retried = progress = 0
    for i, tid in enumerate(ids):
        info, kinds = client.get(tid), by_task[tid]
        assert kinds[0] == "enqueued" and kinds.count("enqueued") == 1, (tid, kinds)
        assert kinds[-1] == "completed" and kinds.count("completed") == 1, (tid, kinds)
        assert "failed" not in kinds and "dead" not in kinds, (tid, kinds)
        assert started[tid] == list(range(1, info.attempt + 1)), (tid, kinds, info.attempt)
        assert kinds.count("requeued") == info.crashes, (tid, kinds, info.crashes)
        assert kinds.count("retried") + info.crashes + 1 == info.attempt, (tid, kinds)
        if i % 10:   # runs once, unless lost with its worker
            assert "retried" not in kinds, (tid, kinds)
        else:        # its first attempt failed, or was lost
            assert kinds.count("retried") + kinds.count("requeued") >= 1, (tid, kinds)
        crashed += info.crashes
        progress += kinds.count("progress")
        retried += kinds.count("retried")
    print(f"\n2,000 tasks, one worker kill -9'd: {retried} retried, {crashed} lost with it "
          f"and run again, {progress} progress events; every task's events match its hash")
    assert 150 <= retried <= 200     # each fail_first task, once, unless the kill took it
    assert crashed >= 1                         # the kill cut attempts short
    assert progress > 0     # tasks of 20 ms, progress written every 50 ms: some of them


def test_the_cap_holds_on_real_redis(redis_url: str, prefix: str, sync_redis: object) -> None:
    settings = Settings(url=redis_url, prefix=prefix, events_maxlen=1000)
    with Client(settings=settings) as capped:
        for i in range(3000):
            capped.enqueue("capped", i)
        length = capped.redis.xlen(capped.keys.lifecycle)
    print(f"\n3,000 enqueues, cap 1,000: the stream holds {length} entries")
    assert 1000 <= length <= 1100      # MAXLEN ~ trims whole nodes (100 entries each)


def test_the_cli_follows_a_task_and_tails_the_events(
        redis_url: str, prefix: str, client: Client, daemons: list[Daemon],
        env: dict[str, str], restore_loguru: None) -> None:
    spawn_worker(daemons, redis_url, prefix, PROGRESSING, "--role", "steps", env=FAST_PROGRESS)
    tid = client.enqueue("steps", {"steps": 20, "sleep": 0.05})
    followed = invoke(env, "task", tid, "--follow", "--timeout", "30")
    assert followed.exit_code == 0, followed.output
    changes = [line for line in followed.output.splitlines() if line.startswith(tid)]
    assert any("RUNNING" in line and "progress=" in line for line in changes), changes
    assert changes[-1].startswith(f"{tid} COMPLETED attempt=1 progress=100%")
    assert "status:      COMPLETED" in followed.output and "progress:    100%" in followed.output

    lines = invoke(env, "events", "--task", tid, "--since", "0").output.splitlines()
    kinds = [line.split()[2] for line in lines]
    assert kinds[:2] == ["enqueued", "started"] and kinds[-1] == "completed", lines
    last = json.loads(invoke(env, "events", "--json", "--last", "1").output)
    assert (last["kind"], last["task_id"], last["status"]) == ("completed", tid, "COMPLETED")
    done = invoke(env, "events", "--since", "0", "--kind", "completed").output.splitlines()
    assert len(done) == 1 and tid in done[0]
    bad = invoke(env, "events", "--since", "yesterday")
    assert bad.exit_code == 1 and "since must be" in bad.output
    assert invoke(env, "events", "--since", "0", "--last", "3").exit_code == 2
    failed = client.enqueue("steps", {"steps": 1, "fail_first": True}, max_attempts=1)
    assert invoke(env, "task", failed, "--follow", "--timeout", "30").exit_code == 3
    missing = invoke(env, "task", "no-such-task", "--follow")
    assert missing.exit_code == 1 and "unknown task" in missing.output
