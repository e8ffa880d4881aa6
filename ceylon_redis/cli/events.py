"""``ceylon-redis events``: the lifecycle stream, read or followed; and ``task --follow``:
one task watched to its end."""

from __future__ import annotations

import datetime as dt
import io
import sys
from typing import Any

import click

from ..client import Client
from ..events import KINDS
from ..models import TaskEvent, TaskUpdate
from .common import connection_options, dumps, friendly_errors


def _since(value: str) -> str | dt.datetime:
    """--since as a stream position: an entry id, "0", or a number of seconds ago."""
    if value == "0" or "-" in value:
        return value
    try:
        ago = float(value)
    except ValueError:
        return value
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago)


def _line(e: TaskEvent) -> str:
    extra = "" if e.attempt is None else f" attempt={e.attempt}"
    if e.progress is not None:
        extra += f" progress={e.progress:.0%}"
    if e.worker:
        extra += f" worker={e.worker}"
    return (f"{e.at.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} {e.kind:<11} {e.role} {e.task_id} "
            f"{e.status.value}{extra}")


@click.command()
@click.option("--role", default=None, help="Only this role's events.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(sorted(KINDS)),
              help="Only these kinds (repeat it).")
@click.option("--task", "task_id", default=None, help="Only this task's events.")
@click.option("--since", default=None,
              help="From an entry id, 0 (the oldest kept) or N seconds ago, forward.")
@click.option("--last", type=click.IntRange(min=1), default=None,
              help="The newest N events [default 20, unless --since or --follow].")
@click.option("--follow", "-f", is_flag=True, help="Then wait for new events, until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@connection_options
@friendly_errors
def events(role: str | None, kinds: tuple[str, ...], task_id: str | None, since: str | None,
           last: int | None, follow: bool, as_json: bool, url: str | None,
           prefix: str | None) -> None:
    """Task transitions (enqueued, started, progress, retried, completed, failed, dead,
    cancelled, ...), oldest first, from the lifecycle stream."""
    if since is not None and last is not None:
        raise click.UsageError("give --since or --last, not both")
    filters: dict[str, Any] = {"role": role, "kinds": kinds or None, "task_id": task_id}
    with Client(url, prefix) as client:
        try:
            if since is not None:
                for e in client.events(_since(since), follow=follow, **filters):
                    _emit(e, as_json)
                return
            position = "$"
            if last is not None or not follow:
                recent = client.recent_events(last or 20, **filters)
                for e in recent:
                    _emit(e, as_json)
                if recent:
                    position = recent[-1].id
            if follow:
                for e in client.events(position, follow=True, **filters):
                    _emit(e, as_json)
        except KeyboardInterrupt:
            return


def _emit(e: TaskEvent, as_json: bool) -> None:
    click.echo(dumps(dict(e)) if as_json else _line(e))


def follow_task(client: Client, task_id: str, timeout: float | None) -> TaskUpdate:
    """Watch a task to its end: a progress bar on a terminal, a line per change otherwise.
    Returns the last update (with the result)."""
    tty = sys.stderr.isatty()
    bar: Any = click.progressbar(length=1000, label=task_id[:24],
                                 file=sys.stderr if tty else io.StringIO(), show_percent=True,
                                 show_eta=False, show_pos=False)
    shown = 0
    with bar:
        for u in client.watch(task_id, timeout=timeout):
            if not tty:
                click.echo(_update_line(u))
            bar.label = f"{task_id[:24]} {u.status.value.lower()}"
            done = round((u.progress or 0) * 1000)
            bar.update(done - shown)  # renders the label too, also with no progress yet
            shown = done
            if u.result is not None:
                return u
    raise AssertionError("watch() ended without a result")  # pragma: no cover


def _update_line(u: TaskUpdate) -> str:
    parts = [u.task_id, u.status.value, f"attempt={u.attempt}"]
    if u.progress is not None:
        parts.append(f"progress={u.progress:.0%}")
    if u.progress_info is not None:
        parts.append(f"info={dumps(u.progress_info)}")
    return " ".join(parts)
