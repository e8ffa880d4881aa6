"""Daemons always stop: bounded shutdown steps, a hard exit deadline, stack dumps on SIGUSR1,
and sync handler threads that run on do not keep a stopped worker alive."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from loguru import logger

from ceylon_redis import Client
from ceylon_redis.lifecycle import EXIT_STUCK, wait_or_abandon
from tests.conftest import ROOT, Daemon, spawn_worker

H = "tests.handlers_for_tests:"


def test_the_exit_deadline_dumps_stacks_and_exits_70() -> None:
    code = ("import time\nfrom loguru import logger\n"
            "from ceylon_redis.lifecycle import arm_exit_deadline\n"
            "logger.enable('ceylon_redis')\n"
            "arm_exit_deadline(0.5, 'worker')\ndef stuck_here():\n    time.sleep(30)\n"
            "stuck_here()\n")
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=20)

    assert proc.returncode == EXIT_STUCK == 70
    assert time.monotonic() - began < 10
    assert "worker still not stopped 0 s after being told to" in proc.stderr
    assert "stacks follow" in proc.stderr
    assert "in stuck_here" in proc.stderr  # the main thread's stack


async def test_a_task_that_ignores_cancel_is_named_and_left_behind() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # swallows every cancel

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    polite = asyncio.create_task(asyncio.sleep(10), name="polite")
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR")
    logger.enable("ceylon_redis")
    await asyncio.sleep(0)  # both start
    try:
        task.cancel()
        polite.cancel()
        began = time.monotonic()
        assert await wait_or_abandon({task, polite}, 0.3, "background tasks") is False
        assert time.monotonic() - began < 2
    finally:
        logger.remove(sink)
        logger.disable("ceylon_redis")
        release.set()
        task.cancel()
        await asyncio.wait({task}, timeout=1)
    assert polite.cancelled()
    assert len(lines) == 1, lines
    assert "stubborn-loop still running" in lines[0] and "test_lifecycle.py" in lines[0]


@pytest.mark.redis
def test_sigusr1_dumps_every_asyncio_task_and_the_worker_runs_on(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    worker = spawn_worker(daemons, redis_url, prefix, H + "echo", "--role", "e")

    worker.proc.send_signal(signal.SIGUSR1)
    worker.wait_for("asyncio tasks ---")
    worker.wait_for("ceylon-redis-heartbeat")

    assert worker.proc.poll() is None
    assert client.wait(client.enqueue("e", 1), timeout=10).output == {"echo": 1}
    assert worker.stop() == 0


@pytest.mark.redis
def test_a_sync_thread_that_runs_on_does_not_keep_a_stopped_worker_alive(
        redis_url: str, prefix: str, daemons: list[Daemon], client: Client) -> None:
    worker = spawn_worker(daemons, redis_url, prefix, H + "record_sync", "--role", "s",
                          "--grace", "0.5")
    ids = client.enqueue_many("s", [{"sleep": 600}] * 2)
    deadline = time.monotonic() + 10
    while client.queues()[0].running < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    began = time.monotonic()
    assert worker.stop(timeout=15) == 0
    took = time.monotonic() - began

    assert took < 5, took
    out = worker.output()
    assert "exiting without 2 sync handler threads that still run" in out, out
    assert [client.get(t).status.value for t in ids] == ["QUEUED", "QUEUED"]  # given back
