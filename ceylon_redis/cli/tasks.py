"""One task, or a role's unstarted tasks: ``task``, ``cancel`` and ``purge``."""

from __future__ import annotations

import sys

import click

from ..client import Client
from ..codec import Undecodable
from ..errors import TaskTimeoutError
from ..protocol import DEFAULT_PRIORITY
from .common import connection_options, dumps, emit, friendly_errors, plural, unknown_role
from .events import follow_task


@click.command()
@click.argument("task_id")
@click.option("--follow", "-f", is_flag=True,
              help="Watch it to its end first: a progress bar on a terminal, a line per "
                   "change otherwise; exit 3 unless it completes.")
@click.option("--timeout", type=float, default=None,
              help="With --follow: give up after this many seconds (exit 4).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def task(task_id: str, follow: bool, timeout: float | None, as_json: bool, url: str | None,
         prefix: str | None) -> None:
    """Show a task: status, attempts, worker, timings, progress, result."""
    with Client(url, prefix) as client:
        if follow:
            try:
                follow_task(client, task_id, timeout)
            except TaskTimeoutError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(4)
        info = client.get(task_id)

    def text() -> str:
        lines = [f"id:          {info.id}", f"name:        {info.name}",
                 f"role:        {info.role}", f"status:      {info.status.value}",
                 f"attempt:     {info.attempt}/{info.max_attempts or 'default'}",
                 f"crashes:     {info.crashes}" + (" (lost with its worker; a 4th fails it)"
                                                   if info.crashes else ""),
                 f"worker:      {info.worker or '-'}",
                 f"enqueued:    {info.enqueued_at or '-'}",
                 f"started:     {info.started_at or '-'}",
                 f"finished:    {info.finished_at or '-'}"]
        if info.due_at:
            lines.append(f"due:         {info.due_at}")
        if info.timeout:
            lines.append(f"time limit:  {info.timeout:g} s")
        if info.priority != DEFAULT_PRIORITY:
            lines.append(f"priority:    {info.priority}")
        if info.limit_key:
            lines.append(f"limit key:   {info.limit_key}")
        if info.held:
            lines.append("held:        waiting for a limit of its role (a rate's turn, or a "
                         "free slot)")
        if info.progress is not None:
            lines.append(f"progress:    {info.progress:.0%}"
                         + (f" {dumps(info.progress_info)}" if info.progress_info is not None
                            else ""))
        if info.depends_on:
            lines.append(f"depends on:  {' '.join(info.depends_on)}")
        if info.queue_wait is not None:
            lines.append(f"queue wait:  {info.queue_wait:.3f} s")
        if info.run_time is not None:
            lines.append(f"run time:    {info.run_time:.3f} s")
        if isinstance(info.data, Undecodable):
            lines.append(f"data:        {info.data}")
        if info.result is not None and info.result.output is not None:
            lines.append(f"output:      {_shown(info.result.output)}")
        if info.error:
            lines.append(f"error:       {info.error}")
        if info.dead_letter:
            lines.append(f"dead letter: {info.dead_letter} (ceylon-redis dead show {info.id})")
        return "\n".join(lines)

    emit(as_json, lambda: {**dict(info), "result": dict(info.result) if info.result else None},
         text)
    if follow and info.status.value != "COMPLETED":
        sys.exit(3)


def _shown(value: object) -> str:
    return str(value) if isinstance(value, Undecodable) else dumps(value)


@click.command()
@click.argument("task_id")
@click.option("--reason", default=None, help="Why (stored as the task's error).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def cancel(task_id: str, reason: str | None, as_json: bool, url: str | None,
           prefix: str | None) -> None:
    """Cancel a task not yet final; its dependents settle as for a failure."""
    with Client(url, prefix) as client:
        cancelled = client.cancel(task_id, reason)
        status = "CANCELLED" if cancelled else client.get(task_id).status.value
    emit(as_json, lambda: {"id": task_id, "cancelled": cancelled, "status": status},
         lambda: f"{task_id} {'CANCELLED' if cancelled else 'was already ' + status}")


@click.command()
@click.argument("role")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@click.option("--reason", default="purged", show_default=True,
              help="Stored as each cancelled task's error.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def purge(role: str, yes: bool, reason: str, as_json: bool, url: str | None,
          prefix: str | None) -> None:
    """Cancel every task of ROLE that has not started (ready, scheduled, waiting)."""
    with Client(url, prefix) as client:
        rows = client.queues()
        q = next((q for q in rows if q.role == role), None)
        if q is None:
            raise unknown_role(role, [r.role for r in rows])
        if not yes:
            click.confirm(f"Cancel {q.ready} ready, {q.scheduled} scheduled and {q.waiting} "
                          f"waiting tasks of role {role!r}?", abort=True)
        n = client.purge(role, reason)
    emit(as_json, lambda: {"role": role, "cancelled": n},
         lambda: f"cancelled {plural(n, 'task')} of role {role!r}")
