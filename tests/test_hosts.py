"""Three worker hosts (network namespaces, see tests/netns.py) share a role against one
Redis; coordinators run on two of them. One host is cut off the network mid-run: its
in-flight tasks are reclaimed by the others once its heartbeat lapses; when its link comes
back, its late finishes are refused by the fence and it rejoins and takes work again.
Every task completes with one result, counted once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from ceylon_redis import Client, Settings, TaskStatus
from tests.conftest import ROOT, Daemon
from tests.netns import Host, Hosts, namespaces_unavailable
from tests.redis_server import RedisServer, require_redis_server
from tests.test_integration import runners, wait_until, worker_id_of

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

ROLE, PREFIX = "spread", "hosts"
TIMEOUTS = {"CEYLON_REDIS_WORKER_TIMEOUT": "3", "CEYLON_REDIS_HEARTBEAT_INTERVAL": "0.5",
            "CEYLON_REDIS_SOCKET_TIMEOUT": "1"}


def test_a_host_cut_off_is_reclaimed_fenced_and_rejoins(tmp_path: Path,
                                                        own_daemons: list[Daemon]) -> None:
    require_redis_server()
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    with Hosts(3) as hosts:
        server = RedisServer(tmp_path, "--bind", "127.0.0.1",
                             *[h.gateway for h in hosts], "--protected-mode", "no")
        server.start()
        try:
            _run(hosts, server, own_daemons)
        finally:
            server.stop()


def _spawn(host: Host, server: RedisServer, args: list[str]) -> Daemon:
    url = f"redis://{host.gateway}:{server.port}/0"
    env = {**os.environ, **TIMEOUTS, "CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": PREFIX,
           "PYTHONPATH": str(ROOT)}
    return Daemon(args, env, wrap=host.command)


def _run(hosts: list[Host], server: RedisServer, daemons: list[Daemon]) -> None:
    worker_args = ["worker", "tests.handlers_for_tests:record", "--role", ROLE, "-c", "4"]
    workers = [_spawn(h, server, worker_args) for h in hosts]
    daemons += workers
    daemons += [_spawn(h, server, ["coordinator"]) for h in hosts[1:]]
    for d in daemons:
        d.wait_for("started:", 20)
    ids = {worker_id_of(w): i for i, w in enumerate(workers)}
    cut_worker = worker_id_of(workers[0])

    r = redis.Redis.from_url(server.url)
    with Client(settings=Settings(url=server.url, prefix=PREFIX)) as client:
        first = client.enqueue_many(ROLE, [{"sleep": 1.0}] * 48)
        wait_until(lambda: any(cut_worker in w for w in runners(r, PREFIX, first).values()),
                   10, "the first host to start tasks")
        time.sleep(0.3)
        hosts[0].cut()
        cut_at = time.monotonic()
        held = [t for t, w in runners(r, PREFIX, first).items() if w == [cut_worker]
                and client.get(t).status == TaskStatus.RUNNING]
        results = client.wait_many(first, timeout=60)
        drained = time.monotonic() - cut_at
        assert [x.status for x in results] == [TaskStatus.COMPLETED] * len(first)
        by = {t: x.output["worker"] for t, x in zip(first, results)}
        assert held and all(by[t] != cut_worker for t in held), "the cut host's tasks stayed"
        assert all(client.get(t).attempt == 2 for t in held)

        hosts[0].restore()
        workers[0].wait_for("refused", 30)
        fenced = int(r.hget("{" + PREFIX + "}:counters", "fenced") or 0)
        assert 1 <= fenced <= len(held)
        for t in held:  # the reclaiming host's result stands
            assert client.wait(t, timeout=1).output["worker"] == by[t]

        wait_until(lambda: cut_worker in {w.id for w in client.workers()}, 15,
                   "the cut host to register again")
        later = client.enqueue_many(ROLE, [{"sleep": 0.2}] * 60)
        again = client.wait_many(later, timeout=60)
        hosts_used = {ids[x.output["worker"]] for x in again}
        assert 0 in hosts_used, "the host that came back took no work"

        every = first + later
        runs = runners(r, PREFIX, every)
        twice = {t for t, w in runs.items() if len(w) > 1}
        assert twice <= set(held), "a task ran twice that the cut host did not hold"
        wait_until(lambda: client.stats(ROLE).overall.completed == len(every), 20,
                   "each result to be counted once")
        back = sum(ids[x.output["worker"]] == 0 for x in again)
        print(f"\nhosts: cut host held {len(held)} running tasks; all {len(first)} done "
              f"{drained:.1f} s after the cut (worker timeout 3 s); {fenced} late finishes "
              f"refused; after it came back it ran {back} of {len(later)} new tasks; "
              f"hosts used {sorted(hosts_used)}")
    assert all(d.proc.poll() is None for d in daemons)
