"""What a task is, how it ended, and who ran it: the public data types."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskStatus(str, Enum):
    """Where a task is in its life. COMPLETED, FAILED and CANCELLED are final."""

    WAITING = "WAITING"
    """Enqueued; waits for prerequisites to complete."""
    PENDING = "WAITING"  # Ceylon's name for the same state (an alias)
    QUEUED = "QUEUED"
    """On its role's stream, ready for a worker."""
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskResult(BaseModel):
    """How a task ended: ``success``, its ``output`` (any decoded value) and an ``error`` text."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    success: bool
    output: Any = None
    error: str | None = None
    task_id: str | None = None
    status: TaskStatus | None = None


class TaskInfo(BaseModel):
    """Everything Redis knows of one task: ``client.get(task_id)``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    role: str
    name: str = ""
    status: TaskStatus
    attempt: int = 0
    """Attempts started so far (a worker crash counts as one)."""
    max_attempts: int = 1
    worker: str | None = None
    """The worker that ran (or runs) the latest attempt."""
    depends_on: list[str] = Field(default_factory=list)
    enqueued_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    data: Any = None
    result: TaskResult | None = None
    """Set once the task is final."""
    error: str | None = None
    """The latest error, also of an attempt that is being retried."""

    @property
    def queue_wait(self) -> float | None:
        """Seconds from enqueue to the start of the latest attempt."""
        if self.enqueued_at and self.started_at:
            return (self.started_at - self.enqueued_at).total_seconds()
        return None

    @property
    def run_time(self) -> float | None:
        """Seconds the latest attempt ran."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class WorkerInfo(BaseModel):
    """A registered worker daemon, as its heartbeat describes it."""

    id: str
    roles: list[str]
    host: str = ""
    pid: int = 0
    concurrency: int = 0
    started_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    alive: bool = True


class QueueInfo(BaseModel):
    """One role's queue as ``ceylon-redis queues`` shows it."""

    role: str
    ready: int
    """Entries on the stream not yet delivered to a worker."""
    running: int
    """Entries delivered and not yet acknowledged."""
    consumers: int
    workers_alive: int
