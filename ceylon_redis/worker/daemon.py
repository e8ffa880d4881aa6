"""``ceylon-redis worker``: run a ``Worker`` as a daemon until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from ..lifecycle import arm_exit_deadline, install_stack_dumps
from .worker import Worker


async def run_worker(handlers: Any, **options: Any) -> None:
    """Run a Worker until SIGINT or SIGTERM, then drain and exit (for the CLI)."""
    import signal

    worker = Worker(handlers, **options)
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signame: str) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.info("{} received: finishing in-flight tasks, then exiting", signame)
            arm_exit_deadline(worker.shutdown_budget() + 10, "worker")
            worker.stop()
        else:
            logger.warning("{} received again: cancelling in-flight tasks", signame)
            worker.grace = 0
            worker.stop()
            for c in worker.consumers:
                for t in c.inflight.values():
                    t.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    install_stack_dumps()
    await worker.run()
    abandoned = sum(c.slots.stragglers for c in worker._firsts)
    if abandoned:  # daemon threads: the process exits without waiting for them
        logger.warning("exiting without {} sync handler threads that still run (their tasks "
                       "were given back)", abandoned)
