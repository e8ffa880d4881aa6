"""What ``task``, ``queues``, ``workers``, ``stats`` and ``dead purge`` show and ask, on a real
Redis: crash counts, fields that do not decode, a stale heartbeat, a role that is not there."""

from __future__ import annotations

import json
import re
import time

import pytest

from ceylon_redis import Client
from ceylon_redis.keys import GROUP
from tests.cli_support import assert_one_error_line, invoke
from tests.conftest import Daemon, spawn_worker

H = "tests.handlers_for_tests:"

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("restore_loguru")]


def _line(text: str, label: str) -> str:
    found = re.search(rf"^{label}:\s+(.*)$", text, re.MULTILINE)
    assert found, text
    return found.group(1)


def _lose_once(client: Client, tid: str, role: str) -> None:
    """Start the task as consumer c1 and give it back as a dead worker's would be: a crash."""
    stream = client.keys.stream(role)
    client.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    ((_, entries),) = client.redis.xreadgroup(GROUP, "c1", {stream: ">"})
    client.scripts.start(keys=[client.keys.base], args=[role, "c1", entries[0][0], tid])
    client.scripts.requeue(keys=[client.keys.base], args=["c1", "worker c1 died", 60, 0, role])


def test_task_shows_its_crash_count(env: dict[str, str], client: Client) -> None:
    tid = client.enqueue("crashy", {"n": 1})
    assert _line(invoke(env, "task", tid).stdout, "crashes") == "0"
    _lose_once(client, tid, "crashy")
    assert client.get(tid).crashes == 1
    result = invoke(env, "task", tid)
    assert _line(result.stdout, "crashes") == "1 (lost with its worker; a 4th fails it)"
    assert _line(result.stdout, "error") == "worker c1 died"
    assert '"crashes": 1' in invoke(env, "task", tid, "--json").stdout


def test_task_names_a_field_that_does_not_decode(env: dict[str, str], client: Client) -> None:
    """It printed `error: unpack(b) received extra data.` and nothing else."""
    tid = client.enqueue("r", {"n": 1})
    client.redis.hset(client.keys.task(tid), "data", b"\x01\x02")
    result = invoke(env, "task", tid)
    assert result.exit_code == 0, result.output
    assert _line(result.stdout, "data") == (
        "undecodable data (ExtraData: unpack(b) received extra data.)")
    assert _line(result.stdout, "status") == "QUEUED"
    client.redis.hset(client.keys.task(tid), mapping={"status": "COMPLETED", "output": b"\xc1"})
    assert _line(invoke(env, "task", tid).stdout, "output").startswith("undecodable output (")
    assert invoke(env, "task", tid, "--json").exit_code == 0


def test_task_with_a_status_of_nonsense_is_one_error_line_naming_it(
        env: dict[str, str], client: Client) -> None:
    tid = client.enqueue("r", 1)
    client.redis.hset(client.keys.task(tid), "status", "NONSENSE")
    result = invoke(env, "task", tid)
    assert result.exit_code == 1
    assert f"task {tid} has an invalid status b'NONSENSE'" in assert_one_error_line(result.stderr)
    result = invoke(env, "cancel", tid)
    assert (result.exit_code, result.stdout.strip()) == (0, f"{tid} CANCELLED")


# --- item 8: small gaps ---------------------------------------------------------------------


def test_stats_of_a_role_that_is_not_there_is_a_usage_error(
        env: dict[str, str], client: Client) -> None:
    """It printed a row of zeros."""
    client.enqueue("resize", 1)
    result = invoke(env, "stats", "--role", "resise")
    assert result.exit_code == 2
    assert ("no role 'resise' in this namespace (did you mean 'resize'?); roles: resize"
            in result.output)
    result = invoke(env, "stats", "--role", "Resize", "--json")
    assert result.exit_code == 2 and "roles are case-sensitive" in result.output
    assert invoke(env, "stats", "--role", "resize").exit_code == 0


def test_queues_points_at_a_live_worker_whose_role_differs_in_case(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "echo", "--role", "Resize")
    client.enqueue("resize", 1)
    text = invoke(env, "queues").stdout
    assert ("  ! 1 task waits for role 'resize', and no worker of it is alive (a live worker "
            "serves 'Resize': roles are case-sensitive)") in text, text
    client.enqueue("resize", 2)
    assert "2 tasks wait for role 'resize'" in invoke(env, "queues").stdout


