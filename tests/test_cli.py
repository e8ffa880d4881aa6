"""The ``ceylon-redis`` command on a real Redis: in-process (CliRunner) and as a subprocess.

Every invocation is pointed at the test's own namespace (``--prefix`` or
CEYLON_REDIS_PREFIX), also those meant to fail, so that nothing can land in
another namespace of the shared server.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import redis

from ceylon_redis import Client
from ceylon_redis.cli import main
from tests.cli_support import assert_one_error_line, cli, invoke
from tests.conftest import Daemon, spawn_worker

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("restore_loguru")]

ROOT = Path(__file__).resolve().parent.parent
H = "tests.handlers_for_tests:"
UNREACHABLE = "redis://127.0.0.1:1"
SECRET_UNREACHABLE = "redis://user:secret@127.0.0.1:1/0"


def no_keys(redis_url: str, prefix: str) -> bool:
    r = redis.Redis.from_url(redis_url)
    try:
        return not list(r.scan_iter(match="{" + prefix + "}:*"))
    finally:
        r.close()


# ---------------------------------------------------------------- enqueue


def test_enqueue_prints_a_new_id(env: dict[str, str], client: Client) -> None:
    result = invoke(env, "enqueue", "resize", '{"path": "a.png"}', "--name", "first")

    assert result.exit_code == 0, result.output
    tid = result.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_.]{16}", tid), result.stdout
    info = client.get(tid)
    assert (info.role, info.name, info.status.value, info.data) == (
        "resize", "first", "QUEUED", {"path": "a.png"})

    result = invoke(env, "enqueue", "resize")  # DATA defaults to null
    assert result.exit_code == 0
    assert client.get(result.stdout.strip()).data is None


def test_enqueue_subprocess_with_id_and_json(env: dict[str, str], client: Client) -> None:
    proc = cli(env, "enqueue", "resize", "[1, 2]", "--id", "job-1")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "job-1\n", "")
    assert client.get("job-1").data == [1, 2]

    proc = cli(env, "enqueue", "resize", "{}", "--id", "job-2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"id": "job-2"}

    proc = cli(env, "enqueue", "resize", "{}", "--id", "job-1")  # taken
    assert proc.returncode == 1
    assert "job-1 already exists" in assert_one_error_line(proc.stderr)


def test_enqueue_wait_prints_the_output(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS")  # roles dbl and bad

    result = invoke(env, "enqueue", "dbl", "21", "--wait", "--timeout", "10")

    assert result.exit_code == 0, result.output
    head, body = result.stdout.strip().splitlines()
    tid, status = head.split()
    assert (status, body) == ("COMPLETED", "42")

    proc = cli(env, "enqueue", "dbl", "5", "--wait", "--timeout", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["success"], out["output"], out["status"]) == (True, 10, "COMPLETED")

    info = json.loads(invoke(env, "task", tid, "--json").stdout)
    assert (info["status"], info["attempt"], info["result"]["output"]) == ("COMPLETED", 1, 42)
    assert info["worker"].startswith("doubler-")


def test_enqueue_wait_exits_3_when_the_handler_raises(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "PROCESSORS")

    result = invoke(env, "enqueue", "bad", '"x"', "--wait", "--timeout", "10")

    assert result.exit_code == 3, result.output
    head, body = result.stdout.strip().splitlines()
    assert head.endswith(" FAILED")
    assert body.startswith("error: RuntimeError: failer refuses 'x'")


def test_enqueue_wait_exits_4_on_timeout_without_workers(
        env: dict[str, str], client: Client) -> None:
    began = time.monotonic()
    proc = cli(env, "enqueue", "nobody", "{}", "--id", "t-4", "--wait", "--timeout", "0.3")

    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == ""
    assert "t-4" in assert_one_error_line(proc.stderr)
    assert time.monotonic() - began < 10
    assert client.get("t-4").status.value == "QUEUED"


def test_bad_json_data_is_a_usage_error(
        env: dict[str, str], redis_url: str, prefix: str) -> None:
    result = invoke(env, "enqueue", "r", "{not json")
    assert result.exit_code == 2
    assert "not JSON" in result.stderr

    proc = cli(env, "enqueue", "r", "[1,")
    assert proc.returncode == 2
    assert "Usage:" in proc.stderr and "not JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert no_keys(redis_url, prefix)


# ---------------------------------------------------------------- inspection


def test_task_json_and_text(env: dict[str, str], client: Client) -> None:
    tid = client.enqueue("resize", {"w": 3}, name="thumb")

    result = invoke(env, "task", tid, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["id"], info["role"], info["name"], info["status"], info["attempt"]) == (
        tid, "resize", "thumb", "QUEUED", 0)
    assert info["data"] == {"w": 3} and info["result"] is None

    text = invoke(env, "task", tid).stdout
    assert re.search(r"^status:\s+QUEUED$", text, re.MULTILINE), text
    assert re.search(r"^attempt:\s+0/default$", text, re.MULTILINE), text

    result = invoke(env, "task", "no-such-task")
    assert result.exit_code == 1
    assert "unknown task no-such-task" in assert_one_error_line(result.stderr)


def test_queues_json_and_text(env: dict[str, str], client: Client) -> None:
    assert invoke(env, "queues").stdout.strip() == "no queues yet"
    client.enqueue_many("q1", [1, 2])

    proc = cli(env, "queues", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    age = data["queues"][0].pop("oldest_ready_age")
    assert 0 <= age < 30
    assert data == {"queues": [
        {"role": "q1", "waiting": 0, "scheduled": 0, "ready": 2, "running": 0, "consumers": 0,
         "workers_alive": 0, "schedules": 0, "held": 0, "dead": 0}], "coordinators_alive": 0,
        "dead_letters": 0, "workers_late": []}

    client.enqueue("q1", 3, depends_on=client.enqueue_many("q1", [4]))
    text = invoke(env, "queues").stdout
    row = r"^q1\s+1\s+0\s+3\s+0\s+0\s+0\s+0\s+[\d.]+m?s\s+0\s+0$"
    assert re.search(row, text, re.MULTILINE), text
    assert "3 tasks wait for role 'q1', and no worker of it is alive" in text
    assert "no coordinator alive" in text and "1 waiting task is released" in text


def test_workers_lists_a_running_daemon(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    d = spawn_worker(daemons, redis_url, prefix, H + "echo", "--role", "listed")

    proc = cli(env, "workers")
    assert proc.returncode == 0, proc.stderr
    (row,) = proc.stdout.strip().splitlines()[1:]
    wid, role, _host, pid, _last_beat, state = row.split()
    assert wid.startswith("echo-") and (role, pid, state) == ("listed", str(d.proc.pid), "alive")

    (w,) = json.loads(invoke(env, "workers", "--json").stdout)
    assert (w["id"], w["roles"], w["pid"], w["alive"]) == (wid, ["listed"], d.proc.pid, True)

    assert d.stop() == 0
    assert invoke(env, "workers").stdout.strip() == "no workers registered"


# ---------------------------------------------------------------- errors

COMMANDS = [
    pytest.param(["enqueue", "r", "{}"], id="enqueue"),
    pytest.param(["enqueue", "r", "{}", "--wait", "--timeout", "2"], id="enqueue-wait"),
    pytest.param(["task", "abc"], id="task"),
    pytest.param(["queues"], id="queues"),
    pytest.param(["workers", "--json"], id="workers"),
    pytest.param(["stats"], id="stats"),
    pytest.param(["stats", "--watch", "1"], id="stats-watch"),
    pytest.param(["cancel", "abc"], id="cancel"),
    pytest.param(["purge", "r", "--yes"], id="purge"),
    pytest.param(["graph", "g"], id="graph"),
    pytest.param(["dead", "list"], id="dead-list"),
    pytest.param(["dead", "show", "abc"], id="dead-show"),
    pytest.param(["dead", "retry", "abc"], id="dead-retry"),
    pytest.param(["dead", "purge", "--all"], id="dead-purge"),
    pytest.param(["metrics", "--once"], id="metrics"),
]


def leaf_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> list[list[str]]:
    """Every runnable command of the CLI, as the words that name it."""
    out: list[list[str]] = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += leaf_commands(cmd, (*path, name))
        else:
            out.append([*path, name])
    return out


@pytest.mark.parametrize("words", leaf_commands(), ids=" ".join)
def test_every_command_answers_a_bad_option_with_usage_exit_2(
        words: list[str], prefix: str) -> None:
    result = invoke({"CEYLON_REDIS_PREFIX": prefix}, *words, "--no-such-option")

    assert result.exit_code == 2, result.output
    assert "No such option" in result.stderr and "--no-such-option" in result.stderr
    assert "Usage:" in result.stderr


def test_a_bad_option_value_is_exit_2_as_a_subprocess(prefix: str) -> None:
    proc = cli({"CEYLON_REDIS_PREFIX": prefix}, "worker", H + "echo", "--role", "r",
               "--concurrency", "0")

    assert proc.returncode == 2, proc.stderr
    assert "Invalid value for '--concurrency'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [
    *COMMANDS, pytest.param(["worker", H + "echo", "--role", "r"], id="worker")])
def test_unreachable_redis_is_one_error_line(args: list[str], prefix: str) -> None:
    proc = cli({"CEYLON_REDIS_PREFIX": prefix}, *args, "--url", UNREACHABLE)

    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    line = assert_one_error_line(proc.stderr)
    assert line.startswith(f"error: cannot reach Redis at {UNREACHABLE}")


@pytest.mark.parametrize("args", COMMANDS)
def test_password_in_url_is_never_printed(args: list[str], redis_url: str, prefix: str) -> None:
    wrong_user = redis_url.replace("://", "://nosuchuser:secret@", 1)  # the real server: WRONGPASS
    for url in (SECRET_UNREACHABLE, wrong_user):
        for result in (invoke({"CEYLON_REDIS_PREFIX": prefix}, *args, "--url", url),
                       invoke({"CEYLON_REDIS_PREFIX": prefix, "CEYLON_REDIS_URL": url}, *args)):
            assert result.exit_code == 1, result.output
            line = assert_one_error_line(result.stderr)
            assert "secret" not in result.stdout + result.stderr
            assert ":***@" in line
    assert no_keys(redis_url, prefix)


def test_worker_daemon_never_prints_the_password(prefix: str) -> None:
    proc = cli({"CEYLON_REDIS_PREFIX": prefix, "CEYLON_REDIS_URL": SECRET_UNREACHABLE},
               "worker", H + "echo", "--role", "r")

    assert proc.returncode == 1
    assert "secret" not in proc.stdout + proc.stderr
    assert "redis://user:***@127.0.0.1:1/0" in assert_one_error_line(proc.stderr)


def test_worker_with_unknown_target_exits_1_with_a_clear_message(env: dict[str, str]) -> None:
    proc = cli(env, "worker", "nosuchmodule:x", "--role", "r")
    assert proc.returncode == 1
    assert assert_one_error_line(proc.stderr).startswith(
        "error: cannot import module 'nosuchmodule'")

    for args, message in [
            (["worker", H + "nothere", "--role", "r"], "has no 'nothere'"),
            (["worker", H + "echo"], "a role is needed"),
            (["worker", "no-colon", "--role", "r"], "expected MODULE:OBJECT")]:
        result = invoke(env, *args)
        assert result.exit_code == 1, result.output
        assert message in assert_one_error_line(result.stderr)


# ---------------------------------------------------------------- known bugs (see report)


@dataclass
class Size:
    w: int
    h: int


@pytest.mark.parametrize("data", [
    pytest.param(Size(3, 4), id="dataclass"), pytest.param(b"\xff\x00", id="bytes")])
def test_task_shows_a_task_whose_data_json_cannot_carry(
        data: object, env: dict[str, str], client: Client) -> None:
    tid = client.enqueue("r", {"v": data})

    for args in (["task", tid], ["task", tid, "--json"]):
        proc = cli(env, *args)
        assert proc.returncode == 0, proc.stderr[-600:]
        assert "Traceback" not in proc.stderr


def test_enqueue_wait_prints_a_dataclass_output(
        redis_url: str, prefix: str, daemons: list[Daemon], env: dict[str, str]) -> None:
    spawn_worker(daemons, redis_url, prefix, H + "make_point", "--role", "pt")

    proc = cli(env, "enqueue", "pt", '{"x": 1, "y": 2}', "--wait", "--timeout", "10")

    assert proc.returncode == 0, proc.stderr[-600:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/0", "redis://127.0.0.1:notaport/0"])
def test_malformed_url_is_one_error_line(url: str, prefix: str) -> None:
    proc = cli({"CEYLON_REDIS_PREFIX": prefix}, "queues", "--url", url)

    assert proc.returncode in (1, 2), proc.stderr  # 1: error line; 2: a usage error on --url
    assert "Traceback" not in proc.stderr, proc.stderr[-600:]
    assert proc.stderr.strip().splitlines()[-1].lower().startswith("error:")
