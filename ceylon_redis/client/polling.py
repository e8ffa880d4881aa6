"""Time limits of the clients' polling loops (shared by both, so not generated)."""

from __future__ import annotations

import time


class Deadline:
    """A time limit of ``timeout`` seconds from now (None: none)."""

    __slots__ = ("at",)

    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else time.monotonic() + timeout

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def cap(self, seconds: float) -> float:
        """``seconds``, or less when the limit comes sooner."""
        return seconds if self.at is None else max(0.0, min(seconds, self.at - time.monotonic()))
