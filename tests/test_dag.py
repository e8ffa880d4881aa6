"""Dependencies, graphs and the coordinator on a real Redis, with daemons as subprocesses."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from ceylon_redis import Client, Dep, DependencyError, TaskDef, TaskStatus, UnknownTaskError
from tests.conftest import Daemon, spawn_coordinator, spawn_worker
from tests.handlers_for_tests import runs_key
from tests.test_integration import FAST_REAP, run_counts, wait_until

pytestmark = pytest.mark.redis

NODE = "tests.handlers_for_tests:node"
FLAKY = "tests.handlers_for_tests:flaky"


def keys_of(r: redis.Redis, prefix: str) -> set[bytes]:
    return set(r.scan_iter(match="{" + prefix + "}:*", count=1000))


# ---------------------------------------------------------------- shapes


def test_diamond_runs_in_order_and_sees_its_prerequisites(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n")
    graph = client.enqueue_graph([
        TaskDef("n", {"value": 8}, id="bottom", depends_on=["left", "right"]),  # named first
        TaskDef("n", {"value": 1}, id="top"),
        TaskDef("n", {"value": 2}, id="left", depends_on=["top"]),
        TaskDef("n", {"value": 4}, id="right", depends_on=["top"]),
    ])
    assert client.get("bottom").status is TaskStatus.WAITING
    results = dict(zip(graph.task_ids(), graph.wait(timeout=10)))
    # bottom = 8 + (2 + 1) + (4 + 1): it saw both outputs, each of which saw top's.
    assert results["bottom"].output == {"sum": 16, "failed": []}
    assert run_counts(sync_redis, prefix, ["top", "left", "right", "bottom"]) == [1, 1, 1, 1]
    top, bottom = client.get("top"), client.get("bottom")
    assert top.finished_at and bottom.started_at and top.finished_at <= bottom.started_at
    info = graph.info()
    assert (info.status, info.done, info.total, info.progress) == ("completed", 4, 4, 1.0)


def test_thousand_wide_fan_in(redis_url: str, prefix: str, daemons: list[Daemon],
                              client: Client, sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n", "-c", "50")
    tasks = [TaskDef("n", {"value": 1}, id=f"leaf{i}") for i in range(1000)]
    tasks.append(TaskDef("n", {"value": 0}, id="sink", depends_on=[t.id or "" for t in tasks]))
    graph = client.enqueue_graph(tasks)
    result = client.wait("sink", timeout=60)
    assert result.output == {"sum": 1000, "failed": []}
    assert run_counts(sync_redis, prefix, [f"leaf{i}" for i in range(1000)]) == [1] * 1000
    assert run_counts(sync_redis, prefix, ["sink"]) == [1]
    assert graph.info().status == "completed"


def test_five_hundred_deep_chain(redis_url: str, prefix: str, daemons: list[Daemon],
                                 client: Client, sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n")
    tasks = [TaskDef("n", {"value": 1}, id="c0")]
    tasks += [TaskDef("n", {"value": 1}, id=f"c{i}", depends_on=[f"c{i - 1}"])
              for i in range(1, 500)]
    client.enqueue_graph(tasks[::-1])  # order within the call does not matter
    assert client.wait("c499", timeout=60).output == {"sum": 500, "failed": []}
    assert run_counts(sync_redis, prefix, [f"c{i}" for i in range(500)]) == [1] * 500
    starts = [client.get(f"c{i}").started_at for i in (0, 250, 499)]
    assert starts[0] and starts[1] and starts[2] and starts[0] <= starts[1] <= starts[2]


# ---------------------------------------------------------------- failure policies


def test_failure_cancels_the_subtree_and_policies_decide_per_edge(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n")
    graph = client.enqueue_graph([
        TaskDef("n", {"fail": True}, id="bad"),
        TaskDef("n", {"value": 1}, id="good"),
        TaskDef("n", {}, id="child", depends_on=["bad", "good"]),
        TaskDef("n", {}, id="grandchild", depends_on=["child"]),
        TaskDef("n", {}, id="leaf", depends_on=["grandchild"]),
        TaskDef("n", {"value": 10}, id="report", depends_on=["bad", "good"], on_failure="run"),
        TaskDef("n", {"value": 20}, id="tidy", depends_on=[Dep("bad", "ignore"), "good"]),
        TaskDef("n", {}, id="after_report", depends_on=["report"]),
    ])
    results = {r.task_id: r for r in graph.wait(timeout=15)}
    assert results["bad"].status is TaskStatus.FAILED
    for tid, cause in (("child", "bad"), ("grandchild", "child"), ("leaf", "grandchild")):
        assert results[tid].status is TaskStatus.CANCELLED
        assert results[tid].error and results[tid].error.startswith(f"dependency {cause} ")
    assert "told to fail" in (results["leaf"].error or "")  # the root cause travels along
    assert run_counts(sync_redis, prefix, ["child", "grandchild", "leaf"]) == [0, 0, 0]
    # run anyway: the failure is visible, the good prerequisite's output too
    assert results["report"].output == {"sum": 11, "failed": ["bad"]}
    # ignore: runs as if the edge were not there
    assert results["tidy"].output == {"sum": 21, "failed": []}
    assert results["after_report"].output == {"sum": 12, "failed": []}
    info = graph.info()
    assert (info.status, info.completed, info.failed, info.cancelled) == ("failed", 4, 1, 3)


def test_cycle_and_unknown_prerequisite_write_nothing(
        client: Client, sync_redis: redis.Redis, prefix: str) -> None:
    client.enqueue("n", 1, task_id="exists")
    before = keys_of(sync_redis, prefix)
    with pytest.raises(DependencyError, match="a -> c -> b -> a"):
        client.enqueue_graph([TaskDef("n", id="a", depends_on=["c"]),
                              TaskDef("n", id="b", depends_on=["a"]),
                              TaskDef("n", id="c", depends_on=["b"])])
    with pytest.raises(UnknownTaskError, match="prerequisite ghost of task y"):
        client.enqueue_graph([TaskDef("n", id="x", depends_on=["exists"]),
                              TaskDef("n", id="y", depends_on=["x", "ghost"])])
    with pytest.raises(UnknownTaskError, match="ghost"):
        client.enqueue("n", 1, depends_on=["exists", "ghost"])
    assert keys_of(sync_redis, prefix) == before


# ---------------------------------------------------------------- graph handle


def test_graph_cancel_stops_what_has_not_run(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n", "-c", "1")
    tasks = [TaskDef("n", {"sleep": 0.3}, id="s0")]
    tasks += [TaskDef("n", {"sleep": 0.3}, id=f"s{i}", depends_on=[f"s{i - 1}"])
              for i in range(1, 10)]
    tasks += [TaskDef("n", {}, id=f"q{i}") for i in range(5)]  # queued behind s0
    graph = client.enqueue_graph(tasks)
    wait_until(lambda: client.get("s1").status is TaskStatus.RUNNING, 10, "s1 running")
    cancelled = graph.cancel()
    assert cancelled >= 9  # s1 (running) .. s9, and the q tasks not yet run
    info = graph.info()
    assert info.status == "cancelled" and info.done == info.total == 15
    results = {r.task_id: r for r in graph.wait(timeout=5)}
    assert results["s0"].success
    assert results["s9"].status is TaskStatus.CANCELLED
    assert results["s9"].error == f"graph {graph.id} cancelled"
    time.sleep(1.0)  # s1's handler finishes; its outcome is dropped, nothing more runs
    assert client.get("s1").status is TaskStatus.CANCELLED
    assert run_counts(sync_redis, prefix, [f"s{i}" for i in range(2, 10)]) == [0] * 8


def test_retry_failed_reruns_the_failed_subtree_only(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, FLAKY, "--role", "f")
    sync_redis.set("{" + prefix + "}:test:fail:mid", 1)
    graph = client.enqueue_graph([
        TaskDef("f", {}, id="root"),
        TaskDef("f", {}, id="mid", depends_on=["root"]),
        TaskDef("f", {}, id="end", depends_on=["mid"]),
        TaskDef("f", {}, id="side", depends_on=["root"]),
    ], ttl=600)
    graph.wait(timeout=10)
    info = graph.info()
    assert (info.status, info.completed, info.failed, info.cancelled) == ("failed", 2, 1, 1)
    assert 0 < sync_redis.ttl("{" + prefix + "}:task:root") <= 600  # expire together...
    assert 0 < sync_redis.ttl("{" + prefix + "}:graph:" + graph.id) <= 600

    sync_redis.delete("{" + prefix + "}:test:fail:mid")
    assert graph.retry_failed() == 2
    assert sync_redis.ttl("{" + prefix + "}:task:root") == -1  # ...and live while it runs again
    assert graph.info().status == "running"
    results = {r.task_id: r for r in graph.wait(timeout=10)}
    assert all(r.success for r in results.values())
    assert run_counts(sync_redis, prefix, ["root", "mid", "end", "side"]) == [1, 2, 1, 1]
    assert graph.info().status == "completed"
    assert graph.retry_failed() == 0


# ---------------------------------------------------------------- coordinator and stats


def test_stats_match_a_mixed_run_exactly_with_two_coordinators(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    spawn_coordinator(daemons, redis_url, prefix)
    spawn_coordinator(daemons, redis_url, prefix)
    spawn_worker(daemons, redis_url, prefix, FLAKY, "--role", "f", "-c", "20")
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n", "-c", "20")
    ok = client.enqueue_many("f", [{} for _ in range(300)])
    retried = client.enqueue_many("f", [{"fail_first": True} for _ in range(40)], max_attempts=2)
    for tid in ok[:30]:
        sync_redis.set("{" + prefix + "}:test:fail:" + tid, 1)  # may race: counted below
    # Each failing task with its dependent in one call: a worker may fail it at once.
    for i in range(20):
        client.enqueue_graph([TaskDef("n", {"fail": True}, id=f"bad-{i}"),
                              TaskDef("n", {}, id=f"dep-{i}", depends_on=[f"bad-{i}"])])
    bad, cancelled = [f"bad-{i}" for i in range(20)], [f"dep-{i}" for i in range(20)]
    results = client.wait_many(ok + retried + bad + cancelled, timeout=30)
    by_status = {s: sum(1 for r in results if r.status is s) for s in TaskStatus}
    wait_until(lambda: client.stats().overall.finished == len(results), 15, "stats caught up")
    st = client.stats()
    assert st.coordinators_alive == 2
    f, n = {r.role: r for r in st.roles}["f"], {r.role: r for r in st.roles}["n"]
    assert (n.completed, n.failed, n.cancelled) == (0, 20, 20)
    assert f.completed + n.completed == by_status[TaskStatus.COMPLETED]
    assert f.failed + n.failed == by_status[TaskStatus.FAILED]
    assert st.overall.cancelled == by_status[TaskStatus.CANCELLED] == 20
    assert st.overall.success_rate == by_status[TaskStatus.COMPLETED] / len(results)
    assert f.retries == 40
    assert f.run.count == f.completed + f.failed and f.wait.count == f.run.count
    assert st.overall.throughput[-1] + st.overall.throughput[-2] == len(results)
    time.sleep(1)
    assert client.stats().overall.finished == len(results)  # nothing counted twice


def test_killed_coordinator_is_replaced_and_nothing_is_lost_or_doubled(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client,
        sync_redis: redis.Redis) -> None:
    first = spawn_coordinator(daemons, redis_url, prefix, FAST_REAP)
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n", "-c", "50")
    tasks = [TaskDef("n", {"value": 1}, id="root")]
    # 30 ms each, 50 at a time: the fan-out lasts ~2 s, so events still flow when frozen.
    tasks += [TaskDef("n", {"value": 1, "sleep": 0.03}, id=f"k{i}", depends_on=["root"])
              for i in range(3000)]
    tasks.append(TaskDef("n", {"value": 0}, id="sink",
                         depends_on=[f"k{i}" for i in range(3000)]))
    client.enqueue_graph(tasks)
    wait_until(lambda: client.stats().overall.completed > 300, 20, "the fan-out under way")
    # Frozen, its blocked read is still served by Redis: it holds events it never counts.
    held = lambda: sync_redis.xpending("{" + prefix + "}:events", "coordinators")["pending"]  # noqa: E731
    for _ in range(10):  # frozen between two reads it holds nothing: thaw and freeze again
        first.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: held() > 0, 0.5)
            break
        except AssertionError:
            first.proc.send_signal(signal.SIGCONT)
    assert held() > 0, "no events delivered to the frozen coordinator"
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(5)
    second = spawn_coordinator(daemons, redis_url, prefix, FAST_REAP)
    assert client.wait("sink", timeout=60).output == {"sum": 6000, "failed": []}
    wait_until(lambda: client.stats().overall.completed == 3002, 20, "stats after takeover")
    ids = ["root", "sink", *[f"k{i}" for i in range(3000)]]
    assert run_counts(sync_redis, prefix, ids) == [1] * 3002
    second.wait_for("took over", 10)
    assert client.stats().overall.completed == 3002
    wait_until(lambda: client.coordinators_alive() == 1, 5, "the dead one deregistered")
    second.wait_for("presumed dead", 10)  # logged just after alive == 1 can first be true
    assert not sync_redis.xpending("{" + prefix + "}:events", "coordinators")["pending"]


def test_queues_says_when_no_coordinator_is_alive(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    first = client.enqueue("n", 1)
    client.enqueue("n", 2, depends_on=[first])
    (q,) = client.queues()
    assert (q.waiting, q.ready) == (1, 1)
    assert client.coordinators_alive() == 0
    d = spawn_coordinator(daemons, redis_url, prefix)
    assert client.coordinators_alive() == 1
    assert d.stop() == 0
    assert client.coordinators_alive() == 0
    assert runs_key(prefix, "x")  # (keeps the import honest for readers of the helpers)
