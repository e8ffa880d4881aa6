"""The ``ceylon-redis`` command: the group from ``app`` with every command module's
commands added. Nothing is defined here; nothing in this package imports it.

Exit codes: 0 success; 1 an error (one line on stderr: Redis unreachable, bad
data, unknown task); 2 a usage error; 3 ``enqueue --wait`` whose task did not
complete (FAILED or CANCELLED), also ``task --follow``'s; 4 ``enqueue --wait`` (or
``task --follow``) that timed out; 70 a
daemon whose stop overran its deadline (stacks dumped, see lifecycle.py).
"""

from __future__ import annotations

from . import (
    daemons,
    dashboard,
    dead,
    enqueue,
    events,
    graph,
    inspecting,
    limit,
    metrics,
    schedule,
    tasks,
)
from .app import main

for command in (daemons.worker, daemons.coordinator, enqueue.enqueue, tasks.task,
                inspecting.queues, inspecting.workers, inspecting.stats, graph.graph,
                tasks.cancel, tasks.purge, daemons.demo, dead.dead, metrics.metrics,
                schedule.schedule, limit.limit, events.events, dashboard.dashboard):
    main.add_command(command)
del command

__all__ = ["main"]
