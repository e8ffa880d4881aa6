"""Prometheus metrics: a known run through real daemons, scraped by `ceylon-redis metrics --once`
and from the coordinator's --metrics-port; the collector itself on fakeredis."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ceylon_redis import Client, Settings
from ceylon_redis.errors import RedisConnectionError
from ceylon_redis.metrics import CeylonCollector, histogram_buckets, registry_for

from .cli_support import assert_one_error_line, cli, full_env, invoke
from .conftest import Daemon, spawn_worker

H = "tests.handlers_for_tests:"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, sorted labels without prefix)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "prefix"))
            out[(s.name, labels)] = s.value
    return out


def by_role(samples: Samples, name: str, **extra: str) -> dict[str, float]:
    """{role: value} of one sample name (with ``extra`` labels, e.g. le)."""
    out = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == name and "role" in d and all(d.get(k) == x for k, x in extra.items()) \
                and set(d) == {"role", *extra}:
            out[d["role"]] = v
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                assert resp.status == 200
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_stats(client: Client, want: dict[str, dict[str, int]], timeout: float = 30) -> None:
    """Until the coordinator's statistics reach ``want`` ({role: {field: value}})."""
    deadline = time.monotonic() + timeout
    while True:
        got = {r.role: r for r in client.stats().roles}
        seen = {role: {f: getattr(got[role], f) if role in got else None for f in fields}
                for role, fields in want.items()}
        if seen == want:
            return
        assert time.monotonic() < deadline, f"stats {seen} never reached {want}"
        time.sleep(0.1)


def spawn(daemons: list[Daemon], redis_url: str, prefix: str, *args: str) -> Daemon:
    env = {**full_env({}), "CEYLON_REDIS_URL": redis_url, "CEYLON_REDIS_PREFIX": prefix}
    d = Daemon(list(args), env)
    daemons.append(d)
    return d


# ------------------------------------------------------------ a known run, real daemons


@pytest.mark.redis
def test_metrics_of_a_known_run_from_the_cli_and_the_coordinator(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    port = free_port()
    coord = spawn(daemons, redis_url, prefix, "coordinator", "--metrics-port", str(port))
    coord.wait_for("started:")
    coord.wait_for(f"served at http://0.0.0.0:{port}/metrics")
    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS",  # roles dbl (ok), bad (fails)
                 env={"CEYLON_REDIS_RETRY_BACKOFF": "0.05"})

    ok = client.enqueue_many("dbl", [1, 2, 3, 4, 5])                 # 5 complete
    bad = client.enqueue_many("bad", ["x", "y", "z"], max_attempts=2)  # 3 fail, 1 retry each
    gate = client.enqueue("held", "gate")                              # no worker: stays ready
    client.enqueue_many("later", [1, 2], depends_on=[gate])            # 2 wait on it
    client.enqueue("later", 3, delay=600)                              # 1 scheduled
    doomed = client.enqueue("held", "doomed")
    assert client.cancel(doomed)                                       # 1 cancelled
    client.wait_many(ok + bad, timeout=30)
    wait_stats(client, {"dbl": {"completed": 5, "failed": 0, "retries": 0},
                        "bad": {"completed": 0, "failed": 3, "retries": 3},
                        "held": {"cancelled": 1}})

    proc = cli(env, "metrics", "--once")
    assert proc.returncode == 0, proc.stderr
    from_cli = parse(proc.stdout)
    from_coordinator = parse(http_get(port))

    for m in (from_cli, from_coordinator):
        assert m[("ceylon_redis_up", ())] == 1
        assert m[("ceylon_redis_coordinators_alive", ())] == 1
        roles = {"dbl", "bad", "held", "later"}
        zero = dict.fromkeys(roles, 0.0)
        assert by_role(m, "ceylon_redis_queue_ready") == {**zero, "held": 1}
        assert by_role(m, "ceylon_redis_queue_running") == zero
        assert by_role(m, "ceylon_redis_queue_waiting") == {**zero, "later": 2}
        assert by_role(m, "ceylon_redis_queue_scheduled") == {**zero, "later": 1}
        assert by_role(m, "ceylon_redis_dead_letters") == {**zero, "bad": 3}
        assert by_role(m, "ceylon_redis_workers_alive") == {**zero, "dbl": 1, "bad": 1}
        assert by_role(m, "ceylon_redis_consumers") == {**zero, "dbl": 1, "bad": 1}
        assert by_role(m, "ceylon_redis_worker_slots") == {**zero, "dbl": 1, "bad": 1}
        assert by_role(m, "ceylon_redis_tasks_completed_total") == {**zero, "dbl": 5}
        assert by_role(m, "ceylon_redis_tasks_failed_total") == {**zero, "bad": 3}
        assert by_role(m, "ceylon_redis_tasks_cancelled_total") == {**zero, "held": 1}
        assert by_role(m, "ceylon_redis_task_retries_total") == {**zero, "bad": 3}
        age = by_role(m, "ceylon_redis_queue_oldest_ready_age_seconds")
        if age:  # where the client reports it
            assert 0 < age["held"] < 60 and age["dbl"] == 0
        # histograms: one sample per task that ran (the cancelled one never did)
        for h in ("ceylon_redis_task_wait_seconds", "ceylon_redis_task_run_seconds"):
            assert by_role(m, h + "_count") == {**zero, "dbl": 5, "bad": 3}
            assert by_role(m, h + "_bucket", le="+Inf") == {**zero, "dbl": 5, "bad": 3}
            assert by_role(m, h + "_bucket", le="10000.0")["dbl"] == 5  # all under 10,000 s
            assert 0 <= by_role(m, h + "_sum")["dbl"] < 30
        run_le = by_role(m, "ceylon_redis_task_run_seconds_bucket", le="10.0")
        assert run_le["dbl"] == 5 and run_le["bad"] == 3

    # The same figures from both; only the oldest ready age moves between the two reads.
    moving = {"ceylon_redis_queue_oldest_ready_age_seconds"}
    assert {k: v for k, v in from_cli.items() if k[0] not in moving} == \
           {k: v for k, v in from_coordinator.items() if k[0] not in moving}

    # More work: the counters only grow between scrapes.
    more = client.enqueue_many("dbl", [6, 7])
    client.wait_many(more, timeout=30)
    wait_stats(client, {"dbl": {"completed": 7, "failed": 0, "retries": 0}})
    later = parse(http_get(port))
    for (name, labels), value in from_coordinator.items():
        if name.endswith(("_total", "_count", "_bucket", "_sum")):
            assert later[(name, labels)] >= value, (name, labels)
    assert by_role(later, "ceylon_redis_tasks_completed_total")["dbl"] == 7
    assert by_role(later, "ceylon_redis_task_run_seconds_count")["dbl"] == 7

    assert coord.stop() == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.redis
