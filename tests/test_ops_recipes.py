"""Every redis-cli recipe in docs/operations.md, run against a real Redis holding the state
the doc describes, prints what the doc says it prints.

A recipe is a ```console block of ``$ redis-cli ...`` lines, each followed by its
output as redis-cli shows it in a terminal (``--no-raw``). In the expected output
``…`` stands for any text (ids, times). The doc's namespace ``{ceylon}`` is
replaced by the test's own.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from ceylon_redis import Client
from tests.conftest import Daemon, spawn_worker
from tests.test_integration import wait_until

pytestmark = pytest.mark.redis

DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
H = "tests.handlers_for_tests:"


def recipes() -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) for every ``$ redis-cli`` line of the doc."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            found.append((command, output))
    return found


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, actual) is not None


@pytest.fixture
def documented_state(redis_url: str, prefix: str, own_daemons: list[Daemon],
                     client: Client) -> Client:
    """Three resize tasks queued (no worker for them), a report waiting on them, one resize
    task delayed an hour, one long task running on a worker, one dead letter, a schedule,
    a limited role with one task at priority 9."""
    for tid in ("r1", "r2", "r3"):
        client.enqueue("resize", {"path": f"img/{tid}.png"}, task_id=tid)
    client.enqueue("report", {"title": "daily"}, task_id="rep-1", depends_on=["r1", "r2", "r3"])
    client.enqueue("resize", {"path": "img/later.png"}, task_id="later-1", delay=3600)
    boom = spawn_worker(own_daemons, redis_url, prefix, H + "boom", "--role", "thumbnail")
    client.enqueue("thumbnail", {"path": "img/broken.png"}, task_id="t-9")
    client.wait("t-9", timeout=10)
    assert boom.stop() == 0
    spawn_worker(own_daemons, redis_url, prefix, H + "slow", "--role", "long")
    client.enqueue("long", 60, task_id="long-1")
    wait_until(lambda: client.get("long-1").status.value == "RUNNING", 10, "long-1 to run")
    client.add_schedule("nightly", "report", {"title": "nightly"}, cron="30 2 * * *",
                        tz="Europe/Paris")
    client.set_limit("render", rate="100/s", concurrency=20)
    client.enqueue("render", {"path": "img/poster.png"}, task_id="poster-1", priority=9)
    return client


def test_doc_has_recipes() -> None:
    assert len(recipes()) >= 10


def test_each_redis_cli_recipe_prints_what_the_doc_says(
        documented_state: Client, redis_url: str, prefix: str) -> None:
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli not installed")
    url = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    base = ["redis-cli", "--no-raw", "-h", str(url.get("host", "localhost")), "-p",
            str(url.get("port", 6379)), "-n", str(url.get("db", 0))]
    for command, expected in recipes():
        args = shlex.split(command.replace("{ceylon}", "{" + prefix + "}"))
        assert args[0] == "redis-cli", command
        out = subprocess.run(base + args[1:], capture_output=True, text=True, timeout=10,
                             check=True).stdout.rstrip("\n").split("\n")
        assert len(out) == len(expected) and all(
            _matches(e, a) for e, a in zip(expected, out)), (
            f"\n$ {command}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + "\n".join(out))
