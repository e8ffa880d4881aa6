"""The ``ceylon-redis`` command.

Exit codes: 0 success; 1 an error (one line on stderr: Redis unreachable, bad
data, unknown task); 2 a usage error; 3 ``enqueue --wait`` whose task did not
complete (FAILED or CANCELLED); 4 ``enqueue --wait`` that timed out; 70 a
daemon whose stop overran its deadline (stacks dumped, see lifecycle.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import functools
import io
import json
import sys
from collections.abc import Callable
from enum import Enum
from typing import Any, TextIO, TypeVar

import click
import redis
from loguru import logger
from pydantic import BaseModel

from .client import Client
from .codec import Record
from .errors import CeylonRedisError, RedisConnectionError, RedisTimeoutError, TaskTimeoutError
from .models import RoleStats, Stats, TaskResult
from .settings import Settings, redact_url

F = TypeVar("F", bound=Callable[..., Any])


def _configure_logging(level: str, json_logs: bool = False) -> None:
    logger.remove()
    logger.enable("ceylon_redis")
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message}"
    logger.add(sys.stderr, level=level.upper(), format=fmt, serialize=json_logs)


def _connection_options(func: F) -> F:
    """--url and --prefix, each with its environment variable."""
    func = click.option("--prefix", envvar="CEYLON_REDIS_PREFIX", default=None,
                        help="Key namespace [env CEYLON_REDIS_PREFIX; default ceylon].")(func)
    func = click.option("--url", envvar=["CEYLON_REDIS_URL", "REDIS_URL"], default=None,
                        help="Redis URL [env CEYLON_REDIS_URL, REDIS_URL; "
                             "default redis://localhost:6379/0].")(func)
    return func


def _friendly_errors(func: F) -> F:
    """Turn errors into one readable line and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.AuthenticationError as exc:  # a ConnectionError: before that one
            url = kwargs.get("url") or Settings.from_env().url
            click.echo(f"error: Redis at {redact_url(url)} refused the credentials: {exc}",
                       err=True)
            sys.exit(1)
        except (RedisConnectionError, RedisTimeoutError) as exc:  # these name the URL
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            url = kwargs.get("url") or Settings.from_env().url
            click.echo(f"error: cannot reach Redis at {redact_url(url)}: {exc}", err=True)
            sys.exit(1)
        except (CeylonRedisError, redis.RedisError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except ValueError as exc:  # redis-py's word on a malformed URL
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _jsonable(value: Any) -> Any:
    """JSON's view of a decoded payload: records and models as objects, bytes as text."""
    if isinstance(value, Record):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return {k: _jsonable(getattr(value, k)) for k in type(value).model_fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(_jsonable(value), indent=indent)


def _emit(as_json: bool, data: Callable[[], Any], text: Callable[[], str]) -> None:
    click.echo(_dumps(data(), indent=2) if as_json else text())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ceylon-redis")
@click.option("--log-level", envvar="CEYLON_REDIS_LOG_LEVEL", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Log level of daemons [env CEYLON_REDIS_LOG_LEVEL].")
@click.option("--log-json", is_flag=True, envvar="CEYLON_REDIS_LOG_JSON",
              help="Log one JSON object per line, for log shippers.")
def main(log_level: str, log_json: bool) -> None:
    """A Redis Streams job queue: workers, producers and inspection."""
    _configure_logging(log_level, log_json)


@main.command()
@click.argument("target")
@click.option("--role", "-r", envvar="CEYLON_REDIS_ROLE", default=None,
              help="Role to consume (needed for plain functions) [env CEYLON_REDIS_ROLE].")
@click.option("--concurrency", "-c", type=click.IntRange(1, 10000), default=None,
              envvar="CEYLON_REDIS_CONCURRENCY",
              help="Tasks run at once per handler [env CEYLON_REDIS_CONCURRENCY; default 10 "
                   "for a function, 1 for a ProcessWorker].")
@click.option("--prefetch", type=click.IntRange(0, 100000), default=None,
              envvar="CEYLON_REDIS_PREFETCH",
              help="Tasks taken beyond --concurrency, started as slots free [env "
                   "CEYLON_REDIS_PREFETCH; default: as many as --concurrency for a sync "
                   "function, 0 otherwise; 0 for long tasks].")
@click.option("--grace", type=click.FloatRange(0), default=30.0, show_default=True,
              envvar="CEYLON_REDIS_GRACE", help="Seconds to finish in-flight tasks on SIGTERM.")
@click.option("--coordinator", "with_coordinator", is_flag=True,
              envvar="CEYLON_REDIS_COORDINATOR",
              help="Also run a coordinator (statistics) in this daemon.")
@click.option("--max-attempts", type=click.IntRange(1), default=None,
              help="Attempts of tasks enqueued without their own [env "
                   "CEYLON_REDIS_MAX_ATTEMPTS; default 1].")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds an attempt of a task without its own limit may run [env "
                   "CEYLON_REDIS_TASK_TIMEOUT; default none].")
@_connection_options
@_friendly_errors
def worker(target: str, role: str | None, concurrency: int | None, prefetch: int | None,
           grace: float,
           with_coordinator: bool, max_attempts: int | None, time_limit: float | None,
           url: str | None, prefix: str | None) -> None:
    """Run handlers from TARGET (MODULE:OBJECT) until SIGTERM or SIGINT.

    OBJECT is an async or sync function taking the task's data, a
    ProcessWorker, or a list of them.
    """
    import os

    from .handlers import load_object
    from .worker import run_worker

    sys.path.insert(0, os.getcwd())
    handlers = load_object(target)
    asyncio.run(run_worker(handlers, role=role, concurrency=concurrency, prefetch=prefetch,
                           grace=grace,
                           coordinator=with_coordinator,
                           settings=Settings.from_env(url=url, prefix=prefix,
                                                      max_attempts=max_attempts,
                                                      task_timeout=time_limit)))


@main.command()
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              envvar="CEYLON_REDIS_METRICS_PORT",
              help="Also serve Prometheus /metrics on this port (0: any free one) "
                   "[env CEYLON_REDIS_METRICS_PORT].")
@_connection_options
@_friendly_errors
def coordinator(metrics_port: int | None, url: str | None, prefix: str | None) -> None:
    """Keep statistics from finished tasks until SIGTERM or SIGINT.

    Any number may run; each event is counted once, and a dead coordinator's
    events are taken over. Dependents are released without one.
    """
    from .coordinator import run_coordinator

    settings = Settings.from_env(url=url, prefix=prefix)
    server = None
    if metrics_port is not None:
        from .cli_metrics import serve_or_exit

        server = serve_or_exit(settings, metrics_port, "0.0.0.0")
    try:
        asyncio.run(run_coordinator(settings=settings))
    finally:
        if server is not None:
            server.stop()


@main.command()
@click.argument("role")
@click.argument("data", required=False)
@click.option("--name", default=None, help="A label for the task.")
@click.option("--id", "task_id", default=None, help="Task id (default: a new uuid).")
@click.option("--depends-on", multiple=True, help="A prerequisite task id (repeatable).")
@click.option("--on-failure", type=click.Choice(["cancel", "run", "ignore"]), default="cancel",
              show_default=True, help="If a prerequisite fails: cancel this task, run it "
                                      "anyway, or ignore that prerequisite.")
@click.option("--max-attempts", type=click.IntRange(1), default=None,
              help="Attempts this task gets (default: the worker's).")
@click.option("--backoff", type=click.FloatRange(0), default=None,
              help="Seconds before its first retry, doubling (default: the worker's).")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds an attempt may run (default: the worker's).")
@click.option("--delay", type=click.FloatRange(0), default=None,
              help="Seconds to hold the task before it may run.")
@click.option("--from-file", "-f", "from_file", type=click.File("r"), default=None,
              help="Enqueue one task per line of this JSON Lines file ('-': stdin) "
                   "instead of DATA.")
@click.option("--wait", "wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=None, help="Seconds --wait waits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
def enqueue(role: str, data: str | None, name: str | None, task_id: str | None,
            depends_on: tuple[str, ...], on_failure: str, max_attempts: int | None,
            backoff: float | None, time_limit: float | None, delay: float | None,
            from_file: TextIO | None, wait: bool, timeout: float | None, as_json: bool,
            url: str | None, prefix: str | None) -> None:
    """Enqueue a task for ROLE with DATA (JSON); print its id (or its result with --wait).

    With --from-file, enqueue one task per line and print one id per line; a
    progress bar shows on a terminal for the enqueue and for --wait.
    """
    if from_file is not None:
        if data is not None or task_id or depends_on or name:
            raise click.UsageError("--from-file takes no DATA, --id, --name or --depends-on")
        enqueue_file(role, from_file, dict(max_attempts=max_attempts, backoff=backoff,
                                           timeout=time_limit, delay=delay),
                     wait, timeout, as_json, url, prefix)
        return
    payload = _json_arg(data if data is not None else "null", "DATA")
    with Client(url, prefix) as client:
        tid = client.enqueue(role, payload, name=name, task_id=task_id, depends_on=depends_on,
                             on_failure=on_failure,  # type: ignore[arg-type]
                             max_attempts=max_attempts, backoff=backoff, timeout=time_limit,
                             delay=delay)
        if not wait:
            _emit(as_json, lambda: {"id": tid}, lambda: tid)
            return
        results = _wait_or_exit(client, [tid], timeout)
    _emit(as_json, lambda: dict(results[0]), lambda: _result_text(results[0]))
    if not results[0].success:
        sys.exit(3)


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None


def _result_text(result: TaskResult) -> str:
    return (f"{result.task_id} {result.status.value if result.status else ''}\n"
            + (_dumps(result.output) if result.success else f"error: {result.error}"))


def _wait_or_exit(client: Client, ids: list[str], timeout: float | None) -> list[TaskResult]:
    """Every result (a progress bar on a terminal for many); exit 4 on timeout."""
    try:
        with _progress(len(ids), "waiting") as bar:
            return client.wait_many(ids, timeout=timeout, on_result=lambda _: bar.update(1))
    except TaskTimeoutError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(4)


def _progress(total: int, label: str) -> Any:
    """A progress bar on stderr when it is a terminal and there is more than one item."""
    shown = total > 1 and sys.stderr.isatty()
    return click.progressbar(length=total, label=label, file=sys.stderr if shown else io.StringIO(),
                             show_pos=True, show_eta=True)


_FILE_BATCH = 1000
"""Tasks per enqueue_many call when enqueuing a file."""


def enqueue_file(role: str, lines: TextIO, options: dict[str, Any], wait: bool,
                 timeout: float | None, as_json: bool, url: str | None,
                 prefix: str | None) -> None:
    """``enqueue --from-file``: every line parsed before any is enqueued, then batches."""
    where = getattr(lines, "name", "file")
    payloads = [_json_arg(line, f"{where} line {n}")
                for n, line in enumerate(lines, 1) if line.strip()]
    with Client(url, prefix) as client:
        ids: list[str] = []
        with _progress(len(payloads), "enqueuing") as bar:
            try:
                for i in range(0, len(payloads), _FILE_BATCH):
                    chunk = payloads[i:i + _FILE_BATCH]
                    ids += client.enqueue_many(role, chunk, **options)
                    bar.update(len(chunk))
            except Exception:
                if ids:  # what did land, so that a rerun can skip it
                    click.echo("\n".join(ids))
                    click.echo(f"enqueued {len(ids)} of {len(payloads)} tasks (ids above) "
                               "before:", err=True)
                raise
        if not wait:
            _emit(as_json, lambda: [{"id": t} for t in ids], lambda: "\n".join(ids))
            return
        results = _wait_or_exit(client, ids, timeout)
    _emit(as_json, lambda: [dict(r) for r in results],
          lambda: "\n".join(_result_text(r).replace("\n", " ", 1) for r in results))
    if not all(r.success for r in results):
        sys.exit(3)


@main.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
def task(task_id: str, as_json: bool, url: str | None, prefix: str | None) -> None:
    """Show a task: status, attempts, worker, timings, result."""
    with Client(url, prefix) as client:
        info = client.get(task_id)

    def text() -> str:
        lines = [f"id:          {info.id}", f"name:        {info.name}",
                 f"role:        {info.role}", f"status:      {info.status.value}",
                 f"attempt:     {info.attempt}/{info.max_attempts or 'default'}",
                 f"worker:      {info.worker or '-'}",
                 f"enqueued:    {info.enqueued_at or '-'}",
                 f"started:     {info.started_at or '-'}",
                 f"finished:    {info.finished_at or '-'}"]
        if info.due_at:
            lines.append(f"due:         {info.due_at}")
        if info.timeout:
            lines.append(f"time limit:  {info.timeout:g} s")
        if info.depends_on:
            lines.append(f"depends on:  {' '.join(info.depends_on)}")
        if info.queue_wait is not None:
            lines.append(f"queue wait:  {info.queue_wait:.3f} s")
        if info.run_time is not None:
            lines.append(f"run time:    {info.run_time:.3f} s")
        if info.result is not None and info.result.output is not None:
            lines.append(f"output:      {_dumps(info.result.output)}")
        if info.error:
            lines.append(f"error:       {info.error}")
        if info.dead_letter:
            lines.append(f"dead letter: {info.dead_letter} (ceylon-redis dead show {info.id})")
        return "\n".join(lines)

    _emit(as_json, lambda: {**dict(info), "result": dict(info.result) if info.result else None},
          text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
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
               f"{'DEAD':>6} {'CONSUMERS':>10} {'ALIVE':>6} {'OLDEST READY':>12}"]
        for q in rows:
            out.append(f"{q.role:<20} {q.waiting:>8} {q.scheduled:>9} {q.ready:>8} "
                       f"{q.running:>8} {dead.get(q.role, 0):>6} {q.consumers:>10} "
                       f"{q.workers_alive:>6} {_seconds(q.oldest_ready_age):>12}")
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
        return "\n".join(out)

    _emit(as_json, lambda: {"queues": [{**dict(q), "dead": dead.get(q.role, 0)} for q in rows],
                            "coordinators_alive": coordinators,
                            "dead_letters": sum(dead.values())}, text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
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

    _emit(as_json, lambda: [dict(w) for w in rows], text)


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
    if not st.coordinators_alive:
        out.append("! no coordinator alive: these figures are not being updated "
                   "(run `ceylon-redis coordinator`)")
    return "\n".join(out)


def _stats_json(st: Stats) -> dict[str, Any]:
    def role(r: RoleStats) -> dict[str, Any]:
        return {**r.model_dump(), "success_rate": r.success_rate, "finished": r.finished}

    return {"overall": role(st.overall), "roles": [role(r) for r in st.roles],
            "coordinators_alive": st.coordinators_alive}


@main.command()
@click.option("--role", "-r", default=None, help="Only this role.")
@click.option("--watch", "-w", "watch_every", is_flag=False, flag_value=2.0, default=None,
              type=click.FloatRange(0.1), help="Refresh every N seconds (default 2) until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
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
            click.echo(_dumps(_stats_json(st), indent=2) if as_json else _stats_text(st))

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


@main.command()
@click.argument("graph_id")
@click.option("--tasks", "show_tasks", is_flag=True, help="List every task of the graph.")
@click.option("--cancel", "do_cancel", is_flag=True, help="Cancel the tasks not yet final.")
@click.option("--retry-failed", "do_retry", is_flag=True,
              help="Run the failed and cancelled tasks again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
def graph(graph_id: str, show_tasks: bool, do_cancel: bool, do_retry: bool, as_json: bool,
          url: str | None, prefix: str | None) -> None:
    """Show a graph: status, progress, failed tasks (and cancel or retry it)."""
    with Client(url, prefix) as client:
        handle = client.graph(graph_id)
        if do_cancel or do_retry:
            handle.info()  # an unknown graph: one error line, nothing done
        if do_cancel:
            click.echo(f"cancelled {handle.cancel()} tasks", err=True)
        if do_retry:
            click.echo(f"retrying {handle.retry_failed()} tasks", err=True)
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

    _emit(as_json, lambda: {**info.model_dump(), "done": info.done,
                            "tasks": [{"id": t.id, "role": t.role, "name": t.name,
                                       "status": t.status.value, "error": t.error}
                                      for t in tasks]}, text)


@main.command()
@click.argument("task_id")
@click.option("--reason", default=None, help="Why (stored as the task's error).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
def cancel(task_id: str, reason: str | None, as_json: bool, url: str | None,
           prefix: str | None) -> None:
    """Cancel a task not yet final; its dependents settle as for a failure."""
    with Client(url, prefix) as client:
        cancelled = client.cancel(task_id, reason)
        status = "CANCELLED" if cancelled else client.get(task_id).status.value
    _emit(as_json, lambda: {"id": task_id, "cancelled": cancelled, "status": status},
          lambda: f"{task_id} {'CANCELLED' if cancelled else 'was already ' + status}")


@main.command()
@click.argument("role")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@click.option("--reason", default="purged", show_default=True,
              help="Stored as each cancelled task's error.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
@_friendly_errors
def purge(role: str, yes: bool, reason: str, as_json: bool, url: str | None,
          prefix: str | None) -> None:
    """Cancel every task of ROLE that has not started (ready, scheduled, waiting)."""
    with Client(url, prefix) as client:
        q = next((q for q in client.queues() if q.role == role), None)
        if q is None:
            raise click.UsageError(f"no role {role!r} in this namespace")
        if not yes:
            click.confirm(f"Cancel {q.ready} ready, {q.scheduled} scheduled and {q.waiting} "
                          f"waiting tasks of role {role!r}?", abort=True)
        n = client.purge(role, reason)
    _emit(as_json, lambda: {"role": role, "cancelled": n},
          lambda: f"cancelled {n} tasks of role {role!r}")


@main.command()
@click.option("--scale", type=click.FloatRange(0, 10), default=0.2, show_default=True,
              help="Multiply the example's sleeps by this.")
@click.option("--url", envvar=["CEYLON_REDIS_URL", "REDIS_URL"], default=None,
              help="Redis URL (default: localhost, else an embedded Redis).")
@_friendly_errors
def demo(scale: float, url: str | None) -> None:
    """Run the skill-level example of Ceylon's tutorial and print each result."""
    from .demo import run_demo

    ok = asyncio.run(run_demo(scale=scale, url=url))
    sys.exit(0 if ok else 1)


from . import cli_dead  # noqa: E402, F401  (registers `ceylon-redis dead`)

from . import cli_metrics  # noqa: E402, F401  # isort: skip (registers `metrics`)
