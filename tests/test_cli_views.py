"""What ``task``, ``queues``, ``workers``, ``stats`` and ``dead purge`` show and ask, on a real
Redis: crash counts, fields that do not decode, a stale heartbeat, a role that is not there."""

from __future__ import annotations

import re

import pytest

from ceylon_redis import Client
from ceylon_redis.keys import GROUP
from tests.cli_support import assert_one_error_line, invoke

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
