"""``ceylon-redis enqueue``: one task from DATA or one per line of a file, and --wait."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, TextIO

import click

from ..client import Client
from ..errors import TaskTimeoutError
from ..models import TaskResult
from .common import connection_options, dumps, emit, friendly_errors, priority_option


@click.command()
@click.argument("role")
@click.argument("data", required=False)
@click.option("--name", default=None, help="A label for the task.")
@click.option("--id", "task_id", default=None,
              help="Task id (default: 16 random characters, 96 bits).")
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
@priority_option
@click.option("--limit-key", default=None,
              help="What a per-key limit of ROLE counts this task under (say a customer id).")
@click.option("--from-file", "-f", "from_file", type=click.File("r"), default=None,
              help="Enqueue one task per line of this JSON Lines file ('-': stdin) "
                   "instead of DATA.")
@click.option("--wait", "wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=None, help="Seconds --wait waits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@friendly_errors
def enqueue(role: str, data: str | None, name: str | None, task_id: str | None,
            depends_on: tuple[str, ...], on_failure: str, max_attempts: int | None,
            backoff: float | None, time_limit: float | None, delay: float | None,
            priority: int | None, limit_key: str | None, from_file: TextIO | None,
            wait: bool, timeout: float | None, as_json: bool, url: str | None,
            prefix: str | None) -> None:
    """Enqueue a task for ROLE with DATA (JSON); print its id (or its result with --wait).

    With --from-file, enqueue one task per line and print one id per line; a
    progress bar shows on a terminal for the enqueue and for --wait.
    """
    if from_file is not None:
        if data is not None or task_id or depends_on or name:
            raise click.UsageError("--from-file takes no DATA, --id, --name or --depends-on")
        enqueue_file(role, from_file, dict(max_attempts=max_attempts, backoff=backoff,
                                           timeout=time_limit, delay=delay, priority=priority,
                                           limit_key=limit_key),
                     wait, timeout, as_json, url, prefix)
        return
    payload = _json_arg(data if data is not None else "null", "DATA")
    with Client(url, prefix) as client:
        tid = client.enqueue(role, payload, name=name, task_id=task_id, depends_on=depends_on,
                             on_failure=on_failure,  # type: ignore[arg-type]
                             max_attempts=max_attempts, backoff=backoff, timeout=time_limit,
                             delay=delay, priority=priority, limit_key=limit_key)
        if not wait:
            emit(as_json, lambda: {"id": tid}, lambda: tid)
            return
        results = _wait_or_exit(client, [tid], timeout)
    emit(as_json, lambda: dict(results[0]), lambda: _result_text(results[0]))
    if not results[0].success:
        sys.exit(3)


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None


def _result_text(result: TaskResult) -> str:
    return (f"{result.task_id} {result.status.value if result.status else ''}\n"
            + (dumps(result.output) if result.success else f"error: {result.error}"))


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
            emit(as_json, lambda: [{"id": t} for t in ids], lambda: "\n".join(ids))
            return
        results = _wait_or_exit(client, ids, timeout)
    emit(as_json, lambda: [dict(r) for r in results],
         lambda: "\n".join(_result_text(r).replace("\n", " ", 1) for r in results))
    if not all(r.success for r in results):
        sys.exit(3)
