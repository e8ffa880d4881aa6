"""The CLI's graph commands end to end on a real Redis: coordinator, worker --coordinator,
stats (also --watch), graph (--tasks, --cancel, --retry-failed), cancel, enqueue
--depends-on/--on-failure, and queues with a coordinator alive.

Daemons run as subprocesses; short commands run in-process (CliRunner) unless
their process behaviour (exit code on a signal, stderr) is what is tested.
Every invocation is pointed at the test's own namespace.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading

import pytest
import redis

from ceylon_redis import Client, TaskDef, TaskStatus
from tests.cli_support import assert_one_error_line, cli, full_env, invoke
from tests.conftest import ROOT, Daemon, spawn_coordinator, spawn_worker
from tests.handlers_for_tests import runs_key
from tests.test_integration import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("restore_loguru")]

NODE = "tests.handlers_for_tests:node"
FLAKY = "tests.handlers_for_tests:flaky"
COORDINATOR_STARTED = re.compile(r"coordinator (coordinator-\S+) started: redis=")


def ok(env: dict[str, str], *args: str) -> str:
    """Run the CLI in-process, expect exit 0, return stdout."""
    result = invoke(env, *args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def field(text: str, name: str) -> str:
    """The value of a ``name:   value`` line of the text output."""
    m = re.search(rf"^{name}:\s+(.*)$", text, re.MULTILINE)
    assert m, f"no {name!r} line in:\n{text}"
    return m.group(1)


def table_rows(text: str) -> dict[str, list[str]]:
    """``stats`` text: first column -> the other columns, header and notes left out."""
    lines = text.strip().splitlines()
    assert lines[0].split()[:3] == ["ROLE", "DONE", "FAILED"], text
    return {ln.split()[0]: ln.split()[1:] for ln in lines[1:] if not ln.startswith("!")}


# ---------------------------------------------------------------- coordinator


def test_coordinator_logs_start_and_exits_0_on_sigterm(
        daemons: list[Daemon], env: dict[str, str], client: Client) -> None:
    d = spawn_coordinator(daemons, env['CEYLON_REDIS_URL'], env['CEYLON_REDIS_PREFIX'])
    m = COORDINATOR_STARTED.search(d.output())
    assert m, d.output()
    cid = m.group(1)
    assert client.coordinators_alive() == 1

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0, d.output()
    assert re.search(rf"coordinator {re.escape(cid)} stopped: 0 events applied", d.output()), \
        d.output()
    assert "Traceback" not in d.output()
    assert client.coordinators_alive() == 0


def test_queues_shows_waiting_and_a_live_coordinator(
        daemons: list[Daemon], env: dict[str, str], client: Client) -> None:
    first = ok(env, "enqueue", "q", "1").strip()
    ok(env, "enqueue", "q", "2", "--depends-on", first)
    ok(env, "enqueue", "q", "3", "--depends-on", first)
    assert "no coordinator alive" in ok(env, "queues")

    d = spawn_coordinator(daemons, env['CEYLON_REDIS_URL'], env['CEYLON_REDIS_PREFIX'])
    text = ok(env, "queues")
    # WAITING 2, READY 1, and the oldest ready task's age
    row = r"^q\s+2\s+0\s+1\s+0\s+0\s+0\s+0\s+[\d.]+m?s\s+0\s+0$"
    assert re.search(row, text, re.MULTILINE), text
    assert "coordinators alive: 1" in text
    assert "no coordinator alive" not in text
    data = json.loads(ok(env, "queues", "--json"))
    assert data["coordinators_alive"] == 1
    assert [(q["role"], q["waiting"], q["ready"]) for q in data["queues"]] == [("q", 2, 1)]

    assert d.stop() == 0
    assert "no coordinator alive" in ok(env, "queues")


# ---------------------------------------------------------------- worker --coordinator, stats


def test_worker_with_coordinator_keeps_stats(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    d = spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n", "--coordinator")
    d.wait_for("coordinator coordinator-")
    assert COORDINATOR_STARTED.search(d.output()), d.output()
    assert re.search(r"worker \S+ started: role=n ", d.output()), d.output()
    assert client.coordinators_alive() == 1

    good = [ok(env, "enqueue", "n", json.dumps({"value": i})).strip() for i in (1, 2, 3)]
    bad = ok(env, "enqueue", "n", '{"fail": true}').strip()
    idle = [ok(env, "enqueue", "idle", "{}").strip() for _ in range(2)]  # no worker for it
    assert ok(env, "cancel", idle[0]).strip() == f"{idle[0]} CANCELLED"
    client.wait_many([*good, bad], timeout=10)
    wait_until(lambda: client.stats().overall.finished == 5, 10, "the coordinator counted 5")

    st = json.loads(ok(env, "stats", "--json"))
    assert st["coordinators_alive"] == 1
    o = st["overall"]
    assert (o["role"], o["completed"], o["failed"], o["cancelled"], o["finished"]) == (
        "*", 3, 1, 1, 5)
    assert o["success_rate"] == pytest.approx(0.6)
    roles = {r["role"]: r for r in st["roles"]}
    assert sorted(roles) == ["idle", "n"]
    n, idl = roles["n"], roles["idle"]
    assert (n["completed"], n["failed"], n["cancelled"]) == (3, 1, 0)
    assert n["success_rate"] == pytest.approx(0.75)
    assert n["run"]["count"] == 4 and n["wait"]["count"] == 4
    assert sum(n["throughput"]) == 4 and len(n["throughput"]) == 60
    assert (idl["completed"], idl["failed"], idl["cancelled"]) == (0, 0, 1)
    assert idl["success_rate"] == 0.0

    only = json.loads(ok(env, "stats", "--role", "n", "--json"))
    assert [r["role"] for r in only["roles"]] == ["n"]
    assert (only["overall"]["completed"], only["overall"]["failed"],
            only["overall"]["cancelled"]) == (3, 1, 0)

    text = ok(env, "stats")
    rows = table_rows(text)
    assert sorted(rows) == ["all", "idle", "n"], text
    assert rows["n"][:4] == ["3", "1", "0", "75.0%"], text
    assert rows["idle"][:4] == ["0", "0", "1", "0.0%"], text
    assert rows["all"][:4] == ["3", "1", "1", "60.0%"], text
    assert "no coordinator alive" not in text
    assert sorted(table_rows(ok(env, "stats", "--role", "idle"))) == ["all", "idle"]

    assert d.stop() == 0
    assert re.search(r"coordinator coordinator-\S+ stopped: [1-9]\d* events applied",
                     d.output()), d.output()
    text = ok(env, "stats")
    assert "no coordinator alive" in text
    assert table_rows(text)["all"][:3] == ["3", "1", "1"]  # the figures stay


def test_stats_without_any_coordinator_says_so(env: dict[str, str]) -> None:
    text = ok(env, "stats")
    assert table_rows(text).keys() == {"all"}
    assert text.strip().splitlines()[-1].startswith("! no coordinator alive")
    assert json.loads(ok(env, "stats", "--json"))["coordinators_alive"] == 0


def test_stats_watch_refreshes_until_sigint(env: dict[str, str], client: Client) -> None:
    client.enqueue("w", 1)
    with subprocess.Popen([sys.executable, "-m", "ceylon_redis", "stats", "--watch", "0.2"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env=full_env(env)) as proc:
        killer = threading.Timer(15, proc.kill)  # a hung command fails the test, never blocks it
        killer.start()
        try:
            assert proc.stdout is not None and proc.stderr is not None
            seen: list[str] = []
            while sum(ln.startswith("ROLE ") for ln in seen) < 3:
                line = proc.stdout.readline()
                assert line, (seen, proc.stderr.read())
                seen.append(line)
            # Right after a table's first line, so most often mid-print: Ctrl-C lets the
            # refresh under way finish, then ends the wait at once.
            proc.send_signal(signal.SIGINT)
            rest = proc.stdout.read()  # (not communicate(): it would skip what readline buffered)
            err = proc.stderr.read()
            proc.wait(10)
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Aborted" not in err
    lines = [*(ln.rstrip("\n") for ln in seen), *rest.splitlines()]
    heads = [ln for ln in lines if ln.startswith("ROLE ")]
    assert len(heads) >= 3, lines
    assert sum(ln.startswith("all ") for ln in lines) == len(heads), lines
    # role w: nothing finished ("-" success rate), one task QUEUED, in every refresh
    assert sum(bool(re.match(r"w\s+0\s+0\s+0\s+-\s+0\s+0\s+1\s", ln)) for ln in lines
               ) == len(heads), lines


# ---------------------------------------------------------------- graph


def test_graph_shows_status_progress_and_failures(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n")
    graph = client.enqueue_graph([
        TaskDef("n", {"value": 1}, id="g-ok", name="fine"),
        TaskDef("n", {"fail": True}, id="g-bad", name="broken"),
        TaskDef("n", {}, id="g-child", depends_on=["g-bad"]),
        TaskDef("n", {}, id="g-after", depends_on=["g-ok"]),
    ])
    graph.wait(timeout=10)

    text = ok(env, "graph", graph.id)
    assert field(text, "graph") == graph.id
    assert field(text, "status") == "failed"
    assert field(text, "progress").startswith("4/4 (100%): 2 completed, 1 failed, 1 cancelled")
    assert field(text, "finished") != "-"
    listed = re.findall(r"^  (\S+)\s+n\s+(FAILED|CANCELLED|COMPLETED)\b", text, re.MULTILINE)
    assert sorted(listed) == [("g-bad", "FAILED"), ("g-child", "CANCELLED")], text
    assert re.search(r"g-bad .*broken\n\s+\S*.*node g-bad told to fail", text), text
    assert re.search(r"g-child .*\n\s+dependency g-bad ", text), text

    everything = ok(env, "graph", graph.id, "--tasks")
    listed = re.findall(r"^  (\S+)\s+n\s+(FAILED|CANCELLED|COMPLETED)\b", everything,
                        re.MULTILINE)
    assert sorted(listed) == [("g-after", "COMPLETED"), ("g-bad", "FAILED"),
                              ("g-child", "CANCELLED"), ("g-ok", "COMPLETED")], everything

    data = json.loads(ok(env, "graph", graph.id, "--json"))
    assert (data["id"], data["status"], data["done"], data["total"]) == (
        graph.id, "failed", 4, 4)
    assert (data["completed"], data["failed"], data["cancelled"]) == (2, 1, 1)
    tasks = {t["id"]: t for t in data["tasks"]}
    assert sorted(tasks) == ["g-after", "g-bad", "g-child", "g-ok"]
    assert tasks["g-bad"]["status"] == "FAILED" and "told to fail" in tasks["g-bad"]["error"]
    assert tasks["g-child"]["status"] == "CANCELLED"
    assert (tasks["g-ok"]["status"], tasks["g-ok"]["name"]) == ("COMPLETED", "fine")


def test_graph_running_then_cancel(env: dict[str, str], client: Client) -> None:
    graph = client.enqueue_graph([  # role with no worker: nothing runs
        TaskDef("nobody", {}, id="c-a"),
        TaskDef("nobody", {}, id="c-b", depends_on=["c-a"]),
        TaskDef("nobody", {}, id="c-c", depends_on=["c-b"]),
    ])
    text = ok(env, "graph", graph.id)
    assert field(text, "status") == "running"
    assert field(text, "progress").startswith("0/3 (0%)")
    assert field(text, "finished") == "-"
    assert not re.search(r"^  c-", text, re.MULTILINE)  # nothing failed: no task lines

    result = invoke(env, "graph", graph.id, "--cancel")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "cancelled 3 tasks"
    assert field(result.stdout, "status") == "cancelled"
    assert field(result.stdout, "progress").startswith("3/3 (100%): 0 completed, 0 failed, "
                                                        "3 cancelled")
    assert re.search(rf"^  c-a .*CANCELLED.*\n\s+graph {graph.id} cancelled", result.stdout,
                     re.MULTILINE), result.stdout
    assert [client.get(t).status for t in graph.task_ids()] == [TaskStatus.CANCELLED] * 3
    assert graph.info().status == "cancelled"

    again = invoke(env, "graph", graph.id, "--cancel", "--json")
    assert again.exit_code == 0 and again.stderr.strip() == "cancelled 0 tasks"
    assert json.loads(again.stdout)["status"] == "cancelled"


def test_graph_retry_failed_reruns_it(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client, sync_redis: redis.Redis) -> None:
    spawn_worker(daemons, redis_url, prefix, FLAKY, "--role", "f")
    fail_key = "{" + prefix + "}:test:fail:r-mid"
    sync_redis.set(fail_key, 1)
    graph = client.enqueue_graph([
        TaskDef("f", {}, id="r-root"),
        TaskDef("f", {}, id="r-mid", depends_on=["r-root"]),
        TaskDef("f", {}, id="r-end", depends_on=["r-mid"]),
    ])
    graph.wait(timeout=10)
    text = ok(env, "graph", graph.id)
    assert field(text, "status") == "failed"
    assert field(text, "progress").startswith("3/3 (100%): 1 completed, 1 failed, 1 cancelled")
    assert "r-mid is told to fail" in text

    sync_redis.delete(fail_key)
    result = invoke(env, "graph", graph.id, "--retry-failed")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "retrying 2 tasks"
    assert field(result.stdout, "status") in ("running", "completed")  # the worker is quick

    results = {r.task_id: r for r in graph.wait(timeout=10)}
    assert all(r.success for r in results.values()), results
    data = json.loads(ok(env, "graph", graph.id, "--json"))
    assert (data["status"], data["done"], data["total"], data["completed"]) == (
        "completed", 3, 3, 3)
    assert [int(sync_redis.get(runs_key(prefix, t)) or 0)
            for t in ("r-root", "r-mid", "r-end")] == [1, 2, 1]

    result = invoke(env, "graph", graph.id, "--retry-failed")
    assert result.stderr.strip() == "retrying 0 tasks"


def test_graph_unknown_id_is_one_error_line(env: dict[str, str]) -> None:
    for args in (["graph", "no-such-graph"], ["graph", "no-such-graph", "--json"],
                 ["graph", "no-such-graph", "--cancel"]):
        proc = cli(env, *args)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == ""
        assert "no-such-graph" in assert_one_error_line(proc.stderr)


# ---------------------------------------------------------------- cancel


def test_cancel_a_queued_task(env: dict[str, str], client: Client) -> None:
    tid = ok(env, "enqueue", "nobody", '{"x": 1}').strip()
    dependent = ok(env, "enqueue", "nobody", "{}", "--depends-on", tid).strip()

    assert ok(env, "cancel", tid, "--reason", "not needed").strip() == f"{tid} CANCELLED"
    text = ok(env, "task", tid)
    assert field(text, "status") == "CANCELLED"
    assert field(text, "error") == "not needed"
    assert client.get(dependent).status is TaskStatus.CANCELLED  # settles as for a failure

    assert ok(env, "cancel", tid).strip() == f"{tid} was already CANCELLED"

    proc = cli(env, "cancel", "no-such-task")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "no-such-task" in assert_one_error_line(proc.stderr)


# ---------------------------------------------------------------- enqueue --depends-on


def test_enqueue_depends_on_with_on_failure_run(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str],
        client: Client) -> None:
    ok(env, "enqueue", "n", '{"fail": true}', "--id", "x")
    ok(env, "enqueue", "n", '{"value": 2}', "--id", "y")
    ok(env, "enqueue", "n", '{"value": 5}', "--id", "runs", "--depends-on", "x",
       "--depends-on", "y", "--on-failure", "run")
    ok(env, "enqueue", "n", '{"value": 7}', "--id", "skipped", "--depends-on", "x")
    assert client.get("runs").status is TaskStatus.WAITING
    assert re.search(r"^depends on:\s+x y$", ok(env, "task", "runs"), re.MULTILINE)

    spawn_worker(daemons, redis_url, prefix, NODE, "--role", "n")
    assert client.wait("x", timeout=10).status is TaskStatus.FAILED

    out = json.loads(ok(env, "task", "runs", "--json"))
    if out["status"] != "COMPLETED":
        client.wait("runs", timeout=10)
        out = json.loads(ok(env, "task", "runs", "--json"))
    assert out["status"] == "COMPLETED"
    assert out["result"]["output"] == {"sum": 7, "failed": ["x"]}
    assert client.wait("skipped", timeout=10).status is TaskStatus.CANCELLED

    # enqueued after the failure: the default policy refuses it, --on-failure run runs it
    proc = cli(env, "enqueue", "n", "{}", "--id", "late", "--depends-on", "x")
    assert proc.returncode == 1
    assert "prerequisite x of task late is FAILED" in assert_one_error_line(proc.stderr)
    proc = cli(env, "enqueue", "n", '{"value": 1}', "--depends-on", "x", "--on-failure", "run",
               "--wait", "--timeout", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert (res["status"], res["output"]) == ("COMPLETED", {"sum": 1, "failed": ["x"]})
