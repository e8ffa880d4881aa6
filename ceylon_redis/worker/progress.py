"""Progress from running attempts: what handlers report is coalesced per task and written
every ``progress_interval`` seconds, all of a worker's tasks in one progress.lua call per
consumer, fenced there like a finish (a reclaimed or ended attempt's report is refused)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loguru import logger

from ..lifecycle import paused
from ..outages import is_outage
from ..progress import check_fraction, encode_info, stored_fraction
from .state import Consumer, Runtime

Report = Callable[[Any, Any], None]
"""Reports ``(fraction, info)`` for one attempt (``TaskContext.progress``)."""


class ProgressWriter:
    """Holds the latest report of each running attempt until the next write."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lock = threading.Lock()  # sync handlers report from their threads
        self._pending: dict[tuple[Consumer, str, int], tuple[float, str]] = {}
        self._open: set[tuple[Consumer, str, int]] = set()
        """Attempts running here: a report of one that ended (a sync thread that ran on past
        its time limit) is dropped."""
        self.written = 0
        self.refused = 0

    def reporter(self, c: Consumer, task_id: str, attempt: int) -> Report:
        """The report function of one attempt; it checks its input at once (a bad value
        raises in the handler) and returns without waiting on Redis."""
        key = (c, task_id, attempt)
        with self._lock:
            self._open.add(key)

        def report(fraction: Any, info: Any = None) -> None:
            value, text = check_fraction(fraction), "" if info is None else encode_info(info)
            with self._lock:
                if key in self._open:
                    self._pending[key] = (value, text)
        return report

    def discard(self, c: Consumer, task_id: str, attempt: int) -> None:
        """An attempt ended: forget its unwritten report (its outcome says more), and any
        it makes from now on."""
        key = (c, task_id, attempt)
        with self._lock:
            self._open.discard(key)
            self._pending.pop(key, None)

    async def loop(self) -> None:
        """Write what was reported, every ``progress_interval`` seconds, until the worker
        winds down."""
        while not await paused(self.rt.winding_down, self.rt.settings.progress_interval):
            await self.write()

    async def write(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        calls: dict[Consumer, list[Any]] = {}
        for (c, tid, attempt), (value, text) in batch.items():
            calls.setdefault(c, [c.id, c.role]).extend(
                (tid, attempt, stored_fraction(value), text))
        try:
            replies = await self.rt.call_each(self.rt.scripts.progress, list(calls.items()))
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.warning("could not write the progress of {} tasks ({}); trying again",
                           len(batch), exc)
            with self._lock:  # unless a newer report came, or the attempt ended, meanwhile
                for key, report in batch.items():
                    if key in self._open:
                        self._pending.setdefault(key, report)
            return
        refused = sum(len(r) for r in replies)
        self.written += len(batch) - refused
        self.refused += refused
        for r in replies:
            for tid in r:
                logger.debug("progress of task {} refused: its attempt no longer runs here",
                             tid.decode())
