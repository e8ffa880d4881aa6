# Generated from ceylon_redis/client/_async/schedules.py by .ci/unasync.py: do not edit.
"""Schedules: periodic tasks by cron or interval, stored in Redis and fired by every
coordinator (each tick enqueued once however many run)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ...errors import UnknownScheduleError
from ...keys import Keys, check_name
from ...schedules import ScheduleInfo, make_schedule, parse_schedule
from ..base import BATCH, ClientBase
from ..replies import redis_ms


class Schedules(ClientBase):
    """Add, list, pause, resume and remove schedules (``ceylon-redis schedule``)."""

    def add_schedule(self, schedule_id: str, role: str, data: Any = None, *,
                           cron: str | None = None,
                           every: float | dt.timedelta | None = None, tz: str = "UTC",
                           missed: str = "skip", **task_options: Any) -> ScheduleInfo:
        """Create or update (by id) a schedule that enqueues a ``role`` task at each tick.

        Give ``cron`` (5 fields, or 6 with seconds first, on ``tz``'s wall clock) or
        ``every`` (seconds). ``missed``: after every coordinator was down, ``"skip"`` runs
        the latest missed tick once, ``"all"`` each (up to 100). ``task_options``: name,
        max_attempts, result_ttl, backoff, timeout, priority. Adding the same definition again
        changes nothing; a changed one starts from now and keeps its history.
        """
        sched = make_schedule(self.settings, schedule_id, role, data, cron=cron, every=every,
                              tz=tz, missed=missed, **task_options)
        keys = self.parts.home(schedule_id)
        now = int(redis_ms(self.scripts.clock(keys=[keys.base])))
        fields = sched.fields()
        self.scripts.schedule(keys=[keys.base], args=[
            "add", schedule_id, sched.timing.next_tick(now), len(fields) // 2, *fields])
        return self.schedule(schedule_id)

    def schedule(self, schedule_id: str) -> ScheduleInfo:
        """One schedule: its definition, next and last run, the last tick's task id."""
        keys = self.parts.home(check_name("schedule id", schedule_id))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.schedule(schedule_id))
            pipe.zscore(keys.schedules, schedule_id)
            raw, score = pipe.execute()
        if not raw:
            raise UnknownScheduleError(f"no schedule {schedule_id}")
        return parse_schedule(schedule_id, raw, _finite(score))

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule of the namespace, by id."""
        out: list[ScheduleInfo] = []
        for keys in self.parts.all:
            out += self._schedules_in(keys)
        return sorted(out, key=lambda s: s.id)

    def _schedules_in(self, keys: Keys) -> list[ScheduleInfo]:
        out = []
        start = 0
        while page := self.redis.zrange(keys.schedules, start, start + BATCH - 1,
                                              withscores=True):
            with self.redis.pipeline(transaction=False) as pipe:
                for sid, _ in page:
                    pipe.hgetall(keys.schedule(sid.decode()))
                raws = pipe.execute()
            out += [parse_schedule(sid.decode(), raw, _finite(score))
                    for (sid, score), raw in zip(page, raws) if raw]
            start += BATCH
        return out

    def remove_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule (tasks it enqueued run on); False if there was none."""
        return self._schedule_op("remove", schedule_id)

    def pause_schedule(self, schedule_id: str) -> None:
        """Stop a schedule's ticks until ``resume_schedule``; UnknownScheduleError if none."""
        if not self._schedule_op("pause", schedule_id):
            raise UnknownScheduleError(f"no schedule {schedule_id}")

    def resume_schedule(self, schedule_id: str) -> None:
        """Tick again from now on (ticks missed while paused are not run)."""
        if not self._schedule_op("resume", schedule_id):
            raise UnknownScheduleError(f"no schedule {schedule_id}")

    def _schedule_op(self, op: str, schedule_id: str) -> bool:
        keys = self.parts.home(check_name("schedule id", schedule_id))
        args: list[Any] = [op, schedule_id]
        if op == "resume":
            info = self.schedule(schedule_id)
            now = int(redis_ms(self.scripts.clock(keys=[keys.base])))
            args.append(info.timing.next_tick(now))
        return bool(self.scripts.schedule(keys=[keys.base], args=args))


def _finite(score: Any) -> float | None:
    return None if score is None or float(score) == float("inf") else float(score)
