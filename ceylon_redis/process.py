"""Ceylon's processor types (``ProcessWorker``, ``ProcessRequest``) and the current task."""

from __future__ import annotations

import contextvars
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProcessRequest:
    """What a ProcessWorker's ``_processor`` receives.

    ``data`` is ``input_data['data']`` (None when absent); ``input_data`` is the
    whole payload; ``dependency_data`` maps each completed prerequisite's id to
    its TaskResult (``.output``), as Ceylon's does; ``failed_dependencies`` maps each
    failed run-anyway prerequisite to its error.
    """

    task_type: str
    data: Any = None
    input_data: Any = None
    dependency_data: dict[str, Any] | None = None
    failed_dependencies: dict[str, str] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    task_id: str = ""
    task_name: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class TaskContext:
    """The task a handler is running: id, name, role, attempt, prerequisites' outcomes."""

    id: str
    role: str
    name: str
    attempt: int
    worker: str
    dependency_data: dict[str, Any]
    """Completed prerequisite id -> its output."""
    failed_dependencies: dict[str, str] = field(default_factory=dict)
    """Failed or cancelled prerequisite id -> its error (edges with on_failure="run")."""
    scheduled_at: dt.datetime | None = None
    """For a task a schedule enqueued: the tick it is for (aware, UTC), else None."""
    _report: Callable[[Any, Any], None] | None = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, info: Any = None) -> None:
        """Report how far this attempt has got: ``fraction`` from 0 to 1, and any JSON
        ``info`` (say ``{"step": "upload"}``). It returns at once; the worker writes the
        latest report within ``Settings.progress_interval`` seconds, for ``client.watch``,
        ``ceylon-redis task ID --follow`` and the lifecycle stream."""
        if self._report is None:
            raise RuntimeError("progress can be reported only from a task a worker runs")
        self._report(fraction, info)


_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("ceylon_redis_task")


def current_task() -> TaskContext:
    """The task the calling handler runs (also from a sync handler's thread)."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_task() is only available inside a task handler") from None


class ProcessWorker:
    """A worker of one role, as in Ceylon: subclass it and implement ``_processor``.

    ``_processor(request, time)`` returns a ``(success, output)`` pair, or any
    other value as a successful output; raising fails the attempt.
    """

    def __init__(self, name: str, role: str, **_: Any) -> None:
        self.name = name
        self.role = role

    async def _processor(self, request: ProcessRequest, time: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _processor")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, role={self.role!r})"
