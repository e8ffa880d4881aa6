"""Sans-IO helpers shared by the sync and asyncio clients: script arguments and reply parsing."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from .codec import decode_field, encode
from .errors import UnknownTaskError, ValidationError
from .keys import GROUP, check_name, check_task_id
from .limits import check_limit_key
from .models import (
    DeadLetter,
    GraphInfo,
    GraphStatus,
    OnFailure,
    QueueInfo,
    TaskInfo,
    TaskResult,
    TaskStatus,
    WorkerInfo,
)
from .progress import decode_fraction, decode_info
from .settings import Settings
from .tracing import current_traceparent

_POLICY_CODES = {"cancel": "c", "run": "r", "ignore": "i"}
_FINAL = {s.value for s in TaskStatus if s.is_final}


def new_task_id() -> str:
    """16 random characters from ``A-Z a-z 0-9 _ .`` (96 bits, base64 of 12 random bytes):
    unique enough for job ids, and short, since a task's id is in its key, its stream
    entry and its lifecycle events (24 hex digits before: 21-31 B more per queued task)."""
    return base64.b64encode(os.urandom(12), b"_.").decode()


SCRIPT_DEFAULT_TTL = 86400
DEFAULT_PRIORITY = 5
"""A task's priority unless told: the middle of 0 (last) to 9 (first); common.lua's too."""


def check_priority(priority: int | None) -> int:
    """``priority`` if it is an integer from 0 to 9 (None: the default), else ValidationError."""
    if priority is None:
        return DEFAULT_PRIORITY
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ValidationError(f"priority must be an integer from 0 (last) to 9 (first), "
                              f"not {priority!r}")
    return priority
"""Seconds the scripts keep a result whose task hash has no ``ttl`` (so it is not stored)."""


@dataclass(frozen=True)
class Dep:
    """A prerequisite with its own failure policy: ``depends_on=[Dep(id, "run"), other_id]``.

    ``on_failure``: ``"cancel"`` ends the dependent CANCELLED with the reason,
    ``"run"`` runs it anyway with the failure in ``failed_dependencies``,
    ``"ignore"`` runs it as if the edge were not there.
    """

    task_id: str
    on_failure: OnFailure = "cancel"


def check_policy(value: str) -> OnFailure:
    if value not in _POLICY_CODES:
        raise ValidationError(
            f"invalid on_failure {value!r}: use one of {', '.join(get_args(OnFailure))}")
    return value  # type: ignore[return-value]


@dataclass
class TaskSpec:
    """One task to enqueue, validated and encoded, before anything is written."""

    role: str
    data: bytes
    id: str
    name: str = ""
    depends_on: Sequence[tuple[str, OnFailure]] = ()
    max_attempts: int | None = None
    """None: the worker's default applies."""
    ttl: int = 86400
    reply_to: str = ""
    backoff_ms: int | None = None
    timeout_ms: int | None = None
    due: str = ""
    """When to run: '' as soon as ready, '+ms' from enqueue, or epoch ms (Redis's clock)."""
    priority: int = DEFAULT_PRIORITY
    """0 to 9, higher first (see ``check_priority``)."""
    limit_key: str = ""
    """What a per-key limit of the role counts this task under ('' for none)."""
    trace: str = ""
    """The producer's W3C traceparent (tracing.py), '' for none."""
    linked: frozenset[str] = frozenset()
    """Prerequisites registered beforehand from another partition (link.lua)."""

    @property
    def prerequisites(self) -> list[str]:
        return [d for d, _ in self.depends_on]

    def args(self) -> list[Any]:
        """This task's two arguments to the enqueue script: its header lines, its data."""
        ttl = "" if self.ttl == SCRIPT_DEFAULT_TTL else self.ttl
        fields = [self.id, self.role, self.name, _opt(self.max_attempts), ttl, self.reply_to,
                  _opt(self.backoff_ms), _opt(self.timeout_ms), self.due,
                "" if self.priority == DEFAULT_PRIORITY else self.priority, self.limit_key,
                  self.trace]
        for dep, policy in self.depends_on:
            fields += (dep, policy_code(policy, dep in self.linked))
        return ["\n".join(map(str, fields)), self.data]


def policy_code(policy: OnFailure, linked: bool = False) -> str:
    """The enqueue script's letter for an edge policy; upper case for a linked edge."""
    code = _POLICY_CODES[policy]
    return code.upper() if linked else code


