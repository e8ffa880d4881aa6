"""The dashboard's task lists, one page at a time: each reads a window of the structure
that holds the tasks of a status (a stream, a set, a sorted set, the lifecycle stream),
never a scan of the keyspace. A cursor says where the next page starts."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import AsyncClient
from ..errors import UnknownTaskError, ValidationError
from ..events import parse_entries
from ..keys import ENTRY_ID, Keys
from ..models import DeadLetter, TaskEvent, TaskInfo
from ..protocol import parse_dead_letter, parse_task

ROW_FIELDS = ("status", "role", "name", "attempt", "max_attempts", "worker", "entry",
              "enqueued_at", "started_at", "finished_at", "progress", "priority", "held",
              "error", "graph", "limit_key")
"""What a list row shows of a task: no data, no output (they can be large)."""

LIST_STATUSES = ("queued", "running", "waiting", "scheduled", "finished", "completed",
                 "failed", "cancelled")
FINAL_KINDS = {"finished": frozenset({"completed", "failed", "cancelled"}),
               "completed": frozenset({"completed"}), "failed": frozenset({"failed"}),
               "cancelled": frozenset({"cancelled"})}
RECENT_LETTERS = {"finished": "CFX", "completed": "C", "failed": "F", "cancelled": "X"}
"""The status letters of ``{P}:recent:<role>`` items each list shows."""
MERGE_SCAN = 20_000
"""List items one page of finished tasks reads at most (from the coordinators' lists)."""
LIFECYCLE_SCAN = 5_000
"""Lifecycle entries one page of finished tasks reads at most (a filter that matches
little returns a short page and a cursor to look further back)."""
GROUP = "workers"


@dataclass
class Page:
    """One page of a list: its rows, the cursor of the next ("" at the end), and what the
    page could not say (a task gone since it was listed)."""

    tasks: list[TaskInfo] = field(default_factory=list)
    next: str = ""
    searched_to: str = ""
    """For lists read from the lifecycle stream: the oldest entry time looked at."""


_WHOLE = re.compile(r"[0-9]{1,18}")


def whole(pos: str) -> int:
    """A cursor's number (0 when empty); ValidationError for anything else."""
    if not pos:
        return 0
    if not _WHOLE.fullmatch(pos):
        raise ValidationError(f"bad cursor position {pos!r}")
    return int(pos)


def entry(pos: str) -> str:
    """A cursor's stream entry id, checked; ValidationError for anything else."""
    if not ENTRY_ID.match(pos):
        raise ValidationError(f"bad cursor position {pos!r}")
    return pos


def _cursor(cursor: str, parts: int) -> tuple[int, str]:
    """A cursor "<partition>:<position>" (or "" for the start) split and checked."""
    if not cursor:
        return 0, ""
    part, _, pos = cursor.partition(":")
    if not _WHOLE.fullmatch(part) or int(part) >= parts:
        raise ValidationError(f"bad cursor {cursor!r}")
    return int(part), pos


async def rows(client: AsyncClient, keys: Keys, ids: Sequence[str]) -> list[TaskInfo]:
    """The list rows of ``ids`` (those whose hash is gone are left out), in one pipeline."""
    async with client.redis.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.hmget(keys.task(tid), *ROW_FIELDS)
        replies = await pipe.execute()
    out = []
    for tid, values in zip(ids, replies):
        raw = {f.encode(): v for f, v in zip(ROW_FIELDS, values) if v is not None}
        try:
            out.append(parse_task(tid, raw))
        except (UnknownTaskError, ValidationError):
            continue
    return out


async def tasks_page(client: AsyncClient, role: str, status: str, cursor: str = "",
                     size: int = 50) -> Page:
    """One page of the role's tasks of a status (see LIST_STATUSES)."""
    if status not in LIST_STATUSES:
        raise ValidationError(f"unknown status {status!r}; one of {', '.join(LIST_STATUSES)}")
    parts = client.parts.all
    part, pos = _cursor(cursor, len(parts))
    page = Page()
    while part < len(parts):
        got, pos = await _READERS.get(status, _finished)(client, parts[part], role, status,
                                                        pos, size - len(page.tasks), page)
        page.tasks += got
        if pos:
            page.next = f"{part}:{pos}"
            return page
        part += 1
        if len(page.tasks) >= size:  # full: the next page starts at the next partition
            page.next = f"{part}:" if part < len(parts) else ""
            return page
    return page


async def _queued(client: AsyncClient, keys: Keys, role: str, status: str, pos: str,
                  size: int, page: Page) -> tuple[list[TaskInfo], str]:
    """QUEUED and RUNNING tasks on the role's stream, oldest first; prioritized ones
    first (the priority zset, best first), position "p<offset>" there, "s<entry>" after."""
    if not pos or pos.startswith("p"):
        offset = whole(pos[1:])
        members = await client.redis.zrange(keys.priority(role), offset, offset + size - 1)
        ids = [m.decode().rpartition(":")[2] for m in members]
        if len(ids) == size:
            return await rows(client, keys, ids), f"p{offset + size}"
        got = await rows(client, keys, ids)
        more, after = await _stream(client, keys, role, "-", size - len(ids))
        return got + more, after
    if not pos.startswith("s"):
        raise ValidationError(f"bad cursor position {pos!r}")
    return await _stream(client, keys, role, "(" + entry(pos[1:]), size)


async def _stream(client: AsyncClient, keys: Keys, role: str, start: str,
                  size: int) -> tuple[list[TaskInfo], str]:
    entries = await client.redis.xrange(keys.stream(role), start, "+", count=size)
    ids = [f.get(b"id", b"").decode() for _, f in entries]
    after = f"s{entries[-1][0].decode()}" if len(entries) == size else ""
    return await rows(client, keys, [i for i in ids if i]), after


async def _running(client: AsyncClient, keys: Keys, role: str, status: str, pos: str,
                   size: int, page: Page) -> tuple[list[TaskInfo], str]:
    """Entries delivered to a worker and not yet acknowledged (XPENDING), oldest first."""
    pending, ids = await pending_tasks(client, keys, role, "(" + entry(pos) if pos else "-",
                                       size)
    after = pending[-1]["message_id"].decode() if len(pending) == size else ""
    return await rows(client, keys, ids), after


async def pending_tasks(client: AsyncClient, keys: Keys, role: str, start: str,
                        count: int) -> tuple[list[Any], list[str]]:
    """The role's entries delivered and not acknowledged from ``start`` (XPENDING rows),
    and the ids of the tasks they name; none while no worker ever read the role."""
    try:
        pending = await client.redis.xpending_range(keys.stream(role), GROUP, start, "+",
                                                    count)
    except Exception as exc:
        if "NOGROUP" in str(exc):
            return [], []
        raise
    async with client.redis.pipeline(transaction=False) as pipe:
        for p in pending:
            pipe.xrange(keys.stream(role), p["message_id"], p["message_id"])
        found = await pipe.execute()
    ids = [e[0][1].get(b"id", b"").decode() for e in found if e]
    return pending, [i for i in ids if i]


async def _waiting(client: AsyncClient, keys: Keys, role: str, status: str, pos: str,
                   size: int, page: Page) -> tuple[list[TaskInfo], str]:
    """WAITING tasks (a set: SSCAN's order, which is none)."""
    cur, ids = await client.redis.sscan(keys.waiting(role), whole(pos), count=size)
    return await rows(client, keys, [i.decode() for i in ids]), ("" if cur == 0 else str(cur))


async def _scheduled(client: AsyncClient, keys: Keys, role: str, status: str, pos: str,
                     size: int, page: Page) -> tuple[list[TaskInfo], str]:
    """SCHEDULED tasks, soonest due first."""
    offset = whole(pos)
    ids = await client.redis.zrange(keys.scheduled(role), offset, offset + size - 1)
    after = str(offset + size) if len(ids) == size else ""
    return await rows(client, keys, [i.decode() for i in ids]), after


async def _finished(client: AsyncClient, keys: Keys, role: str, status: str, pos: str,
                    size: int, page: Page) -> tuple[list[TaskInfo], str]:
    """Tasks that ended, newest first, from the lists the coordinators keep (a role's
    latest ``recent_per_role`` outcomes, and as many failures): one role's, or every
    role's merged by finish time. Without them (no coordinator ran) the lifecycle stream
    tells. Both are capped: older tasks are found by id."""
    if not pos or pos.startswith("m"):
        lists = await _final_lists(client, keys, role, status)
        if lists:
            return await _merged(client, keys, lists, status, pos[1:], size)
        if pos:  # the lists the cursor paged through have expired since
            return [], ""
    events, after, oldest = await lifecycle_page(client, keys, role or None,
                                                 FINAL_KINDS[status], pos, size)
    page.searched_to = oldest or page.searched_to
    seen: dict[str, None] = {}
    for e in events:
        seen.setdefault(e.task_id)
    return await rows(client, keys, list(seen)), after


async def _final_lists(client: AsyncClient, keys: Keys, role: str,
                       status: str) -> dict[str, str]:
    """Role -> the list of its outcomes to read for ``status``, for the roles that have
    one (the failures' list for failed and cancelled tasks, where it exists)."""
    roles = [role] if role else sorted(m.decode() for m in await client.redis.smembers(
        keys.roles))
    async with client.redis.pipeline(transaction=False) as pipe:
        for r in roles:
            pipe.exists(keys.recent(r))
            pipe.exists(keys.failures(r))
        found = await pipe.execute()
    out = {}
    for i, r in enumerate(roles):
        if found[2 * i + 1] and status in ("failed", "cancelled"):
            out[r] = keys.failures(r)
        elif found[2 * i]:
            out[r] = keys.recent(r)
    return out


async def _merged(client: AsyncClient, keys: Keys, lists: dict[str, str], status: str,
                  pos: str, size: int) -> tuple[list[TaskInfo], str]:
    """A page of the roles' lists merged newest first; the cursor holds each role's
    offset ("role=offset;...", "done" once read to its end). Windows of 500 are read as
    each role's runs out, at most MERGE_SCAN items a page (a rare status then shows a
    short page and a cursor to look further)."""
    offsets = dict.fromkeys(lists, 0)
    for part in filter(None, pos.split(";")):
        r, _, off = part.partition("=")
        if r in offsets:
            offsets[r] = -1 if off == "done" else whole(off)
    letters, picked, read = RECENT_LETTERS[status], list[str](), 0
    heads: dict[str, deque[tuple[int, str, str]]] = {r: deque() for r in lists}
    ended = {r for r, off in offsets.items() if off < 0}  # read to the end
    while len(picked) < size and read < MERGE_SCAN:
        need = [r for r in lists if not heads[r] and r not in ended]
        if need:
            async with client.redis.pipeline(transaction=False) as pipe:
                for r in need:
                    pipe.lrange(lists[r], offsets[r], offsets[r] + 499)
                windows = await pipe.execute()
            for r, window in zip(need, windows):
                heads[r].extend(_item(raw) for raw in window)
                read += len(window)
                if len(window) < 500:
                    ended.add(r)
        live = [r for r in lists if heads[r]]
        if not live:
            break
        best = max(live, key=lambda r: heads[r][0][0])
        _, letter, tid = heads[best].popleft()
        offsets[best] += 1
        if letter in letters:
            picked.append(tid)
    left = [r for r in lists if heads[r] or r not in ended]
    after = ("m" + ";".join(f"{r}={off if r in left else 'done'}" for r, off in offsets.items())
             if left and (len(picked) == size or read >= MERGE_SCAN) else "")
    return await rows(client, keys, picked), after


def _item(raw: bytes) -> tuple[int, str, str]:
    """A list item "<letter> <finished at> <task id>" as (at, letter, id)."""
    letter, _, rest = raw.decode().partition(" ")
    at, _, tid = rest.partition(" ")
    return (int(at) if at.isdigit() else 0), letter, tid


async def lifecycle_page(client: AsyncClient, keys: Keys, role: str | None,
                         kinds: frozenset[str] | None, before: str, size: int,
                         task_id: str | None = None, since: str = "-"
                         ) -> tuple[list[TaskEvent], str, str]:
    """Up to ``size`` events older than the cursor ``before`` ("" for the newest), newest
    first, reading at most LIFECYCLE_SCAN entries; the cursor to go on from ("" when the
    stream's start, or ``since``, was reached) and the id of the oldest entry read. A
    cursor is an entry id, with ".<n>" when the first n events (newest first) of that
    entry were shown."""
    at, _, shown = before.partition(".")
    at = entry(at) if at else ""
    skip = whole(shown)
    end = (at if skip else "(" + at) if at else "+"
    found, read, oldest = list[TaskEvent](), 0, ""
    while read < LIFECYCLE_SCAN:
        batch = await client.redis.xrevrange(keys.lifecycle, end, since,
                                             count=min(500, LIFECYCLE_SCAN - read))
        if not batch:
            return found, "", oldest
        read += len(batch)
        for entry_id, fields in batch:
            oldest = entry_id.decode()
            events = list(parse_entries([(entry_id, fields)], role, kinds, task_id))[::-1]
            if skip and oldest == at:
                events = events[skip:]
            skip = 0
            room = size - len(found)
            found += events[:room]
            if len(events) > room:  # the page ends inside this entry
                taken = room + (int(shown) if oldest == at and shown else 0)
                return found, f"{oldest}.{taken}", oldest
            if len(found) == size:
                return found, oldest, oldest
        end = "(" + oldest
    return found, oldest, oldest


async def dead_page(client: AsyncClient, role: str | None, cursor: str = "",
                    size: int = 50) -> tuple[list[DeadLetter], str]:
    """One page of dead letters, newest first, of ``role`` when given."""
    parts = client.parts.all
    part, pos = _cursor(cursor, len(parts))
    out: list[DeadLetter] = []
    while part < len(parts):
        end, read = ("(" + entry(pos)) if pos else "+", 0
        while len(out) < size and read < LIFECYCLE_SCAN:
            batch = await client.redis.xrevrange(parts[part].dead, end, "-", count=200)
            if not batch:
                break
            read += len(batch)
            for entry_id, fields in batch:
                d = parse_dead_letter(entry_id, fields)
                pos = d.id
                if role is None or d.role == role:
                    out.append(d)
                    if len(out) == size:
                        return out, f"{part}:{pos}"
            end = "(" + pos
        else:
            if len(out) < size:
                return out, f"{part}:{pos}"
        part, pos = part + 1, ""
    return out, ""


_READERS: dict[str, Any] = {"queued": _queued, "running": _running, "waiting": _waiting,
                            "scheduled": _scheduled}
