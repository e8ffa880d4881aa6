"""``ceylon-redis limit``: flow-control limits of a role (list, set, remove), enforced
across every worker; tasks over a limit wait, no attempt spent."""

from __future__ import annotations

import click

from ..client import Client
from ..limits import LimitInfo
from .common import connection_options, emit, friendly_errors


@click.group()
def limit() -> None:
    """Rate and concurrency limits per role, or per limit key, across every worker."""


@limit.command("set")
@click.argument("role")
@click.option("--rate", default=None, metavar="N/UNIT",
              help="Tasks started per second, minute or hour: 100/s, 30/min, 500/h.")
@click.option("--burst", type=int, default=None,
              help="With --rate: tasks that may start at once after a quiet spell "
                   "(default 1).")
@click.option("--concurrency", type=int, default=None,
              help="Tasks running at once, across every worker.")
@click.option("--per-key", is_flag=True,
              help="For each limit key apart (tasks enqueued with limit_key=...).")
@connection_options
@friendly_errors
def set_(role: str, rate: str | None, burst: int | None, concurrency: int | None,
         per_key: bool, url: str | None, prefix: str | None) -> None:
    """Limit ROLE (its other limits stay as they are)."""
    with Client(url, prefix) as client:
        info = client.set_limit(role, rate=rate, burst=burst, concurrency=concurrency,
                                per_key=per_key)
    click.echo(f"{role}: {info.role_limit.text} for the role, {info.per_key.text} per key")


@limit.command("remove")
@click.argument("role")
@click.option("--per-key", "scope", flag_value="key", default=None,
              help="Only the per-key limits.")
@click.option("--role-wide", "scope", flag_value="role", help="Only the role-wide limits.")
@connection_options
@friendly_errors
def remove(role: str, scope: str | None, url: str | None, prefix: str | None) -> None:
    """Remove ROLE's limits (all of them unless told); waiting tasks go on."""
    with Client(url, prefix) as client:
        had = client.remove_limit(role, per_key=None if scope is None else scope == "key")
    click.echo(f"removed {role}'s limits" if had else f"{role} had no limits")


@limit.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def list_(as_json: bool, url: str | None, prefix: str | None) -> None:
    """Every role's limits, the tasks waiting for one (HELD) and running in a slot."""
    with Client(url, prefix) as client:
        rows = client.limits()
    emit(as_json, lambda: rows, lambda: _table(rows))


def _table(rows: list[LimitInfo]) -> str:
    if not rows:
        return "no limits"
    out = [f"{'ROLE':<20} {'ROLE-WIDE':<28} {'PER KEY':<28} {'HELD':>6} {'IN SLOTS':>8}"]
    for r in rows:
        out.append(f"{r.role:<20} {r.role_limit.text:<28} {r.per_key.text:<28} "
                   f"{r.held:>6} {r.running if r.role_limit.concurrency else '-':>8}")
    return "\n".join(out)
