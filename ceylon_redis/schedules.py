"""Periodic tasks: a schedule's definition, its ticks, and how they are read back.

A schedule is a cron expression in an IANA timezone, or an interval, with the
task it enqueues at each tick. Everything here is pure: the scheduler loop
(``scheduler.py``) asks which ticks are due and ``scripts/tick.lua`` claims and
enqueues them in one step.

Cron: five fields (minute hour day month weekday), or six with seconds first
(as BullMQ and Quartz write it), evaluated on the wall clock of ``tz``. Around
daylight-saving changes a wall time that does not exist (02:30 on the
spring-forward day) fires once, at the end of the gap (03:00); a wall time that
happens twice (01:30 on the fall-back day) fires once, the first time.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import zoneinfo
from dataclasses import dataclass
from typing import Any, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel

from .errors import ValidationError
from .keys import check_name
from .protocol import DEFAULT_PRIORITY, TaskSpec, make_spec
from .settings import Settings

Missed = Literal["skip", "all"]
"""After every scheduler was down: run the latest missed tick once, or each (bounded)."""
CATCH_UP_LIMIT = 100
"""Most missed ticks ``missed="all"`` runs; older ones are skipped (and counted)."""
MIN_EVERY = 0.1
"""Shortest interval, in seconds: schedulers look at least every ``schedule_poll``."""
MAX_EVERY = 315_360_000
"""Longest interval, in seconds (ten years): its ticks stay dates Python can show."""
TASK_OPTIONS = ("name", "max_attempts", "result_ttl", "backoff", "timeout", "priority",
                "limit_key")
"""What a schedule's task may set; dependencies, delays and ids come from the schedule."""
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class Timing:
    """When a schedule ticks: a cron expression on a timezone's clock, or an interval."""

    cron: str = ""
    tz: str = "UTC"
    every_ms: int = 0
    missed: Missed = "skip"

    def next_tick(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (epoch ms)."""
        if self.every_ms:
            return after_ms + self.every_ms
        return cron_next(self.cron, self.tz, after_ms)


@dataclass(frozen=True)
class ScheduleDef:
    """A validated schedule: when it ticks and the task each tick enqueues."""

    id: str
    spec: TaskSpec
    """The task template (its id is made per tick: ``<schedule id>.<tick ms>``)."""
    timing: Timing

    @property
    def digest(self) -> str:
        """What an upsert compares: the same definition keeps its place in time."""
        s, t = self.spec, self.timing
        parts = [t.cron, t.tz, str(t.every_ms), t.missed, s.role, s.name,
                 str(s.max_attempts), str(s.ttl), str(s.backoff_ms), str(s.timeout_ms)]
        if s.priority != DEFAULT_PRIORITY or s.limit_key:  # older schedules stay put
            parts += [str(s.priority), s.limit_key]
        h = hashlib.sha1("\n".join(parts).encode(), usedforsecurity=False)
        h.update(s.data)
        return h.hexdigest()[:16]

    def fields(self) -> list[Any]:
        """The schedule hash's definition fields, alternating name and value."""
        s, t = self.spec, self.timing
        return ["role", s.role, "cron", t.cron, "tz", t.tz, "every", t.every_ms,
                "missed", t.missed, "name", s.name, "max_attempts", _opt(s.max_attempts),
                "ttl", s.ttl, "backoff", _opt(s.backoff_ms), "timeout", _opt(s.timeout_ms),
                "priority", s.priority, "limit_key", s.limit_key, "data", s.data,
                "digest", self.digest]


def make_schedule(settings: Settings, schedule_id: str, role: str, data: Any = None, *,
                  cron: str | None = None, every: float | dt.timedelta | None = None,
                  tz: str = "UTC", missed: str = "skip", **task_options: Any) -> ScheduleDef:
    """Validate a schedule; raises ValidationError (or EncodeError) naming the problem."""
    check_name("schedule id", schedule_id)
    unknown = sorted(set(task_options) - set(TASK_OPTIONS))
    if unknown:
        raise ValidationError(f"a schedule's task takes {', '.join(TASK_OPTIONS)}, not "
                              f"{', '.join(unknown)}")
    if (cron is None) == (every is None):
        raise ValidationError("give a schedule either cron= or every=, "
                              + ("not both" if cron is not None else "one of them"))
    if missed not in ("skip", "all"):
        raise ValidationError(f"missed must be 'skip' or 'all', not {missed!r}")
    spec = make_spec(settings, role, data, task_id=schedule_id, what="schedule data",
                     **task_options)
    if every is not None:
        if tz != "UTC":
            raise ValidationError("tz= applies to cron schedules only")
        seconds = every.total_seconds() if isinstance(every, dt.timedelta) else every
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not MIN_EVERY <= seconds <= MAX_EVERY:
            raise ValidationError(f"every must be a number of seconds from {MIN_EVERY} to "
                                  f"{MAX_EVERY:,} (ten years), not {every!r}")
        timing = Timing(every_ms=round(seconds * 1000), missed=missed)  # type: ignore[arg-type]
        return ScheduleDef(schedule_id, spec, timing)
    assert cron is not None
    expr = check_cron(cron)
    zone(tz)
    try:
        cron_next(expr, tz, _ms(dt.datetime.now(_UTC)))
    except CroniterBadDateError:
        raise ValidationError(f"cron expression {cron!r} never matches a date") from None
    return ScheduleDef(schedule_id, spec, Timing(cron=expr, tz=tz,
                                                 missed=missed))  # type: ignore[arg-type]


def check_cron(expr: str) -> str:
    """``expr`` normalised to single spaces if it is a valid 5- or 6-field cron expression."""
    if not isinstance(expr, str):
        raise ValidationError(f"cron must be a string, not {expr!r}")
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValidationError(f"cron expression {expr!r} has {len(fields)} fields: use 5 "
                              "(minute hour day month weekday) or 6 (seconds first)")
    normal = " ".join(fields)
    if not croniter.is_valid(normal, second_at_beginning=True):
        raise ValidationError(f"cron expression {expr!r} is not valid")
    return normal


def zone(tz: str) -> zoneinfo.ZoneInfo:
    """The IANA timezone ``tz``; ValidationError naming it when there is none."""
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(f"unknown timezone {tz!r}: use an IANA name such as "
                              "'Europe/Paris' or 'UTC'") from None


def cron_next(expr: str, tz: str, after_ms: int) -> int:
    """The first tick of ``expr`` strictly after ``after_ms``, on ``tz``'s wall clock
    (see the module docstring for the daylight-saving rule)."""
    zi = zone(tz)
    after = dt.datetime.fromtimestamp(after_ms / 1000, _UTC)
    wall = after.astimezone(zi).replace(tzinfo=None, fold=0)
    it = croniter(expr, wall, second_at_beginning=True)
    for _ in range(10_000):
        candidate = it.get_next(dt.datetime)
        at = _instant(candidate, zi)
        if at > after_ms:
            return at
    raise ValidationError(f"cron expression {expr!r} found no tick after {after}")


def _instant(wall: dt.datetime, zi: zoneinfo.ZoneInfo) -> int:
    """Epoch ms of a naive wall time in ``zi``: the first of two, or the end of a gap."""
    first = wall.replace(tzinfo=zi, fold=0)
    if first.astimezone(_UTC).astimezone(zi).replace(tzinfo=None) == wall:
        return _ms(first)
    # In a gap: the instant the clock jumps over it, the first whose wall time is later.
    low, high = _ms(wall.replace(tzinfo=zi, fold=1)), _ms(first)
    while high - low > 1000:
        mid = (low + high) // 2
        local = dt.datetime.fromtimestamp(mid / 1000, _UTC).astimezone(zi).replace(tzinfo=None)
        if local >= wall:
            high = mid
        else:
            low = mid
    return high - high % 1000


def due_ticks(sched: Timing, next_ms: int, now_ms: int) -> tuple[list[int], int, int]:
    """The ticks to enqueue now, the next tick after them, and how many missed ones are
    skipped. Every tick from ``next_ms`` to ``now_ms`` is due: ``missed="skip"`` runs the
    latest of them, ``"all"`` each of the latest CATCH_UP_LIMIT."""
    if next_ms > now_ms:
        return [], next_ms, 0
    keep = CATCH_UP_LIMIT if sched.missed == "all" else 1
    if sched.every_ms:
        n = (now_ms - next_ms) // sched.every_ms + 1
        last = next_ms + (n - 1) * sched.every_ms
        kept = min(n, keep)
        return ([last - i * sched.every_ms for i in reversed(range(kept))],
                last + sched.every_ms, n - kept)
    # Walk the cron ticks back from now over a span that grows until it holds the ticks to
    # keep, so that a fast cron after a long outage costs as much as a short one.
    span = 60_000
    while True:
        start = max(next_ms, now_ms - span)
        due: collections.deque[int] = collections.deque(maxlen=keep)
        walked, tick = 0, start
        if start > next_ms:
            tick = sched.next_tick(start - 1)
        while tick <= now_ms:
            due.append(tick)
            walked += 1
            tick = sched.next_tick(tick)
        if len(due) == keep or start == next_ms:
            break
        span *= 16
    # Missed ticks before the span walked are estimated at the rate seen within it.
    before = max(1, round((start - next_ms) * (walked - 1) / max(1, now_ms - start))) \
        if start > next_ms else 0
    return list(due), tick, walked - len(due) + before


class ScheduleInfo(BaseModel):
    """A schedule as ``schedules()`` and ``ceylon-redis schedule list`` show it."""

    id: str
    role: str
    cron: str | None = None
    tz: str = "UTC"
    every: float | None = None
    """Seconds between ticks, for an interval schedule."""
    missed: Missed = "skip"
    paused: bool = False
    name: str = ""
    priority: int = DEFAULT_PRIORITY
    next_run: dt.datetime | None = None
    """The next tick (None while paused)."""
    last_run: dt.datetime | None = None
    """The last tick enqueued, if any."""
    last_task_id: str | None = None
    ticks: int = 0
    """Ticks enqueued so far."""
    skipped: int = 0
    """Missed ticks skipped (policy ``skip``, or past the catch-up bound)."""

    @property
    def timing(self) -> Timing:
        return Timing(cron=self.cron or "", tz=self.tz,
                      every_ms=round((self.every or 0) * 1000), missed=self.missed)

    @property
    def when(self) -> str:
        """The schedule in words: ``cron 0 3 * * * Europe/Paris`` or ``every 30 s``."""
        return f"cron {self.cron} {self.tz}" if self.cron else f"every {self.every:g} s"


def parse_schedule(schedule_id: str, raw: dict[bytes, bytes], next_ms: float | None
                   ) -> ScheduleInfo:
    """A schedule hash (and its score on ``{P}:schedules``) as a ScheduleInfo."""
    f = {k.decode(): v.decode(errors="replace") for k, v in raw.items() if k != b"data"}
    every = int(f.get("every") or 0)
    last = f.get("last_tick")
    return ScheduleInfo(
        id=schedule_id, role=f.get("role", ""), cron=f.get("cron") or None,
        tz=f.get("tz") or "UTC", every=every / 1000 if every else None,
        missed="all" if f.get("missed") == "all" else "skip", paused=f.get("paused") == "1",
        name=f.get("name", ""), priority=_int(f.get("priority"), DEFAULT_PRIORITY),
        next_run=_utc(next_ms),
        last_run=_utc(float(last) if last else None),
        last_task_id=f.get("last_task") or None, ticks=int(f.get("ticks") or 0),
        skipped=int(f.get("skipped") or 0))


def _utc(ms: float | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, _UTC)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def _opt(value: int | None) -> int | str:
    return "" if value is None else value
