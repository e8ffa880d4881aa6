"""What each dashboard page shows, read through the client: plain dicts and models for the
templates (and the JSON endpoints), never a scan of the keyspace."""

from __future__ import annotations

import time
from typing import Any

from ..client import AsyncClient
from ..events import KINDS
from ..models import TaskInfo, WorkerInfo
from .layout import draw
from .lists import lifecycle_page, pending_tasks, rows

TRANSITIONS = KINDS - {"progress"}
"""What a task's page lists of its events: progress shows in its bar."""
CURRENT_PER_ROLE = 200
"""Running tasks the workers page reads per role (XPENDING's window)."""


async def overview(client: AsyncClient) -> dict[str, Any]:
    """Per role: counts, dead letters, throughput and latency over the last hour."""
    listed = await client.queues()
    stats = await client._stats_of(listed)  # the queues read once, for both
    dead = await client.dead_letter_counts()
    queues = {q.role: q for q in listed}
    roles = []
    for r in stats.roles:
        q = queues.get(r.role)
        roles.append({
            "role": r.role, "waiting": r.waiting, "queued": r.queued, "running": r.running,
            "scheduled": q.scheduled if q else 0, "held": q.held if q else 0,
            "completed": r.completed, "failed": r.failed, "cancelled": r.cancelled,
            "dead": dead.get(r.role, 0), "retries": r.retries,
            "workers": q.workers_alive if q else 0,
            "success_rate": r.success_rate, "run": r.run.model_dump(),
            "wait": r.wait.model_dump(), "throughput": r.throughput,
            "run_by_minute": [[p.p50, p.p95, p.p99] for p in r.run_by_minute],
            "wait_by_minute": [[p.p50, p.p95, p.p99] for p in r.wait_by_minute]})
    o = stats.overall
    return {"roles": roles, "coordinators": stats.coordinators_alive,
            "minute": int(time.time() // 60),
            "dead": sum(dead.values()),
            "overall": {"throughput": o.throughput,
                        "run_by_minute": [[p.p50, p.p95, p.p99] for p in o.run_by_minute],
                        "completed": o.completed, "failed": o.failed,
                        "cancelled": o.cancelled}}


async def workers(client: AsyncClient) -> list[dict[str, Any]]:
    """Registered workers with the tasks each runs now (the first CURRENT_PER_ROLE
    pending entries of each role)."""
    found: list[WorkerInfo] = await client.workers()
    current: dict[str, list[TaskInfo]] = {}
    roles = sorted({r for w in found for r in w.roles})
    for keys in client.parts.all:
        for role in roles:
            _, ids = await pending_tasks(client, keys, role, "-", CURRENT_PER_ROLE)
            for t in await rows(client, keys, ids):
                if t.worker:
                    current.setdefault(t.worker, []).append(t)
    return [{"worker": w, "tasks": current.get(w.id, [])} for w in found]


async def task(client: AsyncClient, task_id: str) -> dict[str, Any]:
    """A task's hash in full, its dependents and its recent events (attempts)."""
    info = await client.get(task_id)
    keys = client.keys
    for k in client._homes(task_id) if client.parts.count > 1 else ():
        if await client.redis.exists(k.task(task_id)):
            keys = k
            break
    dependents = sorted(m.decode() for m in await client.redis.smembers(
        keys.dependents(task_id)))
    # its events lie between its enqueue and its end: read only that span of the stream
    since = f"{int(info.enqueued_at.timestamp() * 1000) - 1}" if info.enqueued_at else "-"
    until = (f"{int(info.finished_at.timestamp() * 1000) + 2}-0" if info.finished_at
             and info.status.is_final else "")
    events, _, _ = await lifecycle_page(client, keys, None, TRANSITIONS, until, 100, task_id,
                                        since)
    return {"task": info, "dependents": dependents, "events": events}


async def graph(client: AsyncClient, graph_id: str) -> dict[str, Any]:
    """A graph's counts, its tasks and their drawing (None when too large to draw)."""
    handle = client.graph(graph_id)
    info = await handle.info()
    tasks = await handle.tasks()
    return {"graph": info, "tasks": tasks, "drawing": draw(tasks)}