def test_queues_leaves_out_idle_roles_and_says_which(env: dict[str, str],
                                                     client: Client) -> None:
    """A role once used (a worker's typo, purged tasks) stayed in queues forever."""
    client.enqueue("busy", 1)
    gone = client.enqueue("Busy", 1)
    client.cancel(gone)
    text = invoke(env, "queues").stdout
    roles = [line.split()[0] for line in text.splitlines()[1:] if not line.startswith(("!", " "))]
    assert "busy" in roles and "Busy" not in roles
    assert "idle roles not shown: Busy (--all shows them)" in text
    every = invoke(env, "queues", "--all").stdout
    row = r"^Busy\s+0\s+0\s+0\s+0\s+0\s+0\s+0\s+-\s+0\s+0$"
    assert re.search(row, every, re.MULTILINE), every
    assert "idle roles not shown" not in every
    assert {q["role"] for q in json.loads(invoke(env, "queues", "--json").stdout)["queues"]} \
        == {"busy", "Busy"}


def test_dead_purge_all_asks_first(env: dict[str, str], client: Client) -> None:
    """It deleted every dead letter without asking (purge ROLE asks)."""
    for tid in ("d1", "d2"):
        client.redis.xadd(client.keys.dead, {"task": tid, "role": "r", "reason": "test"})
    refused = invoke(env, "dead", "purge", "--all", input="n\n")
    assert refused.exit_code == 1 and "Forget all 2 dead letters?" in refused.output
    assert "Aborted" in refused.output
    assert len(client.dead_letters()) == 2
    done = invoke(env, "dead", "purge", "--all", input="y\n")
    assert done.exit_code == 0 and done.stdout.strip().endswith("purged 2 dead letters")
    assert client.dead_letters() == []
    client.redis.xadd(client.keys.dead, {"task": "d3", "role": "r", "reason": "test"})
    assert invoke(env, "dead", "purge", "--all", "--yes").stdout.strip() == "purged 1 dead letter"


# --- item 9: a worker killed with kill -9, during its worker_timeout -------------------------


def test_workers_and_queues_show_how_stale_a_killed_workers_heartbeat_is(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    """For worker_timeout after a kill -9 both counted it live with its tasks running, and
    nothing showed its heartbeat had stopped."""
    beat = {"CEYLON_REDIS_HEARTBEAT_INTERVAL": "1", "CEYLON_REDIS_WORKER_TIMEOUT": "30"}
    d = spawn_worker(daemons, redis_url, prefix, H + "slow", "--role", "slow", env=beat)
    tid = client.enqueue("slow", {"sleep": 60})
    for _ in range(100):
        if client.get(tid).status.value == "RUNNING":
            break
        time.sleep(0.05)
    watch = {**env, **beat}
    (w,) = json.loads(invoke(watch, "workers", "--json").stdout)
    assert w["alive"] and not w["late"] and 0 <= w["heartbeat_age"] < 2
    d.proc.kill()
    d.proc.wait(10)
    time.sleep(2.5)                                    # two heartbeat intervals, and some
    (w,) = json.loads(invoke(watch, "workers", "--json").stdout)
    assert w["alive"] and w["late"] and 2 < w["heartbeat_age"] < 30
    text = invoke(watch, "workers").stdout
    (row,) = [line for line in text.splitlines() if line.startswith(w["id"])]
    assert row.split()[-1] == "late" and re.search(r"\s\d\.\d\ds\s", row), row
    assert (f"! {w['id']}: no heartbeat for ") in text
    assert "it may have died; at 30 s it is presumed dead and its running tasks go back" in text
    queues = invoke(watch, "queues")
    assert re.search(rf"^! worker {w['id']} \(slow\): no heartbeat for \d+\.\d s, it may have "
                     r"died; at 30 s it is presumed dead", queues.stdout, re.MULTILINE), \
        queues.stdout
    late = json.loads(invoke(watch, "queues", "--json").stdout)["workers_late"]
    assert [x["id"] for x in late] == [w["id"]]
