"""Many tasks from the CLI: ``enqueue --from-file`` with --wait, progress bars, and the
--json of the commands that change state (cancel, purge, dead retry, dead purge)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

import pytest

from ceylon_redis import Client
from tests.cli_support import cli, full_env, invoke
from tests.conftest import ROOT, Daemon, spawn_worker

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("restore_loguru")]

H = "tests.handlers_for_tests:"


def lines_of(*items: object) -> str:
    return "".join(json.dumps(i) + "\n" for i in items)


def test_from_file_enqueues_each_line_and_waits_for_all(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    n = 2500  # three enqueue batches
    result = invoke(env, "enqueue", "dbl", "--from-file", "-", input=lines_of(*range(n)))

    assert result.exit_code == 0, result.output
    ids = result.stdout.split()
    assert len(ids) == n == len(set(ids))
    assert [client.get(t).data for t in ids[:3]] == [0, 1, 2]
    assert client.get(ids[-1]).data == n - 1

    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS", "-c", "20")
    result = invoke(env, "enqueue", "dbl", "-f", "-", "--wait", "--timeout", "60", "--json",
                    input=lines_of(*range(300)) + "\n")  # a blank line is skipped
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["output"] for r in out] == [2 * i for i in range(300)]
    assert all(r["status"] == "COMPLETED" for r in out)
    assert client.wait_many(ids, timeout=60)[-1].output == 2 * (n - 1)


def test_from_file_wait_exits_3_when_any_task_fails(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS")
    result = invoke(env, "enqueue", "bad", "-f", "-", "--wait", "--timeout", "30",
                    input=lines_of("x", "y"))

    assert result.exit_code == 3, result.output
    rows = result.stdout.strip().splitlines()
    assert len(rows) == 2 and all(" FAILED error: RuntimeError" in r for r in rows), rows


def test_a_bad_line_is_a_usage_error_and_nothing_is_enqueued(
        env: dict[str, str], client: Client) -> None:
    result = invoke(env, "enqueue", "dbl", "-f", "-", input="1\n2\n{oops\n4\n")

    assert result.exit_code == 2, result.output
    assert "line 3" in result.stderr and "not JSON" in result.stderr
    assert client.queues() == []

    result = invoke(env, "enqueue", "dbl", "7", "-f", "-", input="1\n")
    assert result.exit_code == 2
    assert "--from-file takes no DATA" in result.stderr


def test_wait_many_reports_each_result_as_it_arrives(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS", "-c", "5")
    ids = client.enqueue_many("dbl", range(50))
    seen: list[object] = []

    results = client.wait_many(ids, timeout=30, on_result=lambda r: seen.append(r.output))

    assert [r.output for r in results] == [2 * i for i in range(50)]
    assert sorted(seen) == [2 * i for i in range(50)]  # once each


def run_on_a_terminal(env: dict[str, str], *args: str, stdin: str) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, what it showed)."""
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ceylon_redis", *args], cwd=ROOT,
                            env=full_env(env), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=child)
    os.close(child)
    assert proc.stdin is not None
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    shown = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    return proc.wait(timeout=10), shown.decode(errors="replace")


def test_a_progress_bar_shows_on_a_terminal_only(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS", "-c", "20")
    code, shown = run_on_a_terminal(env, "enqueue", "dbl", "-f", "-", "--wait",
                                    "--timeout", "60", stdin=lines_of(*range(400)))

    assert code == 0, shown
    assert "enqueuing" in shown and "waiting" in shown, shown
    assert "400/400" in shown, shown

    proc = cli(env, "enqueue", "dbl", "-f", "-", "--wait")  # stderr a pipe: no bar
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_state_changing_commands_print_json(
        env: dict[str, str], client: Client) -> None:
    client.enqueue("slow", 1, task_id="c-1")
    client.enqueue_many("slow", [1, 2, 3])

    out = json.loads(invoke(env, "cancel", "c-1", "--json").stdout)
    assert out == {"id": "c-1", "cancelled": True, "status": "CANCELLED"}
    out = json.loads(invoke(env, "cancel", "c-1", "--json").stdout)
    assert out == {"id": "c-1", "cancelled": False, "status": "CANCELLED"}

    out = json.loads(invoke(env, "purge", "slow", "--yes", "--json").stdout)
    assert out == {"role": "slow", "cancelled": 3}

    out = json.loads(invoke(env, "dead", "retry", "nope", "--json").stdout)
    assert out["retried"] == 0 and "nope" in out["skipped"]
    out = json.loads(invoke(env, "dead", "purge", "--all", "--yes", "--json").stdout)
    assert out == {"purged": 0}
