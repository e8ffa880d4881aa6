"""``ceylon-redis graph``: a graph's status and progress, and its cancel or retry."""

from __future__ import annotations

import click

from ..client import Client
from .common import connection_options, emit, friendly_errors, plural


@click.command()
@click.argument("graph_id")
@click.option("--tasks", "show_tasks", is_flag=True, help="List every task of the graph.")
@click.option("--cancel", "do_cancel", is_flag=True, help="Cancel the tasks not yet final.")
@click.option("--retry-failed", "do_retry", is_flag=True,
              help="Run the failed and cancelled tasks again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def graph(graph_id: str, show_tasks: bool, do_cancel: bool, do_retry: bool, as_json: bool,
          url: str | None, prefix: str | None) -> None:
    """Show a graph: status, progress, failed tasks (and cancel or retry it)."""
    with Client(url, prefix) as client:
        handle = client.graph(graph_id)
        if do_cancel or do_retry:
            handle.info()  # an unknown graph: one error line, nothing done
        if do_cancel:
            click.echo(f"cancelled {plural(handle.cancel(), 'task')}", err=True)
        if do_retry:
            click.echo(f"retrying {plural(handle.retry_failed(), 'task')}", err=True)
        info = handle.info()
        tasks = handle.tasks()

    def text() -> str:
        lines = [f"graph:     {info.id}", f"status:    {info.status}",
                 f"progress:  {info.done}/{info.total} ({info.progress:.0%}): "
                 f"{info.completed} completed, {info.failed} failed, "
                 f"{info.cancelled} cancelled",
                 f"created:   {info.created_at or '-'}",
                 f"finished:  {info.finished_at or '-'}"
                 + (f" (keys expire {info.ttl} s after)" if info.finished_at else "")]
        shown = tasks if show_tasks else [t for t in tasks if t.status.value in
                                          ("FAILED", "CANCELLED")][:20]
        for t in shown:
            lines.append(f"  {t.id:<34} {t.role:<14} {t.status.value:<9} {t.name}"
                         + (f"\n      {t.error}" if t.error and t.status.value !=
                            "COMPLETED" else ""))
        return "\n".join(lines)

    emit(as_json, lambda: {**info.model_dump(), "done": info.done,
                           "tasks": [{"id": t.id, "role": t.role, "name": t.name,
                                      "status": t.status.value, "error": t.error}
                                     for t in tasks]}, text)
