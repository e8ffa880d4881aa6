"""How the daemons stop: bounded shutdown waits, a hard exit deadline, stack dumps.

A daemon told to stop must stop, even when something it waits on never answers:
each shutdown step waits a bounded time and names what it left behind, and a
watchdog thread ends the process if the whole shutdown overruns. Tasks left in
flight are not lost: the reaper re-runs them once the heartbeat lapses.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Iterable
from typing import Any

from loguru import logger

from .settings import Settings

EXIT_STUCK = 70
"""Exit status of a daemon the watchdog ended (EX_SOFTWARE)."""
STEP_WAIT = 5.0
"""Seconds a shutdown step that needs no grace (cancelled loops, closing) may take."""



async def paused(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, less if ``stop`` is set; True once it is. A background loop that
    ends on it ends even when the cancel meant to end it is lost (one landing as a pooled
    connection is handed over can be swallowed: the shutdown then waited STEP_WAIT)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


_loop: asyncio.AbstractEventLoop | None = None
"""The daemon's event loop, whose tasks a dump shows (also from the watchdog thread)."""


def shutdown_budget(settings: Settings, grace: float = 0.0) -> float:
    """Seconds a daemon's stop may take: ``grace`` for running tasks, a blocking read and
    the last writes each through an outage, and the bounded steps."""
    return grace + 2 * (settings.socket_timeout + settings.block_ms / 1000) + 2 * STEP_WAIT


def dump_stacks() -> None:
    """Every thread's stack and every asyncio task's, to stderr."""
    faulthandler.dump_traceback(all_threads=True)
    try:  # from the watchdog thread the loop's tasks can change under us
        tasks = list(asyncio.all_tasks(_loop)) if _loop is not None else []
        print(f"--- {len(tasks)} asyncio tasks ---", file=sys.stderr)
        for task in tasks:
            print(f"{task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
            task.print_stack(limit=20, file=sys.stderr)
    except Exception as exc:
        print(f"(asyncio tasks unavailable: {exc!r})", file=sys.stderr)
    sys.stderr.flush()


def install_stack_dumps() -> None:
    """``kill -USR1``: dump every stack (call from the daemon's running event loop)."""
    global _loop
    _loop = asyncio.get_running_loop()
    _loop.add_signal_handler(signal.SIGUSR1, dump_stacks)


def arm_exit_deadline(seconds: float, who: str) -> threading.Timer:
    """End the process ``seconds`` from now unless it has exited: dump stacks, exit 70."""

    def overrun() -> None:
        logger.error("{} still not stopped {:.0f} s after being told to; stacks follow; "
                     "exiting (the reaper re-runs its tasks)", who, seconds)
        dump_stacks()
        os._exit(EXIT_STUCK)

    timer = threading.Timer(seconds, overrun)
    timer.daemon = True
    timer.start()
    return timer


async def wait_or_abandon(tasks: Iterable[asyncio.Task[Any]], seconds: float,
                          step: str) -> bool:
    """Wait up to ``seconds`` for ``tasks``; log each one still running and go on without it.

    Returns whether all finished.
    """
    tasks = set(tasks)
    if not tasks:
        return True
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        frames = task.get_stack(limit=1)
        where = (f"{frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames
                 else "unknown")
        logger.error("shutdown ({}): {} still running after {:.0f} s at {}; going on without it",
                     step, task.get_name(), seconds, where)
    return not pending
