"""Test-only fault injection: a daemon kills itself (SIGKILL) at a named step of a task's path.

Set ``CEYLON_REDIS_FAULT=STEP`` (or ``STEP:N`` to die the N-th time the step
is reached) in a worker's or coordinator's environment. Daemons read it once
at start and only when it is set; unset, every check is one ``is None`` test.
The steps, in a task's order (see docs/architecture.md, "Crash points"):

- ``after-read``: entries read from the stream, ``start`` not yet called;
- ``after-start``: the attempt is RUNNING under this worker, the handler not begun;
- ``mid-run``: the handler has run for 50 ms and has not returned;
- ``before-finish``: outcomes are in hand, ``finish`` not yet called;
- ``after-finish``: ``finish`` applied (result, ack, event and release in one
  script), its reply not yet acted on;
- ``coordinator-after-read``: events read, not yet counted;
- ``coordinator-after-apply``: events counted and acknowledged.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

from .errors import ValidationError

ENV = "CEYLON_REDIS_FAULT"
WORKER_STEPS = ("after-read", "after-start", "mid-run", "before-finish", "after-finish")
COORDINATOR_STEPS = ("coordinator-after-read", "coordinator-after-apply")
MID_RUN_DELAY = 0.05
"""Seconds into a handler's run at which ``mid-run`` fires."""


@dataclass
class Fault:
    """Die at ``step`` the ``nth`` time it is reached."""

    step: str
    nth: int = 1
    seen: int = 0

    def reached(self, step: str) -> None:
        """Kill this process with SIGKILL if ``step`` is the armed one, reached for the nth time."""
        if step != self.step:
            return
        self.seen += 1
        if self.seen >= self.nth:
            sys.stderr.write(f"fault injected: killed at {step}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def fault_from_env() -> Fault | None:
    """The fault ``CEYLON_REDIS_FAULT`` arms, or None when it is unset."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    step, _, nth = raw.partition(":")
    if step not in WORKER_STEPS + COORDINATOR_STEPS:
        raise ValidationError(f"{ENV}={raw!r}: unknown step {step!r}; one of "
                              + ", ".join(WORKER_STEPS + COORDINATOR_STEPS))
    if nth and (not nth.isdigit() or int(nth) < 1):
        raise ValidationError(f"{ENV}={raw!r}: the count after ':' must be a positive integer")
    return Fault(step, int(nth or 1))