def is_unknown_watch(reply: Sequence[Any]) -> bool:
    """True when the watch script did not find the task (in the partition it asked)."""
    return not reply or reply[0] is None


def _opt(value: int | None) -> Any:
    return "" if value is None else value


def _seconds(name: str, value: float | dt.timedelta | None, *, positive: bool) -> int | None:
    """``value`` seconds as whole milliseconds; ValidationError naming ``name`` if out of range."""
    if value is None:
        return None
    secs = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(secs, bool) or not isinstance(secs, (int, float)) or secs != secs:
        raise ValidationError(f"{name} must be a number of seconds, not {value!r}")
    if secs < 0 or (positive and secs == 0):
        raise ValidationError(f"{name} must be {'positive' if positive else 'at least 0'}, "
                              f"not {secs}")
    return round(secs * 1000)


def due_arg(delay: float | dt.timedelta | None, at: dt.datetime | float | None) -> str:
    """The enqueue script's ``due``: ``delay`` from now on Redis's clock, or ``at`` absolute."""
    if delay is not None and at is not None:
        raise ValidationError("give delay or at, not both")
    if at is not None:
        if isinstance(at, dt.datetime):
            if at.tzinfo is None:
                raise ValidationError(f"at={at!r} has no time zone: give an aware datetime")
            return str(round(at.timestamp() * 1000))
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            raise ValidationError(f"at must be a datetime or epoch seconds, not {at!r}")
        return str(round(at * 1000))
    ms = _seconds("delay", delay, positive=False)
    return f"+{ms}" if ms else ""


def _edges(depends_on: Iterable[str | Dep], default: OnFailure) -> list[tuple[str, OnFailure]]:
    check_policy(default)
    edges: dict[str, OnFailure] = {}
    for d in [depends_on] if isinstance(depends_on, (str, Dep)) else depends_on:
        if isinstance(d, Dep):
            edges[check_task_id(d.task_id)] = check_policy(d.on_failure)
        else:
            edges.setdefault(check_task_id(d), default)
    return list(edges.items())


def make_spec(settings: Settings, role: str, data: Any, *, name: str | None = None,
              task_id: str | None = None, depends_on: Iterable[str | Dep] = (),
              on_failure: OnFailure = "cancel",
              max_attempts: int | None = None, result_ttl: int | None = None,
              backoff: float | None = None, timeout: float | None = None,
              delay: float | dt.timedelta | None = None, at: dt.datetime | float | None = None,
              priority: int | None = None, limit_key: str | None = None,
              what: str = "data") -> TaskSpec:
    """Validate and encode one task; raises ValidationError/EncodeError naming the problem."""
    check_name("role", role)
    tid = check_task_id(task_id) if task_id is not None else new_task_id()
    payload = encode(data, what)
    if len(payload) > settings.max_payload_bytes:
        raise ValidationError(
            f"payload of task {tid} is {len(payload)} bytes, over the limit of "
            f"{settings.max_payload_bytes} (Settings.max_payload_bytes)")
    deps = _edges(depends_on, on_failure)
    if max_attempts is not None and (isinstance(max_attempts, bool)
                                     or not isinstance(max_attempts, int) or max_attempts < 1):
        raise ValidationError(f"max_attempts must be an integer of at least 1, "
                              f"not {max_attempts!r}")
    label = name if name is not None else ""
    if not isinstance(label, str) or "\n" in label or len(label) > 256:
        raise ValidationError(f"task name must be one line of at most 256 characters: {label!r}")
    return TaskSpec(role=role, data=payload, id=tid, name=label, depends_on=deps,
                    max_attempts=max_attempts, ttl=result_ttl or settings.result_ttl,
                    backoff_ms=_seconds("backoff", backoff, positive=False),
                    timeout_ms=_seconds("timeout", timeout, positive=True),
                    due=due_arg(delay, at), priority=check_priority(priority),
                    limit_key=check_limit_key(limit_key), trace=current_traceparent())