def test_the_metrics_command_serves_until_sigterm(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    client.enqueue("solo", 1)
    port = free_port()
    d = spawn(daemons, redis_url, prefix, "metrics", "--port", str(port), "--host", "127.0.0.1")
    d.wait_for(f"served at http://127.0.0.1:{port}/metrics")

    m = parse(http_get(port))

    assert m[("ceylon_redis_up", ())] == 1
    assert m[("ceylon_redis_coordinators_alive", ())] == 0
    assert by_role(m, "ceylon_redis_queue_ready") == {"solo": 1}
    assert by_role(m, "ceylon_redis_tasks_completed_total") == {"solo": 0}
    assert d.stop() == 0
    assert "metrics server stopped" in d.output()
    assert "Traceback" not in d.output()


@pytest.mark.redis
def test_metrics_cli_errors(env: dict[str, str], restore_loguru: None) -> None:
    result = invoke(env, "metrics", "--port", "70000")
    assert result.exit_code == 2 and "70000" in result.output
    result = invoke(env, "coordinator", "--metrics-port", "nope")
    assert result.exit_code == 2

    unreachable = {**env, "CEYLON_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = cli(unreachable, "metrics", "--once")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "127.0.0.1:1" in assert_one_error_line(proc.stderr)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli(env, "metrics", "--port", str(port), "--host", "127.0.0.1")
    assert proc.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in assert_one_error_line(proc.stderr)


# ------------------------------------------------------------ the collector on fakeredis


@pytest.fixture
def fake_client(fake_sync: fakeredis.FakeRedis, prefix: str) -> Iterator[Client]:
    with Client(settings=Settings(prefix=prefix), redis=fake_sync) as c:
        yield c


def scrape(collector: CeylonCollector) -> Samples:
    return parse(generate_latest(registry_for(collector)).decode())


def test_histogram_buckets_are_cumulative_seconds() -> None:
    # bucket 0: < 1 ms; bucket 3: [1.58, 2) ms; 10: [7.9, 10) ms; 45: [25, 31.6) s; 71: above
    got = dict(histogram_buckets({0: 1, 3: 2, 10: 1, 45: 4, 71: 5}))
    assert list(got)[:4] == ["0.001", "0.003162", "0.01", "0.03162"]
    assert list(got)[-2:] == ["10000.0", "+Inf"]
    assert (got["0.001"], got["0.003162"], got["0.01"], got["1.0"]) == (1, 3, 4, 4)
    assert (got["10.0"], got["31.62"], got["10000.0"], got["+Inf"]) == (4, 8, 8, 13)
    assert len(histogram_buckets({}, step=10)) == 9  # 1 ms ... 10,000 s by decades, +Inf
    assert all(v == 0 for _, v in histogram_buckets({}))


def test_collector_on_fakeredis(fake_client: Client, fake_sync: fakeredis.FakeRedis) -> None:
    fake_client.enqueue_many("a", [1, 2])
    fake_client.enqueue("b", 1, delay=60)
    k = fake_client.keys
    fake_sync.hset(k.stats("a"), mapping={"completed": 7, "failed": 2, "cancelled": 1,
                                          "retries": 4, "w0": 3, "w12": 6, "wait_sum": 200,
                                          "r20": 9, "run_sum": 900, "m1": 9})
    for role in ("a", "a", "b"):
        fake_sync.xadd(k.dead, {"task": "t", "role": role, "reason": "out of attempts"})

    m = scrape(CeylonCollector(fake_client))

    assert m[("ceylon_redis_up", ())] == 1
    assert by_role(m, "ceylon_redis_queue_ready") == {"a": 2, "b": 0}
    assert by_role(m, "ceylon_redis_queue_scheduled") == {"a": 0, "b": 1}
    assert by_role(m, "ceylon_redis_dead_letters") == {"a": 2, "b": 1}
    assert by_role(m, "ceylon_redis_tasks_completed_total") == {"a": 7, "b": 0}
    assert by_role(m, "ceylon_redis_tasks_failed_total") == {"a": 2, "b": 0}
    assert by_role(m, "ceylon_redis_tasks_cancelled_total") == {"a": 1, "b": 0}
    assert by_role(m, "ceylon_redis_task_retries_total") == {"a": 4, "b": 0}
    wait = "ceylon_redis_task_wait_seconds"
    assert by_role(m, wait + "_count") == {"a": 9, "b": 0}
    assert by_role(m, wait + "_sum") == {"a": 0.2, "b": 0}
    assert by_role(m, wait + "_bucket", le="0.001")["a"] == 3   # w0: under 1 ms
    assert by_role(m, wait + "_bucket", le="0.01")["a"] == 3    # w12 is [12.6, 15.8) ms
    assert by_role(m, wait + "_bucket", le="0.03162")["a"] == 9
    run = "ceylon_redis_task_run_seconds"
    assert by_role(m, run + "_bucket", le="0.1")["a"] == 9      # r20 is [79, 100) ms
    assert by_role(m, run + "_bucket", le="0.03162")["a"] == 0
    assert by_role(m, run + "_sum")["a"] == 0.9

    # the counters are Redis's own: they only grow, whoever scrapes
    fake_sync.hincrby(k.stats("a"), "completed", 3)
    assert by_role(scrape(CeylonCollector(fake_client)),
                   "ceylon_redis_tasks_completed_total")["a"] == 10

    # dead letters beyond the scan are counted, under role "?"
    capped = scrape(CeylonCollector(fake_client, dead_letter_scan=2))
    assert by_role(capped, "ceylon_redis_dead_letters") == {"a": 1, "b": 1, "?": 1}


def test_collector_reports_down_rather_than_failing(restore_loguru: None) -> None:
    collector = CeylonCollector(url="redis://127.0.0.1:1/0", prefix="p")
    try:
        m = scrape(collector)
        assert m == {("ceylon_redis_up", ()): 0.0}
        strict = CeylonCollector(collector.client, raise_errors=True)
        registry = CollectorRegistry()
        registry.register(strict)
        with pytest.raises(RedisConnectionError, match=r"127\.0\.0\.1:1"):
            generate_latest(registry)
    finally:
        collector.close()


def test_bucket_step_is_checked() -> None:
    with pytest.raises(ValueError, match="bucket_step"):
        CeylonCollector(Client(settings=Settings(), redis=fakeredis.FakeRedis()), bucket_step=0)
