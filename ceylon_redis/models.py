"""What a task is, how it ended, and who ran it: the public data types."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OnFailure = Literal["cancel", "run", "ignore"]
"""What a dependent does when a prerequisite fails or is cancelled: end CANCELLED with
the reason (the default), run anyway with the failure listed, or ignore that edge."""


class TaskStatus(str, Enum):
    """Where a task is in its life. COMPLETED, FAILED and CANCELLED are final."""

    WAITING = "WAITING"
    """Enqueued; waits for prerequisites to complete."""
    PENDING = "WAITING"  # Ceylon's name for the same state (an alias)
    SCHEDULED = "SCHEDULED"
    """Held until a time: enqueued with a delay, or a retry waiting out its backoff."""
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
    crashes: int = 0
    """Attempts lost with their worker (killed, or its heartbeat lapsed). They do not spend
    ``max_attempts``; a task lost a 4th time is failed and dead-lettered (a poison task?)."""
    max_attempts: int | None = None
    """None: the worker's default (``Settings.max_attempts``) applies."""
    timeout: float | None = None
    """Seconds an attempt may run, if enqueued with its own limit."""
    priority: int = 5
    """0 to 9: a worker takes the highest waiting first."""
    limit_key: str | None = None
    """What a per-key limit of its role counts it under."""
    held: bool = False
    """Waiting for a limit of its role: a rate's turn (SCHEDULED) or a free slot."""
    due_at: dt.datetime | None = None
    """When a SCHEDULED task (or a delayed one still waiting) is due to run."""
    dead_letter: str | None = None
    """The entry id of its dead letter, once it was given up."""
    worker: str | None = None
    """The worker that ran (or runs) the latest attempt."""
    depends_on: list[str] = Field(default_factory=list)
    graph: str | None = None
    """The graph the task was enqueued in, if any."""
    enqueued_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    data: Any = None
    result: TaskResult | None = None
    """Set once the task is final."""
    error: str | None = None
    """The latest error, also of an attempt that is being retried."""
    progress: float | None = None
    """How far the running attempt has got, 0 to 1, as its handler last reported
    (``current_task().progress``); None until it reports. A new attempt starts afresh."""
    progress_info: Any = None
    """What the handler reported with its progress (any JSON value), if anything."""
    progress_at: dt.datetime | None = None

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
    """Its heartbeat is fresher than ``worker_timeout``: not yet presumed dead."""
    heartbeat_age: float | None = None
    """Seconds since its last heartbeat, on Redis's clock."""
    late: bool = False
    """Alive, but without a heartbeat for more than two ``heartbeat_interval``s: it may have
    died (say, kill -9). At ``worker_timeout`` it is presumed dead and its tasks go back."""


class QueueInfo(BaseModel):
    """One role's queue as ``ceylon-redis queues`` shows it."""

    role: str
    ready: int
    """Entries on the stream not yet delivered to a worker."""
    running: int
    """Entries delivered and not yet acknowledged."""
    consumers: int
    workers_alive: int
    waiting: int = 0
    """Tasks of this role waiting for prerequisites."""
    scheduled: int = 0
    """Tasks of this role held until a time (delayed, or retrying after a backoff)."""
    held: int = 0
    """Tasks of this role waiting for a limit: a rate's turn (also counted SCHEDULED) or
    a free concurrency slot."""
    oldest_ready_age: float | None = None
    """Seconds the oldest ready task has waited to be taken (None when none is ready)."""
    schedules: int = 0
    """Periodic schedules whose ticks enqueue tasks of this role."""


class DeadLetter(BaseModel):
    """A task given up (out of attempts, failed for good, lost too often) or a malformed entry."""

    id: str
    """The entry id on ``{P}:dead``."""
    task_id: str
    role: str
    name: str = ""
    reason: str
    """Why it was given up."""
    error: str = ""
    """Its last error."""
    attempts: int = 0
    at: dt.datetime | None = None


class DeadRetry(BaseModel):
    """What ``retry_dead`` did: tasks queued again, and those it skipped with why."""

    retried: int = 0
    skipped: dict[str, str] = Field(default_factory=dict)


GraphStatus = Literal["running", "completed", "failed", "cancelled"]


class GraphInfo(BaseModel):
    """A graph of tasks enqueued together: one status and its progress."""

    id: str
    status: GraphStatus
    """running until every task is final; then completed when all completed, else
    failed; cancelled once ``cancel()`` was called (until ``retry_failed()``)."""
    total: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    ttl: int = 0
    """Seconds the graph's keys live after its last task ends; they expire together."""

    @property
    def done(self) -> int:
        """Tasks that are final."""
        return self.completed + self.failed + self.cancelled

    @property
    def progress(self) -> float:
        """Fraction of tasks final, 0.0 to 1.0."""
        return self.done / self.total if self.total else 1.0


class Percentiles(BaseModel):
    """Seconds at the 50th, 95th and 99th percentile, and the mean; None without samples."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class RoleStats(BaseModel):
    """Statistics of one role (or ``*``, all roles) since the first coordinator started."""

    role: str
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    retries: int = 0
    """Attempts beyond the first, over final tasks (retries and crashes)."""
    waiting: int = 0
    queued: int = 0
    running: int = 0
    schedules: int = 0
    """Periodic schedules feeding the role(s)."""
    wait: Percentiles = Field(default_factory=Percentiles)
    """Queue wait: from QUEUED to the start of the attempt that ended the task."""
    run: Percentiles = Field(default_factory=Percentiles)
    """Run time of the attempt that ended the task."""
    throughput: list[int] = Field(default_factory=list)
    """Tasks finished per minute over the last hour, oldest first (60 items)."""
    run_by_minute: list[Percentiles] = Field(default_factory=list)
    """Run-time percentiles of the tasks finished in each of those minutes (no mean)."""
    wait_by_minute: list[Percentiles] = Field(default_factory=list)
    """Queue-wait percentiles likewise."""

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def success_rate(self) -> float | None:
        """Completed over all final tasks (failed and cancelled count against it)."""
        return self.completed / self.finished if self.finished else None


class Stats(BaseModel):
    """``client.stats()``: per role and overall."""

    overall: RoleStats
    roles: list[RoleStats]
    coordinators_alive: int
    """Coordinators with a fresh heartbeat: statistics move only while one runs."""


EventKind = Literal["enqueued", "tick", "released", "queued", "held", "started", "progress",
                    "retried", "requeued", "unstarted", "completed", "failed", "cancelled",
                    "dead", "resubmitted"]
"""What happened to a task, as the lifecycle stream says (docs/api.md lists each)."""


class TaskEvent(BaseModel):
    """One transition of one task, from the lifecycle stream (``client.events()``)."""

    id: str
    """The stream entry that holds it (events of one script call share an entry):
    ``client.events(since=id)`` goes on after that entry."""
    kind: EventKind
    role: str
    task_id: str
    status: TaskStatus
    """The status the task reached by it."""
    attempt: int | None = None
    """For started, progress, retried, requeued, unstarted and final events."""
    progress: float | None = None
    """For progress events."""
    worker: str | None = None
    """The worker whose script call made it, if a worker's."""
    at: dt.datetime
    """When, on Redis's clock (the entry's time, to the millisecond)."""


class TaskUpdate(BaseModel):
    """What ``client.watch(task_id)`` yields at each change it sees: the task's state now."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task_id: str
    status: TaskStatus
    attempt: int = 0
    progress: float | None = None
    progress_info: Any = None
    worker: str | None = None
    result: TaskResult | None = None
    """Set on the last update, once the task is final."""
