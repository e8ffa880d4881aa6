"""Looking at a namespace: ``queues``, ``workers`` and ``stats`` (once or ``--watch``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import click

from ..client import Client
from ..models import QueueInfo, RoleStats, Stats
from .common import connection_options, dumps, emit, friendly_errors, plural, unknown_role


@click.command()
@click.option("--all", "show_all", is_flag=True,
              help="Also list idle roles (nothing queued or dead, no consumer, no schedule).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def queues(show_all: bool, as_json: bool, url: str | None, prefix: str | None) -> None:
    """Per role: waiting, ready and running tasks, consumers and live workers."""
    with Client(url, prefix) as client:
        rows = client.queues()
        coordinators = client.coordinators_alive()
        dead = client.dead_letter_counts()
        registered = client.workers()
        timeout = client.settings.worker_timeout
    late = [w for w in registered if w.late]

    def idle(q: QueueInfo) -> bool:
        return not (q.waiting or q.scheduled or q.ready or q.running or q.consumers
                    or q.workers_alive or q.schedules or q.held or dead.get(q.role))

    def text() -> str:
        if not rows:
            return "no queues yet"
        shown = [q for q in rows if show_all or not idle(q)]
        served = sorted({r for w in registered if w.alive for r in w.roles})
        out = [f"{'ROLE':<20} {'WAITING':>8} {'SCHEDULED':>9} {'READY':>8} {'RUNNING':>8} "
               f"{'DEAD':>6} {'CONSUMERS':>10} {'ALIVE':>6} {'OLDEST READY':>12} "
               f"{'PERIODIC':>8} {'HELD':>6}"]
        for q in shown:
            out.append(f"{q.role:<20} {q.waiting:>8} {q.scheduled:>9} {q.ready:>8} "
                       f"{q.running:>8} {dead.get(q.role, 0):>6} {q.consumers:>10} "
                       f"{q.workers_alive:>6} {_seconds(q.oldest_ready_age):>12} "
                       f"{q.schedules:>8} {q.held:>6}")
            if q.ready and not q.workers_alive:
                out.append(f"  ! {plural(q.ready, 'task')} {'waits' if q.ready == 1 else 'wait'}"
                           f" for role {q.role!r}, and no worker of it is alive"
                           f"{_served_nearby(q.role, served)}")
        for w in late:
            out.append(f"! worker {w.id} ({' '.join(w.roles)}): no heartbeat for "
                       f"{w.heartbeat_age:.1f} s, it may have died; at {timeout:g} s it is "
                       "presumed dead and its running tasks go back to their queues")
        hidden = [q.role for q in rows if q not in shown]
        if hidden:
            out.append(f"idle roles not shown: {', '.join(hidden)} (--all shows them)")
        if dead:
            out.append(f"dead letters: {sum(dead.values())} (ceylon-redis dead list)")
        if coordinators:
            out.append(f"coordinators alive: {coordinators}")
        else:
            waiting = sum(q.waiting for q in rows)
            out.append(f"! no coordinator alive: statistics are not being kept "
                       f"(run `ceylon-redis coordinator`). {plural(waiting, 'waiting task')} "
                       f"{'is' if waiting == 1 else 'are'} released by the workers as their "
                       "prerequisites finish.")
            if any(q.schedules for q in rows):
                out.append("! and periodic schedules do not tick: coordinators fire them")
        return "\n".join(out)

    emit(as_json, lambda: {"queues": [{**dict(q), "dead": dead.get(q.role, 0)} for q in rows],
                           "coordinators_alive": coordinators,
                           "dead_letters": sum(dead.values()),
                           "workers_late": [{"id": w.id, "roles": w.roles,
                                             "heartbeat_age": w.heartbeat_age} for w in late]},
         text)


def _served_nearby(role: str, served: list[str]) -> str:
    """A hint naming a live worker's role close to ``role``: the tasks may have been sent,
    or the worker started, under a misspelt name (a case difference most of all)."""
    others = [r for r in served if r != role]
    same = [r for r in others if r.lower() == role.lower()]
    if same:
        return f" (a live worker serves {same[0]!r}: roles are case-sensitive)"
    close = difflib.get_close_matches(role, others, n=1, cutoff=0.75)
    return f" (a live worker serves {close[0]!r})" if close else ""


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def workers(as_json: bool, url: str | None, prefix: str | None) -> None:
    """Registered workers, how old their last heartbeat is, and whether they are alive."""
    with Client(url, prefix) as client:
        rows = client.workers()
        timeout = client.settings.worker_timeout

    def text() -> str:
        if not rows:
            return "no workers registered"
        out = [f"{'WORKER':<48} {'ROLES':<16} {'HOST':<16} {'PID':>7} {'LAST BEAT':>9}  STATE"]
        for w in rows:
            state = "late" if w.late else "alive" if w.alive else "no heartbeat"
            out.append(f"{w.id:<48} {' '.join(w.roles):<16} {w.host:<16} {w.pid:>7} "
                       f"{_seconds(w.heartbeat_age):>9}  {state}")
        for w in rows:
            if w.late:
                out.append(f"! {w.id}: no heartbeat for {w.heartbeat_age:.1f} s, it may have "
                           f"died; at {timeout:g} s it is presumed dead and its running tasks "
                           "go back to their queues")
            elif not w.alive:
                out.append(f"! {w.id}: presumed dead (no heartbeat for {w.heartbeat_age:.1f} "
                           "s); the next reap, by any live worker, gives back its tasks")
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
        if role is not None:  # a typo printed zeros
            known = [q.role for q in client.queues()]
            if role not in known:
                raise unknown_role(role, known)

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