def make_specs(settings: Settings, role: str, items: Iterable[Any],
               names: Sequence[str] | None, **options: Any) -> list[TaskSpec]:
    """Specs for many tasks sharing options: validated once, then only each payload.

    The hot path of ``enqueue_many``: the first task goes through make_spec, so any
    bad option is refused before anything is encoded; the others copy its options.
    """
    if "name" in options:
        raise ValidationError("enqueue_many takes names=[...] (one per item), not name=")
    if "task_id" in options:
        raise ValidationError("enqueue_many makes each task's id; it takes no task_id=")
    items = list(items)
    if names is not None and len(names) != len(items):
        raise ValidationError(f"{len(names)} names for {len(items)} items")
    if not items:
        return []
    if names is not None:
        return [make_spec(settings, role, data, name=names[i], what=f"items[{i}]", **options)
                for i, data in enumerate(items)]
    first = make_spec(settings, role, items[0], what="items[0]", **options)
    limit = settings.max_payload_bytes
    specs = [first]
    for i in range(1, len(items)):
        payload = encode(items[i], f"items[{i}]")
        tid = new_task_id()
        if len(payload) > limit:
            raise ValidationError(
                f"payload of task {tid} is {len(payload)} bytes, over the limit of "
                f"{limit} (Settings.max_payload_bytes)")
        specs.append(TaskSpec(role=role, data=payload, id=tid, depends_on=first.depends_on,
                              max_attempts=first.max_attempts, ttl=first.ttl,
                              backoff_ms=first.backoff_ms, timeout_ms=first.timeout_ms,
                              due=first.due, priority=first.priority,
                              limit_key=first.limit_key, trace=first.trace))
    return specs


@dataclass(frozen=True)
class TaskDef:
    """One task of a graph for ``enqueue_graph``: prerequisites may be other TaskDefs' ids."""

    role: str
    data: Any = None
    id: str | None = None
    name: str | None = None
    depends_on: Sequence[str | Dep] = ()
    max_attempts: int | None = None
    on_failure: OnFailure = "cancel"
    """Policy of this task's edges that are plain ids (a Dep brings its own)."""
    backoff: float | None = None
    timeout: float | None = None
    priority: int | None = None
    """0 to 9, higher first; None: the default (5)."""
    limit_key: str | None = None
    """What a per-key limit of the role counts it under."""


def graph_specs(settings: Settings, tasks: Sequence[TaskDef]) -> list[TaskSpec]:
    """Validated specs for a graph; DependencyError naming a cycle, before anything is written."""
    from .graph import check_acyclic

    specs = [make_spec(settings, t.role, t.data, name=t.name, task_id=t.id,
                       depends_on=t.depends_on, max_attempts=t.max_attempts,
                       on_failure=t.on_failure, backoff=t.backoff, timeout=t.timeout,
                       priority=t.priority, limit_key=t.limit_key,
                       what=f"tasks[{i}].data")
             for i, t in enumerate(tasks)]
    check_acyclic({s.id: s.prerequisites for s in specs})
    return specs


