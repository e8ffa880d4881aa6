"""``ceylon-redis dead``: list, show, retry and purge dead letters."""

from __future__ import annotations

import click

from ..client import Client
from ..models import DeadLetter
from .common import connection_options, emit, friendly_errors, plural


def _line(d: DeadLetter) -> str:
    when = d.at.strftime("%Y-%m-%d %H:%M:%S") if d.at else "-"
    return (f"{d.task_id or '(no task)':<34} {d.role:<14} {when}  {d.reason}"
            + (f"\n    {d.error.splitlines()[0][:200]}" if d.error else ""))


@click.group()
def dead() -> None:
    """Dead letters: tasks given up (out of attempts, failed for good, lost with their
    workers too often) and malformed stream entries."""


@dead.command("list")
@click.option("--role", "-r", default=None, help="Only this role.")
@click.option("--limit", "-n", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def list_(role: str | None, limit: int, as_json: bool, url: str | None,
          prefix: str | None) -> None:
    """The newest dead letters first."""
    with Client(url, prefix) as client:
        rows = client.dead_letters(role=role, limit=limit)
    emit(as_json, lambda: [d.model_dump() for d in rows],
         lambda: "\n".join(_line(d) for d in rows) if rows else "no dead letters")


@dead.command()
@click.argument("id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def show(id: str, as_json: bool, url: str | None, prefix: str | None) -> None:
    """One dead letter (by task id or entry id), with its whole last error."""
    with Client(url, prefix) as client:
        d = client.dead_letter(id)
    emit(as_json, d.model_dump,
         lambda: "\n".join([f"task:      {d.task_id or '(no task)'}", f"role:      {d.role}",
                            f"name:      {d.name}", f"reason:    {d.reason}",
                            f"attempts:  {d.attempts}", f"at:        {d.at or '-'}",
                            f"entry:     {d.id}", f"error:     {d.error or '-'}"]))


@dead.command()
@click.argument("task_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Retry every dead letter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def retry(task_ids: tuple[str, ...], every: bool, as_json: bool, url: str | None,
          prefix: str | None) -> None:
    """Run dead-lettered tasks again, each with a fresh attempt budget."""
    if bool(task_ids) == every:
        raise click.UsageError("give task ids or --all")
    with Client(url, prefix) as client:
        report = client.retry_dead(None if every else list(task_ids))
    emit(as_json, lambda: {"retried": report.retried, "skipped": report.skipped},
         lambda: f"retried {plural(report.retried, 'task')}")
    if not as_json:
        for tid, why in report.skipped.items():
            click.echo(f"skipped {tid}: {why}", err=True)


@dead.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Purge every dead letter (asks first).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def purge(ids: tuple[str, ...], every: bool, yes: bool, as_json: bool, url: str | None,
          prefix: str | None) -> None:
    """Forget dead letters (by task id or entry id); task hashes expire with their TTL."""
    if bool(ids) == every:
        raise click.UsageError("give task or entry ids, or --all")
    with Client(url, prefix) as client:
        if every and not yes:
            total = sum(client.dead_letter_counts().values())
            click.confirm(f"Forget all {plural(total, 'dead letter')}? They cannot be "
                          "retried afterwards.", abort=True)
        n = client.purge_dead(None if every else list(ids))
    emit(as_json, lambda: {"purged": n}, lambda: f"purged {plural(n, 'dead letter')}")
