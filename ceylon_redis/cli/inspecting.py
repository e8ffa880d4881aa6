"""Looking at a namespace: ``queues``, ``workers`` and ``stats`` (once or ``--watch``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..client import Client
from ..models import RoleStats, Stats
from .common import connection_options, dumps, emit, friendly_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def queues(as_json: bool, url: str | None, prefix: str | None) -> None:
    """Per role: waiting, ready and running tasks, consumers and live workers."""
    with Client(url, prefix) as client:
        rows = client.queues()
        coordinators = client.coordinators_alive()
        dead = client.dead_letter_counts()

    def text() -> str:
        if not rows:
            return "no queues yet"
        out = [f"{'ROLE':<20} {'WAITING':>8} {'SCHEDULED':>9} {'READY':>8} {'RUNNING':>8} "
               f"{'DEAD':>6} {'CONSUMERS':>10} {'ALIVE':>6} {'OLDEST READY':>12} "
               f"{'PERIODIC':>8}"]
        for q in rows:
            out.append(f"{q.role:<20} {q.waiting:>8} {q.scheduled:>9} {q.ready:>8} "
                       f"{q.running:>8} {dead.get(q.role, 0):>6} {q.consumers:>10} "
                       f"{q.workers_alive:>6} {_seconds(q.oldest_ready_age):>12} "
                       f"{q.schedules:>8}")
            if q.ready and not q.workers_alive:
                out.append(f"  ! {q.ready} tasks wait for role {q.role!r}, and no worker of it "
                           "is alive")
        if dead:
            out.append(f"dead letters: {sum(dead.values())} (ceylon-redis dead list)")
        if coordinators:
            out.append(f"coordinators alive: {coordinators}")
        else:
            waiting = sum(q.waiting for q in rows)
            out.append(f"! no coordinator alive: statistics are not being kept "
                       f"(run `ceylon-redis coordinator`). {waiting} waiting tasks are "
                       "released by the workers as their prerequisites finish.")
            if any(q.schedules for q in rows):
                out.append("! and periodic schedules do not tick: coordinators fire them")
        return "\n".join(out)

    emit(as_json, lambda: {"queues": [{**dict(q), "dead": dead.get(q.role, 0)} for q in rows],
                           "coordinators_alive": coordinators,
                           "dead_letters": sum(dead.values())}, text)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def workers(as_json: bool, url: str | None, prefix: str | None) -> None:
    """Registered workers and whether their heartbeat is fresh."""
    with Client(url, prefix) as client:
        rows = client.workers()

    def text() -> str:
        if not rows:
            return "no workers registered"
        out = [f"{'WORKER':<48} {'ROLES':<16} {'HOST':<16} {'PID':>7}  STATE"]
        for w in rows:
            out.append(f"{w.id:<48} {' '.join(w.roles):<16} {w.host:<16} {w.pid:>7}  "
                       f"{'alive' if w.alive else 'no heartbeat'}")
        return "\n".join(out)

    emit(as_json, lambda: [dict(w) for w in rows], text)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"


def _stats_text(st: Stats) -> str:
    head = (f"{'ROLE':<16} {'DONE':>7} {'FAILED':>6} {'CANCEL':>6} {'SUCCESS':>7} "
            f"{'RETRY':>5} {'WAIT':>4} {'QUEUED':>6} {'RUN':>4}  "
            f"{'WAIT p50/p95/p99':<26} {'RUN p50/p95/p99':<26} {'/MIN':>5}")
    out = [head]
    for r in [*st.roles, st.overall]:
        rate = f"{r.success_rate:.1%}" if r.success_rate is not None else "-"
        wait = "/".join(_seconds(x) for x in (r.wait.p50, r.wait.p95, r.wait.p99))
        run = "/".join(_seconds(x) for x in (r.run.p50, r.run.p95, r.run.p99))
        last_minute = r.throughput[-2] if len(r.throughput) > 1 else 0
        out.append(f"{'all' if r.role == '*' else r.role:<16} {r.completed:>7} {r.failed:>6} "
                   f"{r.cancelled:>6} {rate:>7} {r.retries:>5} {r.waiting:>4} {r.queued:>6} "
                   f"{r.running:>4}  {wait:<26} {run:<26} {last_minute:>5}")
    fed = [f"{r.role} ({r.schedules})" for r in st.roles if r.schedules]
    if fed:
        out.append(f"periodic schedules feed: {', '.join(fed)} (ceylon-redis schedule list)")
    if not st.coordinators_alive:
        out.append("! no coordinator alive: these figures are not being updated "
                   "(run `ceylon-redis coordinator`)"
                   + (", and periodic schedules do not tick" if fed else ""))
    return "\n".join(out)


def _stats_json(st: Stats) -> dict[str, Any]:
    def role(r: RoleStats) -> dict[str, Any]:
        return {**r.model_dump(), "success_rate": r.success_rate, "finished": r.finished}

    return {"overall": role(st.overall), "roles": [role(r) for r in st.roles],
            "coordinators_alive": st.coordinators_alive}


@click.command()
@click.option("--role", "-r", default=None, help="Only this role.")
@click.option("--watch", "-w", "watch_every", is_flag=False, flag_value=2.0, default=None,
              type=click.FloatRange(0.1), help="Refresh every N seconds (default 2) until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def stats(role: str | None, watch_every: float | None, as_json: bool, url: str | None,
          prefix: str | None) -> None:
    """Counts, success rate, retries, queue wait and run time percentiles, tasks per minute.

    Kept by the coordinator since the first one started. /MIN is the last full
    minute; --json has the whole last hour.
    """
    with Client(url, prefix) as client:
        def show() -> None:
            st = client.stats(role)
            if watch_every is not None and not as_json:
                click.clear()
            click.echo(dumps(_stats_json(st), indent=2) if as_json else _stats_text(st))

        if watch_every is None:
            show()
        else:
            _every_until_ctrl_c(watch_every, show)


def _every_until_ctrl_c(seconds: float, refresh: Callable[[], None]) -> None:
    """Call ``refresh`` every ``seconds`` until Ctrl-C, which ends the wait at once but lets
    a refresh finish: interrupted inside redis-py's pool, it could leave the pool's lock
    held and the exit hanging on it. A second Ctrl-C interrupts whatever runs."""
    import signal
    import threading

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def first_ctrl_c(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, first_ctrl_c)
    try:
        while not stop.is_set():
            refresh()
            stop.wait(seconds)
    finally:
        signal.signal(signal.SIGINT, previous)