def enqueue_args(specs: Sequence[TaskSpec], graph_id: str = "", graph_ttl: int = 0) -> list[Any]:
    """ARGV of the enqueue script for these tasks (as one graph when ``graph_id`` is set)."""
    seen: set[str] = set()
    args: list[Any] = [graph_id, graph_ttl, len(specs)]
    for spec in specs:
        if spec.id in seen:
            raise ValidationError(f"task id {spec.id} appears twice in one call")
        seen.add(spec.id)
        args.extend(spec.args())
    return args


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _time(value: Any) -> dt.datetime | None:
    """A Unix time field; None when absent or not a time (a hash edited by hand)."""
    try:
        return dt.datetime.fromtimestamp(float(_text(value)), tz=dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _entry_seconds(entry: Any) -> str | None:
    """When a stream entry was added, from its id "<ms>-<seq>" (a task enqueued ready
    keeps no enqueued_at until it starts: its entry id is that time)."""
    if not entry:
        return None
    ms = _text(entry).split("-", 1)[0]
    return f"{ms[:-3]}.{ms[-3:]}" if ms.isdigit() and len(ms) > 3 else None


def _decode_or_none(value: Any, field: str) -> Any:
    """A stored msgpack field's value (None when empty); an Undecodable naming the field
    when it does not decode, so that reading a task never fails on it."""
    return decode_field(value, field) if value else None


def result_from_fields(task_id: str, status: str, output: bytes | None,
                       error: str | None) -> TaskResult:
    st = TaskStatus(status)
    return TaskResult(success=st is TaskStatus.COMPLETED, output=_decode_or_none(output, "output"),
                      error=error or None, task_id=task_id, status=st)


def parse_task(task_id: str, raw: Mapping[bytes, bytes]) -> TaskInfo:
    """A TaskInfo from the task hash; UnknownTaskError when the hash is empty."""
    if not raw:
        raise UnknownTaskError(f"unknown task {task_id} (never enqueued, or its result expired)")
    f = {_text(k): v for k, v in raw.items()}
    try:
        status = TaskStatus(_text(f.get("status", b"")))
    except ValueError:
        raise ValidationError(
            f"task {task_id} has an invalid status {f.get('status')!r} in Redis (edited by "
            "hand?): a worker fails it when it meets it, and cancel ends it") from None
    error = _text(f["error"]) if f.get("error") else None

    def number(name: str) -> int | None:
        raw = f.get(name)
        try:
            return int(raw) if raw else None
        except ValueError:
            raise ValidationError(
                f"task {task_id} has an invalid {name} {_text(raw)!r} in Redis") from None

    timeout = number("timeout")
    priority = number("priority")

    result = (result_from_fields(task_id, status.value, f.get("output"), error)
              if status.is_final else None)
    return TaskInfo(
        id=task_id, role=_text(f.get("role", b"")), name=_text(f.get("name", b"")),
        status=status, attempt=number("attempt") or 0, max_attempts=number("max_attempts"),
        timeout=timeout / 1000 if timeout else None,
        priority=DEFAULT_PRIORITY if priority is None else priority,
        limit_key=_text(f["limit_key"]) if f.get("limit_key") else None,
        held=bool(f.get("held")) and status in (TaskStatus.QUEUED, TaskStatus.SCHEDULED),
        due_at=_time(f.get("due_at")) if status is TaskStatus.SCHEDULED or (
            status is TaskStatus.WAITING) else None,
        dead_letter=_text(f["dead"]) if f.get("dead") else None,
        worker=_text(f["worker"]) if f.get("worker") else None,
        depends_on=_text(f.get("depends_on", b"")).split(),
        graph=_text(f["graph"]) if f.get("graph") else None,
        enqueued_at=_time(f.get("enqueued_at") or _entry_seconds(f.get("entry"))),
        started_at=_time(f.get("started_at")),
        finished_at=_time(f.get("finished_at")), data=_decode_or_none(f.get("data"), "data"),
        result=result, error=error, crashes=number("crashes") or 0,
        progress=decode_fraction(f.get("progress")),
        progress_info=decode_info(f.get("progress_info")),
        progress_at=_time(f.get("progress_at")))


def parse_notification(message: bytes) -> TaskResult:
    """The completion message finish publishes: id, status, error length, error+output."""
    tid, status, err_len, rest = message.split(b"\n", 3)
    n = int(err_len)
    return result_from_fields(tid.decode(), status.decode(), rest[n:] or None,
                              rest[:n].decode() or None)


def parse_watch(task_id: str, reply: Sequence[Any]) -> TaskResult | None:
    """Reply of the watch script: None while running, a TaskResult once final."""
    if not reply or reply[0] is None:
        raise UnknownTaskError(f"unknown task {task_id} (never enqueued, or its result expired)")
    status = _text(reply[0])
    if status not in _FINAL:  # also a status edited into nonsense: its worker fails it
        return None
    return result_from_fields(task_id, status, reply[1], _text(reply[2]) if reply[2] else None)


def parse_dead_letter(entry_id: Any, fields: Mapping[bytes, bytes]) -> DeadLetter:
    """A DeadLetter from one entry of ``{P}:dead``."""
    f = {_text(k): v.decode(errors="replace") if isinstance(v, bytes) else str(v)
         for k, v in fields.items()}
    return DeadLetter(id=_text(entry_id), task_id=f.get("task", ""), role=f.get("role", ""),
                      name=f.get("name", ""), reason=f.get("reason", ""),
                      error=f.get("error", ""),
                      attempts=int(f["attempts"]) if f.get("attempts", "").isdigit() else 0,
                      at=_time(f.get("at")))


def parse_queue(role: str, xlen: int, groups: Any, alive_roles: list[list[str]],
                waiting: int = 0, scheduled: int = 0) -> QueueInfo:
    """One role's QueueInfo from XLEN, XINFO GROUPS, the live workers' roles, SCARD waiting."""
    pending = consumers = 0
    for group in groups or []:
        g = {_text(k): v for k, v in group.items()} if isinstance(group, dict) else {}
        if _text(g.get("name", b"")) == GROUP:
            pending, consumers = int(g.get("pending", 0)), int(g.get("consumers", 0))
    return QueueInfo(role=role, ready=max(0, xlen - pending), running=pending,
                     consumers=consumers, waiting=waiting, scheduled=scheduled,
                     workers_alive=sum(1 for roles in alive_roles if role in roles))


def last_delivered(groups: Any) -> str:
    """The workers group's last-delivered entry id from XINFO GROUPS ('-' without the group):
    the entries after it are the ready ones."""
    for group in groups or []:
        g = {_text(k): v for k, v in group.items()} if isinstance(group, dict) else {}
        if _text(g.get("name", b"")) == GROUP:
            return _text(g.get("last-delivered-id", b"0-0"))
    return "-"


def parse_worker(worker_id: str, raw: Mapping[bytes, bytes], heartbeat_ms: float,
                 now_ms: float, settings: Settings) -> WorkerInfo:
    """A WorkerInfo from its hash and heartbeat score, judged on Redis's clock ``now_ms``."""
    f = {_text(k): _text(v) for k, v in raw.items()}
    age = max(0.0, (now_ms - heartbeat_ms) / 1000)
    alive = age <= settings.worker_timeout
    return WorkerInfo(
        id=worker_id, roles=f.get("roles", "").split(), host=f.get("host", ""),
        pid=_count(f.get("pid")), concurrency=_count(f.get("concurrency")),
        started_at=_time(f.get("started_at")),
        heartbeat_at=dt.datetime.fromtimestamp(heartbeat_ms / 1000, tz=dt.timezone.utc),
        alive=alive, heartbeat_age=round(age, 3),
        late=alive and age > 2 * settings.heartbeat_interval)


def _count(value: str | None) -> int:
    """A whole number field of a registration (0 when absent or edited into nonsense)."""
    return int(value) if value and value.isdigit() else 0


def parse_graph(graph_id: str, raw: Mapping[bytes, bytes]) -> GraphInfo:
    """A GraphInfo from the graph hash; UnknownTaskError when it is gone."""
    if not raw:
        raise UnknownTaskError(f"unknown graph {graph_id} (never enqueued, or it expired)")
    f = {_text(k): _text(v) for k, v in raw.items()}
    total, completed = int(f.get("total") or 0), int(f.get("completed") or 0)
    failed, cancelled = int(f.get("failed") or 0), int(f.get("cancelled") or 0)
    status: GraphStatus
    if f.get("cancelled_at"):
        status = "cancelled"
    elif completed + failed + cancelled < total:
        status = "running"
    else:
        status = "completed" if completed == total else "failed"
    return GraphInfo(id=graph_id, status=status, total=total, completed=completed,
                     failed=failed, cancelled=cancelled, created_at=_time(f.get("created_at")),
                     finished_at=_time(f.get("finished_at")), ttl=int(f.get("ttl") or 0))


@dataclass(frozen=True)
class Started:
    """One item of the start script's reply: run it, or (attempt 0) skip it with a reason."""

    task_id: str
    attempt: int
    name: str = ""
    data: bytes = b""
    outputs: dict[str, bytes] | None = None
    failed: dict[str, str] | None = None
    reason: str = ""
    timeout: float | None = None
    """Seconds this attempt may run, when the task was enqueued with a timeout."""
    tick: float | None = None
    """Epoch seconds of the schedule's tick that enqueued the task, if one did."""
    trace: str = ""
    """The producer's W3C traceparent, if it enqueued within a trace (tracing.py)."""


def parse_started(item: Sequence[Any]) -> Started:
    tid, attempt = _text(item[0]), int(item[1])
    if attempt == 0:
        return Started(tid, 0, reason=_text(item[2]))
    timeout = int(item[4]) / 1000 if item[4] else None
    tick = int(item[5]) / 1000 if item[5] else None
    n_failed = int(item[7])
    cut = 8 + 2 * n_failed
    failed = {_text(item[i]): _text(item[i + 1]) for i in range(8, cut, 2)}
    outputs = {_text(item[i]): item[i + 1] for i in range(cut, len(item), 2)}
    return Started(tid, attempt, _text(item[2]), item[3], outputs, failed, timeout=timeout,
                   tick=tick, trace=_text(item[6]))
