"""Replies into models: the pure half of inspecting, cancelling and dead letters.

The client methods send the commands (asyncio or blocking); these functions queue
the reads on a pipeline and turn what comes back into ``QueueInfo``, ``Stats``,
``DeadLetter`` and counts, so the two clients share every line of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UnknownTaskError, ValidationError, raise_for_script_error
from ..keys import ENTRY_ID, Keys, check_name
from ..models import DeadLetter, DeadRetry, QueueInfo, Stats
from ..partitions import Partitions
from ..protocol import last_delivered, parse_dead_letter, parse_queue
from ..settings import Settings
from ..stats import role_stats

DEAD_LETTER_SCAN = 10_000
"""Newest dead letters read to count them per role (a malformed entry's role is "")."""
_UNKNOWN_TASK = "unknown task"
"""How dead_retry.lua's reason for a task it did not find begins."""


def redis_ms(reply: tuple[int, int]) -> float:
    """Milliseconds of a TIME-like (seconds, microseconds) reply."""
    return reply[0] * 1000 + reply[1] / 1000


def alive_count(settings: Settings, now: tuple[int, int], scores: list[Any]) -> int:
    """Heartbeats (member, ms) of ``scores`` fresher than the worker timeout."""
    limit = settings.worker_timeout * 1000
    return sum(1 for _, score in scores if redis_ms(now) - score <= limit)


def queue_reads(pipe: Any, keys: Keys, roles: list[str]) -> None:
    """Queue four reads per role: stream length, groups, waiting and scheduled counts."""
    for role in roles:
        pipe.xlen(keys.stream(role))
        pipe.xinfo_groups(keys.stream(role))
        pipe.scard(keys.waiting(role))
        pipe.zcard(keys.scheduled(role))


def role_names(members: Any, schedule_roles: Any) -> tuple[list[str], dict[str, int]]:
    """Every role, sorted: those seen on a queue and those a schedule feeds; and how many
    schedules feed each."""
    feeds = {k.decode(): int(v) for k, v in (schedule_roles or {}).items()}
    return sorted({m.decode() for m in members or ()} | set(feeds)), feeds


def queue_rows(roles: list[str], replies: list[Any], alive: list[list[str]],
               feeds: dict[str, int] | None = None,
               held: dict[bytes, bytes] | None = None) -> list[QueueInfo]:
    """``held``: ``{P}:held``, the tasks of each role waiting for a limit."""
    rows = [parse_queue(role, _int(replies[4 * i]), _list(replies[4 * i + 1]), alive,
                        _int(replies[4 * i + 2]), _int(replies[4 * i + 3]))
            for i, role in enumerate(roles)]
    counts = {k.decode(): int(v) for k, v in (held or {}).items()}
    for q in rows:
        q.schedules = (feeds or {}).get(q.role, 0)
        q.held = counts.get(q.role, 0)
    return rows


def oldest_ready_reads(pipe: Any, keys: Keys, rows: list[QueueInfo],
                       replies: list[Any]) -> bool:
    """Queue on ``pipe`` a read of each role's first ready entry; False if no role has a
    ready task."""
    ready = [(i, q) for i, q in enumerate(rows) if q.ready]
    for i, q in ready:
        start = last_delivered(_list(replies[4 * i + 1]))
        pipe.xrange(keys.stream(q.role), min=start if start == "-" else "(" + start, count=1)
    return bool(ready)


def set_oldest_ready(rows: list[QueueInfo], firsts: list[Any], now: Any) -> None:
    now_ms = redis_ms(now)
    for q, first in zip((q for q in rows if q.ready), firsts):
        if first:
            q.oldest_ready_age = max(0.0, (now_ms - int(first[0][0].split(b"-")[0])) / 1000)


def merge_queues(per_partition: list[list[QueueInfo]]) -> list[QueueInfo]:
    """One row per role from each partition's rows: counts summed, the oldest age kept."""
    merged: dict[str, QueueInfo] = {}
    for rows in per_partition:
        for q in rows:
            m = merged.get(q.role)
            if m is None:
                merged[q.role] = q.model_copy()
                continue
            m.ready += q.ready
            m.running += q.running
            m.waiting += q.waiting
            m.scheduled += q.scheduled
            m.schedules += q.schedules
            m.held += q.held
            m.consumers = max(m.consumers, q.consumers)
            m.workers_alive = max(m.workers_alive, q.workers_alive)
            ages = [a for a in (m.oldest_ready_age, q.oldest_ready_age) if a is not None]
            m.oldest_ready_age = max(ages) if ages else None
    return [merged[r] for r in sorted(merged)]


def stats_reads(pipe: Any, parts: Partitions, roles: list[str]) -> None:
    """Queue one HGETALL per role and partition, then the coordinators' heartbeats."""
    for r in roles:
        for keys in parts.all:
            pipe.hgetall(keys.stats(r))
    pipe.zrange(parts.all[0].coordinators, 0, -1, withscores=True)


def stats_from(settings: Settings, parts: Partitions, roles: list[str], replies: list[Any],
               queues: list[QueueInfo], now: Any) -> Stats:
    """Stats from the replies of ``stats_reads`` and the Redis clock."""
    *raws, coordinators = replies
    minute = now[0] // 60
    by_role = {q.role: q for q in queues}
    n = parts.count  # one hash per role and partition, summed
    rows = [role_stats(r, raws[i * n:(i + 1) * n], minute,
                       [by_role[r]] if r in by_role else [])
            for i, r in enumerate(roles)]
    overall = role_stats("*", raws, minute, [by_role[r] for r in roles if r in by_role])
    return Stats(overall=overall, roles=rows,
                 coordinators_alive=alive_count(settings, now, coordinators))


def known(cancel_reply: Any) -> bool:
    """False when the cancel script did not find the task (in the partition it asked)."""
    before = cancel_reply[2] if isinstance(cancel_reply, list) and len(cancel_reply) > 2 else None
    return before is None or (len(before) > 1 and before[1] is not None)


def cancelled(task_id: str, reply: Any) -> bool:
    """Whether cancel.lua's ``reply`` cancelled the task; UnknownTaskError if none was found."""
    raise_for_script_error(reply)
    before = reply[2][1] if len(reply) > 2 and len(reply[2]) > 1 else None
    if before is None:
        raise UnknownTaskError(f"unknown task {task_id} (never enqueued, or its result expired)")
    return int(reply[1]) > 0


def count_cancelled(replies: list[Any]) -> int:
    """How many cancel replies say the task was cancelled (not already final, not unknown)."""
    return sum(1 for r in replies if isinstance(r, list) and len(r) > 1 and _int(r[1]) > 0)


def purge_reads(pipe: Any, keys: Keys, role: str) -> None:
    """Queue the reads that find a role's scheduled and waiting tasks and its ready entries."""
    check_name("role", role)
    pipe.zrange(keys.scheduled(role), 0, -1)
    pipe.smembers(keys.waiting(role))
    pipe.xinfo_groups(keys.stream(role))
    pipe.zrange(keys.priority(role), 0, -1)
    pipe.smembers(keys.blocking(role))


def purge_start(replies: list[Any]) -> tuple[list[str], str, list[str]]:
    """Ids of the scheduled, waiting and prioritized tasks, where the ready entries begin,
    and the scopes whose lists hold tasks waiting for a concurrency slot."""
    held = [m.decode() for m in [*_list(replies[0]), *(replies[1] or ())]]
    held += [m.decode().rpartition(":")[2] for m in _list(replies[3])]
    start = last_delivered(_list(replies[2]))
    scopes = sorted(m.decode() for m in replies[4] or ())
    return held, start if start == "-" else "(" + start, scopes


def ready_page(entries: list[Any]) -> list[str]:
    """The task ids of a page of stream entries (a prioritized task's placeholder names
    none: the priority zset does)."""
    return [f[b"id"].decode() for _, f in entries if f.get(b"id") not in (None, b"", b"~")]


def dead_by_role(total: int, rows: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, fields in rows:
        role = fields.get(b"role", b"").decode(errors="replace")
        counts[role] = counts.get(role, 0) + 1
    if total > len(rows):
        counts["?"] = total - len(rows)
    return counts


def dead_entry_ids(ids: Sequence[str], dead_fields: Sequence[Any]) -> list[str]:
    """Entry ids of dead letters named by entry id or by task id (its ``dead`` field)."""
    out = []
    for given, field in zip(ids, dead_fields):
        if ENTRY_ID.match(given):
            out.append(given)
        elif field:
            out.append(field.decode())
    return out


def dead_page(rows: list[Any], report: DeadRetry) -> list[str]:
    """The task ids of one page of dead letters; malformed entries are reported skipped."""
    ids = []
    for entry_id, fields in rows:
        tid = fields.get(b"task", b"").decode()
        if tid:
            ids.append(tid)
        else:
            report.skipped[entry_id.decode()] = "malformed entry, no task to retry (purge it)"
    return ids


def newest(per_partition: list[list[DeadLetter]], limit: int) -> list[DeadLetter]:
    """The newest ``limit`` dead letters of all partitions (entry ids order them in time)."""
    rows = [d for ds in per_partition for d in ds]
    if len(per_partition) > 1:
        rows.sort(key=lambda d: tuple(int(p) for p in d.id.split("-")), reverse=True)
    return rows[:limit]


def one_dead_letter(id: str, rows: list[Any]) -> DeadLetter:
    if not rows:
        raise UnknownTaskError(f"no dead letter for {id}")
    if len(rows) > 1:
        raise ValidationError(f"entry id {id} names a dead letter in {len(rows)} partitions "
                              "(each numbers its own): name the task id instead")
    return parse_dead_letter(*rows[0])


def sum_counts(per_partition: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in per_partition:
        for role, n in counts.items():
            total[role] = total.get(role, 0) + n
    return total


def note_dead_retry(ids: list[str], reply: Any, report: DeadRetry,
                    unknown: dict[str, str]) -> list[str]:
    """Count a dead_retry.lua reply into ``report``; tasks it did not find go to ``unknown``
    (the caller may look in another partition). Returns the graphs to retry."""
    retried, graphs, skipped = reply
    report.retried += int(retried)
    for tid in ids:
        unknown.pop(tid, None)
    for tid, why in _pairs(skipped).items():
        (unknown if why.startswith(_UNKNOWN_TASK) else report.skipped)[tid] = why
    return [g.decode() for g in graphs]


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
