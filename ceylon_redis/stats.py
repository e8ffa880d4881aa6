"""Statistics from the hashes the coordinator keeps: histogram percentiles, per-minute counts.

Wait and run times are counted in log-scale buckets (ten per decade of
milliseconds, see ``scripts/stats.lua``), so percentiles cost a fixed 72
counters per role however many tasks ran, and are exact to the bucket (about
26% wide; the estimate interpolates within it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .models import Percentiles, QueueInfo, RoleStats

LAST_BUCKET = 71


def bucket_bounds(b: int) -> tuple[float, float]:
    """Milliseconds covered by bucket ``b``: [lower, upper)."""
    if b == 0:
        return 0.0, 1.0
    lower = 10 ** ((b - 1) / 10)
    return lower, (10 ** (b / 10) if b < LAST_BUCKET else lower)


def percentiles(counts: Mapping[int, int], total_ms: int) -> Percentiles:
    """p50/p95/p99 and mean, in seconds, from bucket counts."""
    n = sum(counts.values())
    if not n:
        return Percentiles()

    def at(q: float) -> float:
        rank, seen = q * n, 0
        for b in sorted(counts):
            c = counts[b]
            if c and seen + c >= rank:
                lower, upper = bucket_bounds(b)
                return (lower + (upper - lower) * (rank - seen) / c) / 1000
            seen += c
        return bucket_bounds(max(counts))[0] / 1000

    return Percentiles(count=n, mean=total_ms / n / 1000, p50=at(0.5), p95=at(0.95),
                       p99=at(0.99))


def _fields(raw: Mapping[Any, Any]) -> dict[str, int]:
    out = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        out[key] = int(v)
    return out


def role_stats(role: str, raws: Sequence[Mapping[Any, Any]], now_minute: int,
               queues: Sequence[QueueInfo] = ()) -> RoleStats:
    """One RoleStats from one or more stats hashes (several for the overall figures)."""
    total: dict[str, int] = {}
    for raw in raws:
        for k, v in _fields(raw).items():
            total[k] = total.get(k, 0) + v
    waits = {int(k[1:]): v for k, v in total.items() if k[0] == "w" and k[1:].isdigit()}
    runs = {int(k[1:]): v for k, v in total.items() if k[0] == "r" and k[1:].isdigit()}
    minutes = [total.get(f"m{m}", 0) for m in range(now_minute - 59, now_minute + 1)]
    return RoleStats(
        role=role, completed=total.get("completed", 0), failed=total.get("failed", 0),
        cancelled=total.get("cancelled", 0), retries=total.get("retries", 0),
        waiting=sum(q.waiting for q in queues), queued=sum(q.ready for q in queues),
        running=sum(q.running for q in queues), schedules=sum(q.schedules for q in queues),
        wait=percentiles(waits, total.get("wait_sum", 0)),
        run=percentiles(runs, total.get("run_sum", 0)), throughput=minutes,
        run_by_minute=minute_latencies([total], now_minute, "r"),
        wait_by_minute=minute_latencies([total], now_minute, "w"))


_MINUTE_FIELD = re.compile(r"[mM](\d+)")


def stale_minute_fields(fields: Sequence[Any], now_minute: int) -> list[str]:
    """Per-minute counters and buckets older than an hour, for the coordinator to delete."""
    out = []
    for f in fields:
        name = f.decode() if isinstance(f, bytes) else str(f)
        if (m := _MINUTE_FIELD.match(name)) and int(m[1]) < now_minute - 60:
            out.append(name)
    return out


def minute_latencies(raws: Sequence[Mapping[Any, Any]], now_minute: int,
                     kind: str = "r") -> list[Percentiles]:
    """Run (``kind`` "r") or wait ("w") percentiles of each of the last 60 minutes, oldest
    first, from the ``M<minute><kind><bucket>`` fields of one or more stats hashes."""
    first = now_minute - 59
    counts: list[dict[int, int]] = [{} for _ in range(60)]
    pattern = re.compile(rf"M(\d+){kind}(\d+)")
    for raw in raws:
        for k, v in _fields(raw).items():
            if (m := pattern.fullmatch(k)) and 0 <= int(m[1]) - first < 60:
                per = counts[int(m[1]) - first]
                per[int(m[2])] = per.get(int(m[2]), 0) + v
    return [percentiles(c, 0).model_copy(update={"mean": None}) for c in counts]
