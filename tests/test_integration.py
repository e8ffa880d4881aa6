"""Integration tests on a real Redis, with worker daemons as real subprocesses.

Every test works in a namespace of its own (the ``prefix`` fixture) and never
touches other keys of the shared server. Daemons load handlers from
``tests.handlers_for_tests``; ``record`` counts each run of a task in
``{prefix}:test:runs:<task id>`` so that a duplicate run is visible.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis

from ceylon_redis import Client, EncodeError, Record, TaskStatus, register_type
from ceylon_redis import codec as codec_module
from tests.conftest import Daemon, spawn_worker
from tests.handlers_for_tests import runs_key, who_key

pytestmark = pytest.mark.redis

H = "tests.handlers_for_tests:"
FAST_REAP = {"CEYLON_REDIS_WORKER_TIMEOUT": "2", "CEYLON_REDIS_HEARTBEAT_INTERVAL": "0.5"}


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def run_counts(r: redis.Redis, prefix: str, ids: list[str]) -> list[int]:
    with r.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.get(runs_key(prefix, tid))
        return [int(v or 0) for v in pipe.execute()]


def runners(r: redis.Redis, prefix: str, ids: list[str]) -> dict[str, list[str]]:
    """The workers that ran each task, one per run, in order (handlers that note ``who``)."""
    with r.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.lrange(who_key(prefix, tid), 0, -1)
        return {tid: [w.decode() for w in ws] for tid, ws in zip(ids, pipe.execute())}


def task_fields(r: redis.Redis, prefix: str, ids: list[str], field: str) -> list[str | None]:
    with r.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.hget("{" + prefix + "}:task:" + tid, field)
        return [v.decode() if v is not None else None for v in pipe.execute()]


def worker_id_of(d: Daemon) -> str:
    """The consumer id a daemon logged in its 'worker <id> started:' line."""
    for line in d.output().splitlines():
        if "started:" in line:
            return line.split("worker ", 1)[1].split(" started:", 1)[0]
    raise AssertionError(f"no 'started:' line in:\n{d.output()}")


# ---------------------------------------------------------------- delivery


def test_each_task_runs_on_exactly_one_of_three_workers(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    ds = [spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "count",
                       "--concurrency", "20") for _ in range(3)]
    ids = client.enqueue_many("count", [{"i": i, "sleep": 0.01} for i in range(300)])

    results = client.wait_many(ids, timeout=60)

    assert all(r.success for r in results), [r.error for r in results if not r.success][:3]
    assert [r.output["data"]["i"] for r in results] == list(range(300))
    counts = run_counts(sync_redis, prefix, ids)
    assert counts == [1] * 300, f"{sum(c != 1 for c in counts)} tasks ran != 1 times"
    hash_workers = task_fields(sync_redis, prefix, ids, "worker")
    assert hash_workers == [r.output["worker"] for r in results]
    assert set(hash_workers) <= {worker_id_of(d) for d in ds}
    assert len(set(hash_workers)) > 1, "one worker took every task"
    assert task_fields(sync_redis, prefix, ids, "attempt") == ["1"] * 300


def test_ten_thousand_tasks_drained_by_two_daemons(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        capsys: pytest.CaptureFixture[str]) -> None:
    n = 10_000
    for _ in range(2):
        spawn_worker(daemons, redis_url, prefix, H + "echo", "--role", "bulk",
                     "--concurrency", "50")

    t0 = time.perf_counter()
    ids = client.enqueue_many("bulk", ({"i": i} for i in range(n)))
    t1 = time.perf_counter()
    results = client.wait_many(ids, timeout=60)
    t2 = time.perf_counter()

    assert len(ids) == len(set(ids)) == n
    assert [r.task_id for r in results] == ids
    assert all(r.success and r.status is TaskStatus.COMPLETED for r in results)
    assert [r.output for r in results] == [{"echo": {"i": i}} for i in range(n)]
    bulk = next(q for q in client.queues() if q.role == "bulk")
    assert (bulk.ready, bulk.running, bulk.workers_alive) == (0, 0, 2)
    with capsys.disabled():
        print(f"\n[10k] enqueue_many {n}: {t1 - t0:.2f} s; drained by 2 daemons (-c 50) "
              f"and all results read: {t2 - t0:.2f} s total ({n / (t2 - t0):.0f} tasks/s)")


# ---------------------------------------------------------------- shutdown


def test_sigterm_drains_in_flight_and_gives_back_the_rest(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    d1 = spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "term",
                      "--concurrency", "10")
    ids = client.enqueue_many("term", [{"sleep": 0.5}] * 40)
    wait_until(lambda: sum(run_counts(sync_redis, prefix, ids)) >= 5, what="tasks to start")
    signalled_at = time.time()
    d1.proc.send_signal(signal.SIGTERM)
    assert d1.proc.wait(15) == 0, d1.output()

    infos = [client.get(tid) for tid in ids]
    counts = run_counts(sync_redis, prefix, ids)
    started = [i for i, c in zip(infos, counts) if c]
    rest = [i for i, c in zip(infos, counts) if not c]
    assert started and rest, f"{len(started)} started of 40: SIGTERM did not land mid-run"
    d1_id = worker_id_of(d1)
    for info in started:  # what it had begun, it finished (after the signal), once
        assert info.status is TaskStatus.COMPLETED, info
        assert (info.attempt, info.worker) == (1, d1_id)
        assert info.finished_at is not None
    assert any(i.finished_at and i.finished_at.timestamp() > signalled_at for i in started), \
        "no task was in flight when SIGTERM arrived"
    for info in rest:  # the rest were never started and are still on the queue
        assert (info.status, info.attempt, info.worker) == (TaskStatus.QUEUED, 0, None), info
    term = next(q for q in client.queues() if q.role == "term")
    assert (term.ready, term.running, term.consumers) == (len(rest), 0, 0)
    assert client.workers() == []

    d2 = spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "term",
                      "--concurrency", "20")
    results = client.wait_many(ids, timeout=20)

    assert all(r.success for r in results)
    assert run_counts(sync_redis, prefix, ids) == [1] * 40
    assert task_fields(sync_redis, prefix, ids, "attempt") == ["1"] * 40
    assert task_fields(sync_redis, prefix, ids, "status") == ["COMPLETED"] * 40
    d2_id = worker_id_of(d2)
    assert {r.output["worker"] for r in results if r.task_id in {i.id for i in rest}} == {d2_id}


def test_sigterm_gives_back_prefetched_tasks_as_they_were(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    d1 = spawn_worker(daemons, redis_url, prefix, H + "record_sync", "--role", "pre",
                      "--concurrency", "2", "--prefetch", "3")
    ids = client.enqueue_many("pre", [{"sleep": 0.6}] * 10)
    wait_until(lambda: next(q for q in client.queues() if q.role == "pre").running == 5
               and sum(run_counts(sync_redis, prefix, ids)) == 2, what="five tasks taken")
    time.sleep(0.2)
    assert sum(run_counts(sync_redis, prefix, ids)) == 2  # two threads, three waiting
    d1.proc.send_signal(signal.SIGTERM)
    assert d1.proc.wait(15) == 0, d1.output()

    counts = run_counts(sync_redis, prefix, ids)
    infos = [client.get(tid) for tid in ids]
    assert counts.count(1) == 2 and counts.count(0) == 8, counts
    for info, ran in zip(infos, counts):
        if ran:
            assert (info.status, info.attempt) == (TaskStatus.COMPLETED, 1), info
        else:  # taken but never started: back on the queue with no attempt or crash spent
            assert (info.status, info.attempt, info.worker, info.error) == (
                TaskStatus.QUEUED, 0, None, None), info
    assert task_fields(sync_redis, prefix, ids, "crashes") == [None] * 10
    assert "gave back 3 tasks" in d1.output()

    spawn_worker(daemons, redis_url, prefix, H + "record_sync", "--role", "pre",
                 "--concurrency", "10")
    results = client.wait_many(ids, timeout=20)
    assert all(r.success for r in results)
    assert run_counts(sync_redis, prefix, ids) == [1] * 10
    assert task_fields(sync_redis, prefix, ids, "attempt") == ["1"] * 10


# ---------------------------------------------------------------- payloads


@dataclass
class Inner:
    x: int


@dataclass
class Job:
    difficulty: int
    label: str
    inner: Inner
    when: dt.datetime


def test_dataclass_payload_round_trips_through_a_daemon(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "difficulty", "--role", "dc")
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    tid = client.enqueue("dc", Job(21, "hard", Inner(7), when))

    result = client.wait(tid, timeout=10)

    assert result.success, result.error
    out = result.output
    assert (out["double"], out["label"], out["inner_x"]) == (42, "HARD", 7)
    payload = out["payload"]  # came back through the daemon as a Record: unregistered type
    assert isinstance(payload, Record)
    assert payload.type_name == f"{Job.__module__}.Job"
    assert (payload.difficulty, payload.label, payload.inner.x, payload.when) == (
        21, "hard", 7, when)

    names = [f"{Job.__module__}.Job", f"{Inner.__module__}.Inner"]
    register_type(Job)
    register_type(Inner)
    try:
        info = client.get(tid)  # decoded again, now as the registered classes
        assert info.result is not None
        assert info.result.output["payload"] == Job(21, "hard", Inner(7), when)
        assert info.data == Job(21, "hard", Inner(7), when)
    finally:
        for name in names:
            codec_module._registry.pop(name, None)


def test_unencodable_payload_raises_and_writes_nothing(
        client: Client, sync_redis: redis.Redis, prefix: str) -> None:
    with pytest.raises(EncodeError, match="bad"):
        client.enqueue("r", {"ok": 1, "bad": object()})
    with pytest.raises(EncodeError, match=r"\['i'\].*socket"):
        client.enqueue_many("r", [{"i": 0}, {"i": 1}, {"i": socket.socket}, {"i": 3}])

    assert list(sync_redis.scan_iter(match="{" + prefix + "}:*")) == []


def test_redis_cli_shows_task_fields_as_plain_text(
        redis_url: str, client: Client, prefix: str) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("no redis-cli binary")
    tid = client.enqueue("plain", {"x": 1}, name="resize a.png")

    proc = subprocess.run([cli, "-u", redis_url, "HGETALL", "{" + prefix + "}:task:" + tid],
                          capture_output=True, timeout=10, check=True)

    lines = proc.stdout.decode(errors="replace").splitlines()
    fields = dict(zip(lines[::2], lines[1::2]))
    assert fields["status"] == "QUEUED"
    assert fields["role"] == "plain"
    assert fields["name"] == "resize a.png"
    assert "attempt" not in fields  # absent until a worker starts it (then 1)


# ---------------------------------------------------------------- crashes


def test_killed_workers_tasks_are_rerun_by_another(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    a = spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "crash",
                     "--concurrency", "10")
    ids = client.enqueue_many("crash", [{"sleep": 1.0}] * 4, max_attempts=2)
    wait_until(lambda: run_counts(sync_redis, prefix, ids) == [1] * 4, what="A to start all")
    a.proc.kill()
    a.proc.wait(10)
    a_id = worker_id_of(a)
    assert task_fields(sync_redis, prefix, ids, "status") == ["RUNNING"] * 4

    b = spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "crash",
                     "--concurrency", "10", env=FAST_REAP)
    results = client.wait_many(ids, timeout=20)

    b_id = worker_id_of(b)
    assert all(r.success for r in results), [r.error for r in results]
    assert [r.output["attempt"] for r in results] == [2] * 4
    assert [r.output["worker"] for r in results] == [b_id] * 4
    assert [client.get(t).attempt for t in ids] == [2] * 4
    assert run_counts(sync_redis, prefix, ids) == [2] * 4
    for tid in ids:
        assert [w.decode() for w in sync_redis.lrange(who_key(prefix, tid), 0, -1)] == [
            a_id, b_id]
    assert f"worker {a_id} presumed dead" in b.output()
    assert [w.id for w in client.workers()] == [b_id]


def test_late_finish_of_a_frozen_worker_is_refused_and_it_rejoins(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    """A worker frozen (SIGSTOP) past its heartbeat is presumed dead and its task runs
    elsewhere; thawed, its late result is refused by the fence, counted and logged, and it
    goes back to work."""
    a = spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "fence", env=FAST_REAP)
    tid = client.enqueue("fence", {"sleep": 2.0})
    wait_until(lambda: run_counts(sync_redis, prefix, [tid]) == [1], what="A to start it")
    a.proc.send_signal(signal.SIGSTOP)
    b = spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "fence", env=FAST_REAP)
    result = client.wait(tid, timeout=20)
    assert result.output["worker"] == worker_id_of(b) and result.output["attempt"] == 2
    b.proc.send_signal(signal.SIGSTOP)  # so that the next task can only go to A
    a.proc.send_signal(signal.SIGCONT)

    a.wait_for(f"result of task {tid} refused", 10)
    assert sync_redis.hget("{" + prefix + "}:counters", "fenced") == b"1"
    info = client.get(tid)
    assert (info.status, info.attempt, info.worker) == (TaskStatus.COMPLETED, 2, worker_id_of(b))
    assert client.wait(tid, timeout=1).output == result.output  # the first result stands
    later = client.enqueue("fence", {})
    assert client.wait(later, timeout=10).output["worker"] == worker_id_of(a)
    b.proc.send_signal(signal.SIGCONT)


def test_task_longer_than_worker_timeout_on_live_worker_runs_once(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    for _ in range(2):  # two live workers with a 2 s timeout, reaping every 0.5 s
        spawn_worker(daemons, redis_url, prefix, H + "record", "--role", "long",
                     env=FAST_REAP)
    tid = client.enqueue("long", {"sleep": 4}, max_attempts=3)

    result = client.wait(tid, timeout=15)

    assert result.success, result.error
    assert result.output["attempt"] == 1
    assert run_counts(sync_redis, prefix, [tid]) == [1]
    info = client.get(tid)
    assert info.attempt == 1 and info.error is None
    assert info.run_time is not None and info.run_time >= 3.9
    assert all("presumed dead" not in d.output() for d in daemons)


# ---------------------------------------------------------------- registry


def test_workers_and_queues_reflect_daemons(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    d = spawn_worker(daemons, redis_url, prefix, H + "echo", "--role", "reg",
                     "--concurrency", "3")
    client.enqueue_many("orphan", [1, 2, 3])

    (w,) = client.workers()
    assert w.alive
    assert (w.id, w.pid, w.roles, w.concurrency) == (worker_id_of(d), d.proc.pid, ["reg"], 3)
    assert w.host == socket.gethostname()
    # Redis creates a group's consumer when it first delivers to it: run one task
    assert client.wait(client.enqueue("reg", "hi"), timeout=10).output == {"echo": "hi"}
    queues = {q.role: q for q in client.queues()}
    assert (queues["reg"].consumers, queues["reg"].workers_alive) == (1, 1)
    orphan = queues["orphan"]
    assert (orphan.ready, orphan.running, orphan.consumers, orphan.workers_alive) == (3, 0, 0, 0)

    assert d.stop() == 0, d.output()

    assert client.workers() == []
    queues = {q.role: q for q in client.queues()}
    assert (queues["reg"].consumers, queues["reg"].workers_alive) == (0, 0)
    assert queues["orphan"].ready == 3
