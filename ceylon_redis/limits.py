"""Flow-control limits of a role: a rate (``100/s``, ``/min``, ``/h``, with a burst) and a
concurrency (tasks running at once), for the role as a whole or per ``limit_key``.

Enforced by start.lua on Redis's clock across every worker (``scripts/includes/limits.lua``);
this module validates and stores their definitions and reads them back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from .errors import ValidationError

PERIODS_MS = {"s": 1000, "sec": 1000, "second": 1000, "m": 60_000, "min": 60_000,
              "minute": 60_000, "h": 3_600_000, "hour": 3_600_000}
"""The units a rate may be given per."""
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")
_KEY = re.compile(r"^[^\s]{1,128}$")
MAX_RATE_PER_S = 1_000_000
"""A rate above this is refused: no Redis starts tasks faster."""
FIELDS = ("rate", "period", "burst", "concurrency")
"""A scope's fields in ``{P}:limit:<role>``: ``<field>`` for the role, ``key_<field>``
per limit key."""


def parse_rate(text: str) -> tuple[float, int]:
    """``"100/s"`` -> (100, 1000): tasks per period, the period in ms; ValidationError
    naming the problem otherwise."""
    m = _RATE.match(text.lower()) if isinstance(text, str) else None
    if not m or m.group(2) not in PERIODS_MS:
        raise ValidationError(f"malformed rate {text!r}: write it as N/s, N/min or N/h "
                              "(say 100/s)")
    count, period = float(m.group(1)), PERIODS_MS[m.group(2)]
    if count <= 0:
        raise ValidationError(f"a rate must be above zero, not {text!r}")
    if count * 1000 / period > MAX_RATE_PER_S:
        raise ValidationError(f"rate {text!r} is above {MAX_RATE_PER_S:,} a second")
    return count, period


def check_limit_key(key: str | None) -> str:
    """A task's ``limit_key``: one word of at most 128 characters ('' for none)."""
    if key is None:
        return ""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationError(f"limit_key must be 1-128 characters without spaces, not {key!r}")
    return key


@dataclass(frozen=True)
class LimitSpec:
    """What ``set_limit`` writes for one scope (the role, or each limit key)."""

    rate: float | None = None
    period_ms: int = 1000
    burst: int | None = None
    concurrency: int | None = None

    def fields(self, per_key: bool) -> list[str | int | float]:
        """The hash fields this spec sets, alternating name and value."""
        prefix = "key_" if per_key else ""
        out: list[str | int | float] = []
        if self.rate is not None:
            rate = int(self.rate) if self.rate == int(self.rate) else self.rate
            out += [prefix + "rate", rate, prefix + "period", self.period_ms,
                    prefix + "burst", self.burst or 1]
        if self.concurrency is not None:
            out += [prefix + "concurrency", self.concurrency]
        return out


def make_limit(rate: str | None = None, burst: int | None = None,
               concurrency: int | None = None) -> LimitSpec:
    """Validate a limit; ValidationError naming the problem, before anything is written."""
    if burst is not None and rate is None:
        raise ValidationError("burst goes with a rate")
    if rate is None and concurrency is None:
        raise ValidationError("give a rate (say rate='100/s') or a concurrency, or both")
    for name, value in (("burst", burst), ("concurrency", concurrency)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValidationError(f"{name} must be an integer of at least 1, not {value!r}")
    count, period = parse_rate(rate) if rate is not None else (None, 1000)
    return LimitSpec(rate=count, period_ms=period, burst=burst, concurrency=concurrency)


class Scope(BaseModel):
    """The limits of one scope: the whole role, or each limit key on its own."""

    rate: float | None = None
    """Tasks per ``period`` seconds."""
    period: float = 1.0
    burst: int = 1
    """Tasks that may start at once after a quiet spell (the bucket's size)."""
    concurrency: int | None = None

    @property
    def text(self) -> str:
        parts = []
        if self.rate is not None:
            unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
            parts.append(f"{self.rate:g}/{unit}" + (f" burst {self.burst}"
                                                     if self.burst > 1 else ""))
        if self.concurrency is not None:
            parts.append(f"{self.concurrency} at once")
        return ", ".join(parts) or "-"


class LimitInfo(BaseModel):
    """A role's limits as ``limits()`` and ``ceylon-redis limit list`` show them."""

    role: str
    role_limit: Scope
    per_key: Scope
    held: int = 0
    """Tasks of the role waiting for a token or a slot now."""
    running: int = 0
    """Tasks of the role holding a role-wide concurrency slot."""


def parse_limit(role: str, raw: dict[bytes, bytes], held: int, running: int) -> LimitInfo:
    """A ``{P}:limit:<role>`` hash as a LimitInfo."""
    f = {k.decode(): v.decode() for k, v in raw.items()}

    def scope(prefix: str) -> Scope:
        rate = f.get(prefix + "rate")
        conc = f.get(prefix + "concurrency")
        return Scope(rate=float(rate) if rate else None,
                     period=int(f.get(prefix + "period") or 1000) / 1000,
                     burst=int(f.get(prefix + "burst") or 1),
                     concurrency=int(conc) if conc else None)

    return LimitInfo(role=role, role_limit=scope(""), per_key=scope("key_"), held=held,
                     running=running)
