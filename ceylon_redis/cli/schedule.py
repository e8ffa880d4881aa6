"""``ceylon-redis schedule``: periodic tasks by cron or interval (add, list, pause,
resume, remove); coordinators fire them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from ..client import Client
from ..errors import UnknownScheduleError
from ..schedules import ScheduleInfo
from .common import connection_options, dumps, emit, friendly_errors, priority_option


@click.group()
def schedule() -> None:
    """Periodic tasks: each tick enqueues a task once, however many coordinators run."""


@schedule.command("add")
@click.argument("schedule_id", metavar="ID")
@click.argument("role")
@click.argument("data", required=False)
@click.option("--cron", default=None, metavar="EXPR",
              help="Cron expression: 5 fields, or 6 with seconds first (quote it).")
@click.option("--tz", default="UTC", show_default=True,
              help="IANA timezone whose wall clock --cron follows.")
@click.option("--every", type=float, default=None, metavar="SECONDS",
              help="Tick every SECONDS instead of by cron.")
@click.option("--missed", type=click.Choice(["skip", "all"]), default="skip",
              show_default=True, help="After every coordinator was down: run the latest "
                                      "missed tick once, or each of them (up to 100).")
@click.option("--name", default=None, help="A label for the tasks (default: the id).")
@click.option("--max-attempts", type=click.IntRange(1), default=None,
              help="Attempts each task gets (default: the worker's).")
@click.option("--backoff", type=click.FloatRange(0), default=None,
              help="Seconds before a task's first retry, doubling (default: the worker's).")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds an attempt may run (default: the worker's).")
@priority_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def add(schedule_id: str, role: str, data: str | None, cron: str | None, tz: str,
        every: float | None, missed: str, name: str | None, max_attempts: int | None,
        backoff: float | None, time_limit: float | None, priority: int | None, as_json: bool,
        url: str | None, prefix: str | None) -> None:
    """Create or update schedule ID: a ROLE task with DATA (JSON) at each tick.

    Adding the same definition again changes nothing (safe at every deploy).
    """
    if (cron is None) == (every is None):
        raise click.UsageError("give --cron EXPR or --every SECONDS (one of them)")
    try:
        payload = json.loads(data) if data is not None else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="DATA") from None
    options: dict[str, Any] = {k: v for k, v in (("name", name), ("max_attempts", max_attempts),
                                                 ("backoff", backoff),
                                                 ("timeout", time_limit),
                                                 ("priority", priority)) if v is not None}
    with Client(url, prefix) as client:
        info = client.add_schedule(schedule_id, role, payload, cron=cron, every=every, tz=tz,
                                   missed=missed, **options)
    emit(as_json, lambda: info, lambda: f"{info.id}: {info.when}, next run "
                                        f"{_when(info.next_run)}")


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def list_(as_json: bool, url: str | None, prefix: str | None) -> None:
    """Every schedule: when it ticks, its next and last run, the last tick's task."""
    with Client(url, prefix) as client:
        rows = client.schedules()
    emit(as_json, lambda: rows, lambda: _table(rows))


@schedule.command("show")
@click.argument("schedule_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def show(schedule_id: str, as_json: bool, url: str | None, prefix: str | None) -> None:
    """One schedule, every field."""
    with Client(url, prefix) as client:
        info = client.schedule(schedule_id)
    emit(as_json, lambda: info, lambda: dumps(info, indent=2))


@schedule.command("remove")
@click.argument("schedule_id", metavar="ID")
@connection_options
@friendly_errors
def remove(schedule_id: str, url: str | None, prefix: str | None) -> None:
    """Delete schedule ID (tasks it enqueued already run on)."""
    with Client(url, prefix) as client:
        if not client.remove_schedule(schedule_id):
            raise UnknownScheduleError(f"no schedule {schedule_id}")
    click.echo(f"removed {schedule_id}")


@schedule.command("pause")
@click.argument("schedule_id", metavar="ID")
@connection_options
@friendly_errors
def pause(schedule_id: str, url: str | None, prefix: str | None) -> None:
    """Stop schedule ID's ticks until it is resumed."""
    with Client(url, prefix) as client:
        client.pause_schedule(schedule_id)
    click.echo(f"paused {schedule_id}")


@schedule.command("resume")
@click.argument("schedule_id", metavar="ID")
@connection_options
@friendly_errors
def resume(schedule_id: str, url: str | None, prefix: str | None) -> None:
    """Tick again from now on (ticks missed while paused are not run)."""
    with Client(url, prefix) as client:
        client.resume_schedule(schedule_id)
        info = client.schedule(schedule_id)
    click.echo(f"resumed {schedule_id}, next run {_when(info.next_run)}")


def _when(at: dt.datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "-"


def _table(rows: list[ScheduleInfo]) -> str:
    if not rows:
        return "no schedules"
    out = [f"{'ID':<24} {'ROLE':<16} {'WHEN':<34} {'NEXT RUN (UTC)':<19}  "
           f"{'LAST RUN (UTC)':<19}  {'TICKS':>6}  LAST TASK"]
    for s in rows:
        nxt = "paused" if s.paused else _when(s.next_run)[:19]
        out.append(f"{s.id:<24} {s.role:<16} {s.when:<34} {nxt:<19}  "
                   f"{_when(s.last_run)[:19]:<19}  {s.ticks:>6}  {s.last_task_id or '-'}")
    return "\n".join(out)
