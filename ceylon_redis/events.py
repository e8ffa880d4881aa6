"""The lifecycle stream ``{P}:lifecycle`` as events: its entries parsed, one TaskEvent per
task each entry names (scripts/includes/common.lua writes them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, get_args

from .errors import ValidationError
from .keys import ENTRY_ID
from .models import EventKind, TaskEvent, TaskStatus, TaskUpdate
from .progress import decode_fraction, decode_info

KINDS: frozenset[str] = frozenset(get_args(EventKind))


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def entry_time(entry_id: str) -> dt.datetime:
    """When a stream entry was added, from its id "<ms>-<seq>"."""
    ms = int(entry_id.split("-", 1)[0])
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def parse_entry(entry_id: Any, fields: Mapping[Any, Any]) -> Iterator[TaskEvent]:
    """The events one entry holds, in order; an entry that is not one (written by hand)
    yields nothing."""
    eid = _text(entry_id)
    f = {_text(k): _text(v) for k, v in fields.items()}
    kind, status = f.get("e", ""), f.get("s", "")
    if kind not in KINDS or status not in TaskStatus.__members__:
        return
    ids, attempts, fractions = f.get("t", "").split(), f.get("a", "").split(), \
        f.get("p", "").split()
    at, worker, role = entry_time(eid), f.get("w") or None, f.get("r", "")
    for i, tid in enumerate(ids):
        attempt = attempts[i] if i < len(attempts) else ""
        yield TaskEvent(
            id=eid, kind=kind, role=role, task_id=tid, status=TaskStatus(status),  # type: ignore[arg-type]
            attempt=int(attempt) if attempt.isdigit() else None,
            progress=decode_fraction(fractions[i]) if i < len(fractions) else None,
            worker=worker, at=at)


def parse_entries(entries: Iterable[tuple[Any, Mapping[Any, Any]]], role: str | None = None,
                  kinds: frozenset[str] | None = None,
                  task_id: str | None = None) -> Iterator[TaskEvent]:
    """The events of XRANGE/XREAD entries, those of ``role``, ``kinds`` and ``task_id`` only
    when given (entries are looked at raw first: most are not parsed at all)."""
    tid_bytes = task_id.encode() if task_id is not None else None
    for entry_id, fields in entries:
        if ((role is not None and _text(fields.get(b"r", b"")) != role)
                or (kinds is not None and _text(fields.get(b"e", b"")) not in kinds)
                or (tid_bytes is not None and tid_bytes not in fields.get(b"t", b"").split())):
            continue
        for event in parse_entry(entry_id, fields):  # role and kind are the entry's
            if task_id is None or event.task_id == task_id:
                yield event


WATCH_FIELDS = ("status", "attempt", "progress", "progress_info", "worker", "output", "error")
"""What ``client.watch`` reads of a task hash at each look (``output`` is there only once it
is final, so a look at a running task reads no result)."""


def update_from_fields(task_id: str, raw: Sequence[Any]) -> TaskUpdate | None:
    """A TaskUpdate from HMGET of WATCH_FIELDS (its result is the caller's to make, from
    the last two); None when the task hash is gone."""
    status, attempt, progress, info, worker = (None if v is None else _text(v)
                                               for v in raw[:5])
    if status is None:
        return None
    try:
        st = TaskStatus(status)
    except ValueError:
        raise ValidationError(f"task {task_id} has an invalid status {status!r} in Redis "
                              "(edited by hand?)") from None
    return TaskUpdate(task_id=task_id, status=st,
                      attempt=int(attempt) if attempt and attempt.isdigit() else 0,
                      progress=decode_fraction(progress), progress_info=decode_info(info),
                      worker=worker or None)


def stream_position(since: str | dt.datetime) -> str:
    """An XREAD position from ``since``: "0" (everything kept), "$" (only what comes
    next), an entry id, or a time (entries from then on)."""
    if isinstance(since, dt.datetime):
        if since.tzinfo is None:
            raise ValidationError("since must be an aware datetime (with a tzinfo)")
        return f"{max(0, int(since.timestamp() * 1000) - 1)}-18446744073709551615"
    if since in ("0", "$") or ENTRY_ID.match(since):
        return since
    raise ValidationError(f"since must be '0', '$', an entry id like 1700000000000-0 or an "
                          f"aware datetime, not {since!r}")


def check_kinds(kinds: Iterable[str] | None) -> frozenset[str] | None:
    """The event kinds to keep (None: all); ValidationError naming any unknown kind."""
    if kinds is None:
        return None
    wanted = frozenset([kinds] if isinstance(kinds, str) else kinds)
    unknown = sorted(wanted - KINDS)
    if unknown:
        raise ValidationError(f"unknown event kind {', '.join(unknown)}: the kinds are "
                              f"{', '.join(sorted(KINDS))}")
    return wanted


def _entry_key(entry: tuple[Any, Any]) -> tuple[int, int]:
    ms, _, seq = _text(entry[0]).partition("-")
    return int(ms), int(seq or 0)


class EntryMerge:
    """The entries of several streams (one per partition) in entry-id order, read a batch
    at a time: an entry is given out only once every stream that may hold an older one
    has been read past it."""

    def __init__(self, keys: list[str], start: str, batch: int) -> None:
        self.keys = keys
        self.batch = batch
        self.position = {k: start for k in keys}
        self.pending: dict[str, list[Any]] = {k: [] for k in keys}
        self.exhausted = {k: False for k in keys}

    def to_read(self) -> list[str]:
        """Streams whose buffered entries ran out and that may hold more."""
        return [k for k in self.keys if not self.pending[k] and not self.exhausted[k]]

    def add(self, key: str, reply: Any) -> None:
        """Take an XREAD reply for ``key``; fewer than a batch means it is read to its end."""
        got: list[Any] = [e for _, entries in reply or () for e in entries]
        if got:
            self.pending[key].extend(got)
            self.position[key] = _text(got[-1][0])
        self.exhausted[key] = len(got) < self.batch

    def add_all(self, reply: Any) -> None:
        """Take one XREAD reply for every stream (a stream it does not name had none)."""
        by_key = {_text(name): entries for name, entries in reply or ()}
        for key in self.keys:
            self.add(key, [(key, by_key.get(key, []))])

    def pop(self) -> tuple[Any, Any] | None:
        """The oldest entry that can be given out now, else None (all read to their end, or
        one must be read again first)."""
        if self.to_read():
            return None
        heads = [k for k in self.keys if self.pending[k]]
        if not heads:
            return None
        key = min(heads, key=lambda k: _entry_key(self.pending[k][0]))
        entry: tuple[Any, Any] = self.pending[key].pop(0)
        return entry

    def again(self) -> None:
        """Look for new entries in every stream (following)."""
        self.exhausted = {k: False for k in self.keys}
