"""Sans-IO helpers shared by the sync and asyncio clients: script arguments and reply parsing."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .codec import decode, encode
from .errors import UnknownTaskError, ValidationError
from .keys import GROUP, check_name, check_task_id
from .models import QueueInfo, TaskInfo, TaskResult, TaskStatus, WorkerInfo
from .settings import Settings


def new_task_id() -> str:
    return uuid.uuid4().hex


@dataclass
class TaskSpec:
    """One task to enqueue, validated and encoded, before anything is written."""

    role: str
    data: bytes
    id: str
    name: str = ""
    depends_on: Sequence[str] = ()
    max_attempts: int = 1
    ttl: int = 86400
    reply_to: str = ""

    def args(self) -> list[Any]:
        return [self.id, self.role, self.name, self.data, self.max_attempts, self.ttl,
                self.reply_to, len(self.depends_on), *self.depends_on]


def make_spec(settings: Settings, role: str, data: Any, *, name: str | None = None,
              task_id: str | None = None, depends_on: Iterable[str] = (),
              max_attempts: int | None = None, result_ttl: int | None = None,
              what: str = "data") -> TaskSpec:
    """Validate and encode one task; raises ValidationError/EncodeError naming the problem."""
    check_name("role", role)
    tid = check_task_id(task_id) if task_id is not None else new_task_id()
    payload = encode(data, what)
    if len(payload) > settings.max_payload_bytes:
        raise ValidationError(
            f"payload of task {tid} is {len(payload)} bytes, over the limit of "
            f"{settings.max_payload_bytes} (Settings.max_payload_bytes)")
    deps = [check_task_id(d) for d in dict.fromkeys(depends_on)]
    attempts = settings.max_attempts if max_attempts is None else int(max_attempts)
    if attempts < 1:
        raise ValidationError(f"max_attempts must be at least 1, not {attempts}")
    label = name if name is not None else ""
    if not isinstance(label, str) or "\n" in label or len(label) > 256:
        raise ValidationError(f"task name must be one line of at most 256 characters: {label!r}")
    return TaskSpec(role=role, data=payload, id=tid, name=label, depends_on=deps,
                    max_attempts=attempts, ttl=result_ttl or settings.result_ttl)


@dataclass(frozen=True)
class TaskDef:
    """One task of a graph for ``enqueue_graph``: prerequisites may be other TaskDefs' ids."""

    role: str
    data: Any = None
    id: str | None = None
    name: str | None = None
    depends_on: Sequence[str] = ()
    max_attempts: int | None = None


def graph_specs(settings: Settings, tasks: Sequence[TaskDef]) -> list[TaskSpec]:
    """Validated specs for a graph; DependencyError naming a cycle, before anything is written."""
    from .graph import check_acyclic

    specs = [make_spec(settings, t.role, t.data, name=t.name, task_id=t.id,
                       depends_on=t.depends_on, max_attempts=t.max_attempts) for t in tasks]
    check_acyclic({s.id: list(s.depends_on) for s in specs})
    return specs


def enqueue_args(specs: Sequence[TaskSpec]) -> list[Any]:
    """ARGV of the enqueue script for these tasks."""
    seen: set[str] = set()
    args: list[Any] = [len(specs)]
    for spec in specs:
        if spec.id in seen:
            raise ValidationError(f"task id {spec.id} appears twice in one call")
        seen.add(spec.id)
        args.extend(spec.args())
    return args


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(float(_text(value)), tz=dt.timezone.utc)


def _decode_or_none(value: Any) -> Any:
    return decode(value) if value else None


def result_from_fields(task_id: str, status: str, output: bytes | None,
                       error: str | None) -> TaskResult:
    st = TaskStatus(status)
    return TaskResult(success=st is TaskStatus.COMPLETED, output=_decode_or_none(output),
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
            f"task {task_id} has an invalid status {f.get('status')!r} in Redis") from None
    error = _text(f["error"]) if f.get("error") else None
    result = (result_from_fields(task_id, status.value, f.get("output"), error)
              if status.is_final else None)
    return TaskInfo(
        id=task_id, role=_text(f.get("role", b"")), name=_text(f.get("name", b"")),
        status=status, attempt=int(f.get("attempt") or 0),
        max_attempts=int(f.get("max_attempts") or 1),
        worker=_text(f["worker"]) if f.get("worker") else None,
        depends_on=_text(f.get("depends_on", b"")).split(),
        enqueued_at=_time(f.get("enqueued_at")), started_at=_time(f.get("started_at")),
        finished_at=_time(f.get("finished_at")), data=_decode_or_none(f.get("data")),
        result=result, error=error)


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
    if not TaskStatus(status).is_final:
        return None
    return result_from_fields(task_id, status, reply[1], _text(reply[2]) if reply[2] else None)


def parse_queue(role: str, xlen: int, groups: Any, alive_roles: list[list[str]]) -> QueueInfo:
    """One role's QueueInfo from XLEN, XINFO GROUPS and the live workers' roles."""
    pending = consumers = 0
    for group in groups or []:
        g = {_text(k): v for k, v in group.items()} if isinstance(group, dict) else {}
        if _text(g.get("name", b"")) == GROUP:
            pending, consumers = int(g.get("pending", 0)), int(g.get("consumers", 0))
    return QueueInfo(role=role, ready=max(0, xlen - pending), running=pending,
                     consumers=consumers,
                     workers_alive=sum(1 for roles in alive_roles if role in roles))


def parse_worker(worker_id: str, raw: Mapping[bytes, bytes], heartbeat_ms: float,
                 alive: bool) -> WorkerInfo:
    f = {_text(k): _text(v) for k, v in raw.items()}
    return WorkerInfo(
        id=worker_id, roles=f.get("roles", "").split(), host=f.get("host", ""),
        pid=int(f.get("pid") or 0), concurrency=int(f.get("concurrency") or 0),
        started_at=_time(f.get("started_at")),
        heartbeat_at=dt.datetime.fromtimestamp(heartbeat_ms / 1000, tz=dt.timezone.utc),
        alive=alive)
