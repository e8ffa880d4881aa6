"""Bounded memory: 100,000 tasks run, their results expire, and Redis is back to its baseline.

The requirement: results expire after a configurable TTL, finished stream
entries are removed, statistics are bounded; after 100,000 tasks complete and
their TTL passes, Redis memory returns to within a few percent of its baseline.

On a redis-server of its own (so ``INFO memory`` measures this namespace and
nothing else), the test first brings the namespace to its steady state: two
worker daemons (``PROCESSORS``: role ``dbl`` succeeds, role ``bad`` always
fails) and a coordinator run, a few tasks of each role and one malformed
stream entry pass through, their TTLs pass. That is the baseline. Then
100,000 tasks with a 3 s result TTL go through the same daemons, 10% of them
failing twice (``max_attempts=2``: a scheduled retry, then a dead letter whose
hash is kept ``dead_letter_ttl``, 5 s here), plus a few more malformed
entries; once every one is counted final and both TTLs have passed, no task
hash, stream entry, event or dead letter may be left (the coordinator trims
dead letters older than ``dead_letter_ttl``), and ``used_memory`` must be back
within the slack below. ``pytest -s`` prints the figures.

The lifecycle stream is off here (``events_maxlen=0``), and so are the coordinators'
lists of recent finished tasks (``recent_per_role=0``): both are memory kept on purpose,
up to a cap (tests/test_events_daemon.py, tests/test_scripts_graph.py hold them to it),
and their bytes would swamp the slack this test allows for leaks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import redis

from ceylon_redis import Client, Settings

from .conftest import Daemon, spawn_coordinator, spawn_worker
from .redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(600)]

H = "tests.handlers_for_tests:"
TTL = 3                      # seconds a finished task's hash is kept
DEAD_TTL = 5                 # seconds a dead-lettered task's hash (and dead letter) is kept
N = 100_000                  # tasks in the main run
CHUNK = 10_000               # tasks per enqueue_many call (memory is sampled between calls)
FAIL_EVERY = 10              # one task in ten goes to the failing role
BAD_ATTEMPTS = 2             # ...and is retried once before it ends FAILED
MALFORMED = 5                # stream entries without an id field: dead-lettered
# Slack on used_memory less the connections' buffers (``mem_clients_normal``):
# 5% of the baseline, at least 32 KB. That baseline is about 0.98 MB (of it
# ~0.9 MB is the empty server), so 5% is ~49 KB: 1/20 of one keyspace hash
# table left sized for 100,000 keys (131,072 buckets: 1 MB; the expires dict as
# much again), 0.5 byte per task, 0.1% of the ~40 MB the queued tasks occupy at
# the peak. What may legitimately differ is small and bounded: a few more
# per-minute fields and histogram buckets in the two stats hashes (a few
# hundred bytes). Seen: -0.5 KB to +3.9 KB.
SLACK_FRACTION = 0.05
SLACK_FLOOR = 32 * 1024
# used_memory as a whole also counts the 13-18 connections (the daemons' pools
# grow under load), and a connection holds a ~20 KB query buffer while busy,
# freeing it after 2 s idle; which ones are busy at a reading (heartbeats,
# every 5 s) is chance. Seen: +3 KB to +44 KB between baseline and after, so
# the whole figure gets 64 KB (three busy buffers) more: about 10% of a 1.2 MB
# baseline, still 1/600 of the peak.
CONNECTIONS_SLACK = 64 * 1024
# Fields a stats hash can hold (docs/architecture.md): six counts and sums,
# 72 wait and 72 run histogram buckets, and per-minute counts pruned after an
# hour (61 minutes, the current one included, and one more until the next prune).
STATS_FIELDS_MAX = 6 + 72 + 72 + 62


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               every: float = 0.25) -> float:
    """Poll until ``predicate()``; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Probe:
    """Reads one namespace of the test's own server: memory, keys, streams, counts."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r = r
        self.base = "{" + prefix + "}:"
        self.peak = 0
        self.dead_max = 0
        """The longest the dead-letter stream was seen (the coordinator trims it as it goes)."""

    def used_memory(self) -> int:
        used = int(self.r.info("memory")["used_memory"])
        self.peak = max(self.peak, used)
        return used

    def without_clients(self) -> int:
        """used_memory less what the client connections hold (their buffers)."""
        mem = self.r.info("memory")
        self.peak = max(self.peak, int(mem["used_memory"]))
        return int(mem["used_memory"]) - int(mem["mem_clients_normal"])

    def settled(self) -> tuple[int, int]:
        """used_memory over a heartbeat interval: the lowest reading, and the median one
        less the connections' buffers.

        A connection holds a query buffer of ~20 KB while busy and frees it after 2 s idle;
        the daemons' heartbeats (every 5 s) keep a few busy in turn, so one reading of
        used_memory can be 20-40 KB off the next: the lowest over 6 s is steady. Redis 7
        updates ``mem_clients_normal`` per client after its commands and in clientsCron,
        so now and then it lags a freed buffer by one reading, either way: hence the median.
        """
        used, bare = [], []
        for _ in range(12):
            used.append(self.used_memory())
            bare.append(self.without_clients())
            time.sleep(0.5)
        return min(used), int(statistics.median(bare))

    def stats(self) -> dict[str, int]:
        """MEMORY STATS, flattened to the integer figures (db.0 overheads included)."""
        raw = self.r.memory_stats()
        flat: dict[str, int] = {}
        for name, value in raw.items():
            if isinstance(value, dict):
                flat.update({f"{name}.{k}": v for k, v in value.items() if isinstance(v, int)})
            elif isinstance(value, int):
                flat[name] = value
        return flat

    def keys(self, pattern: str = "*") -> list[str]:
        return sorted(k.decode() for k in self.r.scan_iter(match=self.base + pattern,
                                                           count=10_000))

    def task_keys(self) -> list[str]:
        return self.keys("task:*")

    def xlen(self, name: str) -> int:
        return int(self.r.xlen(self.base + name))

    def finished(self, role: str) -> int:
        """Outcomes the coordinator counted for a role (each exactly once)."""
        raw = self.r.hmget(self.base + "stats:" + role, "completed", "failed", "cancelled")
        return sum(int(v or 0) for v in raw)

    def counts(self, role: str) -> dict[str, int]:
        raw = self.r.hmget(self.base + "stats:" + role, "completed", "failed", "retries")
        return dict(zip(("completed", "failed", "retries"), (int(v or 0) for v in raw)))

    def add_malformed(self, role: str, n: int) -> None:
        for i in range(n):
            self.r.xadd(self.base + "stream:" + role, {"junk": str(i)})

    def remaining(self) -> list[tuple[str, str, int, int]]:
        """Every key of the namespace: name, type, length, MEMORY USAGE (bytes)."""
        rows = []
        for key in self.keys():
            raw = self.r.type(key)
            kind = raw.decode() if isinstance(raw, bytes) else str(raw)
            length = {"hash": self.r.hlen, "stream": self.r.xlen, "set": self.r.scard,
                      "zset": self.r.zcard}.get(kind, lambda _k: 0)(key)
            rows.append((key, kind, int(length), int(self.r.memory_usage(key, samples=0) or 0)))
        return rows

    def wait_drained(self, roles: dict[str, int], timeout: float) -> float:
        """Until the coordinator counted ``roles[r]`` outcomes per role and streams are empty."""
        def done() -> bool:
            self.used_memory()
            self.dead_max = max(self.dead_max, self.xlen("dead"))
            return (all(self.finished(r) >= n for r, n in roles.items())
                    and all(self.xlen("stream:" + r) == 0 for r in roles)
                    and self.xlen("events") == 0)
        return wait_until(done, timeout, f"{roles} outcomes counted", every=0.5)


def describe(rows: list[tuple[str, str, int, int]]) -> str:
    return "\n".join(f"    {key:<60} {kind:<6} len {length:>6}  {size:>7} B"
                     for key, kind, length, size in rows)


def test_memory_returns_to_baseline_after_100k_tasks_expire(
        own_redis: RedisServer, own_daemons: list[Daemon], prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    t_start = time.monotonic()
    url = own_redis.url
    r = redis.Redis(port=own_redis.port)
    probe = Probe(r, prefix)
    info = r.info("server")
    # Redis's own diagnostics are bounded but would swamp a 1.2 MB baseline, so they are
    # off on this server: each command type ever called gets a latency histogram of ~25 KB
    # (latency-tracking, 7.0+), and the slow log keeps up to 128 commands with their
    # arguments (the 1,000-task enqueue calls land in it: 80-150 KB seen). Neither depends
    # on how many tasks ran, only on which commands ran and how slowly; with both on, the
    # run ended 390-580 KB (20-32%) above its baseline.
    r.config_set("latency-tracking", "no")
    r.config_set("slowlog-log-slower-than", -1)
    r.config_resetstat()
    r.slowlog_reset()
    dead_ttl = {"CEYLON_REDIS_DEAD_LETTER_TTL": str(DEAD_TTL), "CEYLON_REDIS_EVENTS_MAXLEN": "0",
                "CEYLON_REDIS_RECENT_PER_ROLE": "0"}
    workers = [spawn_worker(own_daemons, url, prefix, H + "PROCESSORS", "--concurrency", "50",
                            "--grace", "5", env=dead_ttl) for _ in range(2)]
    # each daemon: a consumer of dbl and one of bad, 50 tasks at once each
    wait_until(lambda: all(w.output().count("started:") == 2 for w in workers), 30,
               "both consumers of both daemons")
    # the coordinator trims old dead letters once per heartbeat: every second here
    spawn_coordinator(own_daemons, url, prefix,
                      env={**dead_ttl, "CEYLON_REDIS_HEARTBEAT_INTERVAL": "1"})

    with Client(settings=Settings(url=url, prefix=prefix, events_maxlen=0)) as client:
        # ---- baseline: every kind of key this run creates, once, then its TTL passes
        ok = client.enqueue_many("dbl", [1, 2, 3], result_ttl=TTL)
        bad = client.enqueue_many("bad", ["x", "y"], result_ttl=TTL, max_attempts=BAD_ATTEMPTS)
        probe.add_malformed("dbl", 1)
        results = client.wait_many(ok + bad, timeout=60)
        assert [x.success for x in results] == [True] * 3 + [False] * 2
        probe.wait_drained({"dbl": 3, "bad": 2}, 60)
        assert probe.xlen("dead") == 3
        time.sleep(max(TTL, DEAD_TTL) + 0.5)
        wait_until(lambda: not probe.task_keys() and probe.xlen("dead") == 0, 60,
                   "baseline task hashes to expire and dead letters to be trimmed")
        base_counts = {role: probe.counts(role) for role in ("dbl", "bad")}
        r.memory_purge()
        baseline, baseline_nc = probe.settled()
        baseline_conns = len(r.client_list())
        baseline_keys = probe.remaining()
        baseline_stats = probe.stats()
        probe.peak = 0
        t_baseline = time.monotonic()

        # ---- 100,000 tasks, one in ten failing (twice), plus a few malformed entries
        n_bad = 0
        for start in range(0, N, CHUNK):
            items = range(start, start + CHUNK)
            bad_items = [i for i in items if i % FAIL_EVERY == 0]
            ok_items = [i for i in items if i % FAIL_EVERY != 0]
            client.enqueue_many("dbl", ok_items, result_ttl=TTL)
            client.enqueue_many("bad", bad_items, result_ttl=TTL, max_attempts=BAD_ATTEMPTS)
            n_bad += len(bad_items)
            probe.used_memory()
        probe.add_malformed("dbl", MALFORMED)
        t_enqueued = time.monotonic()
        n_ok = N - n_bad
        drain_s = probe.wait_drained({"dbl": 3 + n_ok, "bad": 2 + n_bad}, 420)
        t_drained = time.monotonic()

        # ---- every outcome counted once; then the TTL passes and the results go
        counts = {role: probe.counts(role) for role in ("dbl", "bad")}
        assert counts["dbl"]["completed"] - base_counts["dbl"]["completed"] == n_ok
        assert counts["dbl"]["failed"] == 0
        assert counts["bad"]["failed"] - base_counts["bad"]["failed"] == n_bad
        assert counts["bad"]["retries"] - base_counts["bad"]["retries"] == n_bad
        assert r.hget(probe.base + "counters", "fenced") is None
        assert probe.dead_max > 0
        time.sleep(max(TTL, DEAD_TTL) + 0.5)
        expire_s = wait_until(lambda: not probe.task_keys() and probe.xlen("dead") == 0, 120,
                              "task hashes to expire and dead letters to be trimmed")
        r.memory_purge()
        first_after = probe.used_memory()
        limit_nc = baseline_nc + max(SLACK_FRACTION * baseline_nc, SLACK_FLOOR)
        limit = baseline + max(SLACK_FRACTION * baseline, SLACK_FLOOR) + CONNECTIONS_SLACK
        try:  # the emptied keyspace dicts shrink in serverCron (not while an AOF rewrite forks)
            settle_s = wait_until(lambda: probe.without_clients() <= limit_nc, 30,
                                  "used_memory to come back", every=0.5)
        except AssertionError:
            settle_s = float("nan")
        after, after_nc = probe.settled()
        after_conns = len(r.client_list())
        mem = r.info("memory")
        stats_fields = {role: int(r.hlen(probe.base + "stats:" + role)) for role in ("dbl", "bad")}
        after_stats = probe.stats()
        rows = probe.remaining()
        t_end = time.monotonic()

    def roles_streams() -> dict[str, int]:
        return {role: probe.xlen("stream:" + role) for role in ("dbl", "bad")}

    with capsys.disabled():
        print(f"\n[memory] redis {info['redis_version']}, {N} tasks ({n_bad} failing after "
              f"{BAD_ATTEMPTS} attempts, {MALFORMED} malformed entries), result_ttl {TTL} s, "
              f"dead_letter_ttl {DEAD_TTL} s; the dead-letter stream held up to {probe.dead_max}\n"
              f"  baseline used_memory   {baseline:>12,} B\n"
              f"  peak (sampled)         {probe.peak:>12,} B   "
              f"(INFO used_memory_peak {int(mem['used_memory_peak']):,} B)\n"
              f"  first after expiry     {first_after:>12,} B   (one reading; hash tables "
              f"shrink in serverCron)\n"
              f"  after TTL              {after:>12,} B   ({after - baseline:+,} B, "
              f"{100 * (after - baseline) / baseline:+.2f}%; limit {limit:,.0f} B)\n"
              f"  connections            {baseline_conns:>12} -> {after_conns}\n"
              f"  without client buffers {baseline_nc:>12,} B -> {after_nc:,} B "
              f"({after_nc - baseline_nc:+,} B; limit {limit_nc:,.0f} B)\n"
              f"  after: dataset {int(mem['used_memory_dataset']):,} B, clients "
              f"{int(mem['mem_clients_normal']):,} B, aof buffer "
              f"{int(mem.get('mem_aof_buffer', 0)):,} B, stats hash fields {stats_fields} "
              f"(at most {STATS_FIELDS_MAX} each)\n"
              f"  times: setup+baseline {t_baseline - t_start:.1f} s, enqueue "
              f"{t_enqueued - t_baseline:.1f} s, drained {t_drained - t_baseline:.1f} s after "
              f"the first enqueue ({drain_s:.1f} s after the last), expired "
              f"{expire_s:.1f} s after the TTLs, memory settled in {settle_s:.1f} s, total "
              f"{t_end - t_start:.1f} s\n"
              f"  MEMORY STATS that moved (baseline -> after):\n"
              f"{moved(baseline_stats, after_stats)}\n"
              f"  keys at baseline ({len(baseline_keys)}):\n{describe(baseline_keys)}\n"
              f"  keys after TTL ({len(rows)}):\n{describe(rows)}")

    assert probe.task_keys() == []
    assert probe.xlen("lifecycle") == 0
    assert roles_streams() == {"dbl": 0, "bad": 0}
    assert probe.xlen("events") == 0
    assert probe.xlen("dead") == 0
    kinds_after = {_kind(k) for k, *_ in rows}
    assert kinds_after == {_kind(k) for k, *_ in baseline_keys}, "new kinds of key remain"
    assert len(rows) == len(baseline_keys), "the run left keys behind"
    assert all(n <= STATS_FIELDS_MAX for n in stats_fields.values()), stats_fields
    assert after_nc <= limit_nc, (
        f"without client buffers, used_memory {after_nc:,} B is {after_nc - baseline_nc:+,} B "
        f"from the baseline {baseline_nc:,} B")
    assert after <= limit, (
        f"used_memory {after:,} B is {after - baseline:+,} B from the baseline {baseline:,} B")


def moved(before: dict[str, int], after: dict[str, int]) -> str:
    rows = [f"    {k:<36} {before.get(k, 0):>12,} -> {after.get(k, 0):>12,}"
            for k in sorted(set(before) | set(after)) if before.get(k, 0) != after.get(k, 0)]
    return "\n".join(rows)


def _kind(key: str) -> str:
    """A key's kind: its name with ids stripped (``worker:<id>`` -> ``worker``)."""
    rest = key.split("}:", 1)[1]
    head = rest.split(":", 1)[0]
    return rest if head in ("stream", "stats", "waiting") else head
