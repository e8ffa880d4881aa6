# Generated from ceylon_redis/client/_async/limits.py by .ci/unasync.py: do not edit.
"""Flow-control limits: a rate and a concurrency per role, and per limit key, enforced
across every worker by start.lua (``ceylon-redis limit``)."""

from __future__ import annotations

from ...errors import ValidationError
from ...keys import check_name
from ...limits import FIELDS, LimitInfo, make_limit, parse_limit
from ..base import ClientBase


class Limits(ClientBase):
    """Set, show and remove a role's limits."""

    def _check_partitions(self) -> None:
        if self.parts.count > 1:
            raise ValidationError(
                f"limits need a namespace of one partition (this one has {self.parts.count}): "
                "each partition would count on its own")

    def set_limit(self, role: str, *, rate: str | None = None, burst: int | None = None,
                        concurrency: int | None = None, per_key: bool = False) -> LimitInfo:
        """Limit ``role`` to ``rate`` (``"100/s"``, ``/min``, ``/h``; ``burst`` tasks at
        once after a quiet spell, default 1) and/or ``concurrency`` tasks running at once,
        across every worker; ``per_key``: for each ``limit_key`` apart. Over a limit, a
        task waits (no attempt spent) and starts when a token or a slot allows."""
        check_name("role", role)
        self._check_partitions()
        spec = make_limit(rate, burst, concurrency)
        self.scripts.limit(keys=[self.keys.base],
                                 args=["set", role, *spec.fields(per_key)])
        return self.limit(role)

    def remove_limit(self, role: str, *, per_key: bool | None = None) -> bool:
        """Remove ``role``'s limits: every one (``per_key=None``), the role-wide ones
        (False) or the per-key ones (True); whether it had any. Tasks waiting for a slot
        go on under what is left."""
        check_name("role", role)
        had = self.redis.exists(self.keys.limit(role))
        scopes = [""] if per_key is False else ["key_"] if per_key else ["", "key_"]
        fields = [s + f for s in scopes for f in FIELDS]
        self.scripts.limit(keys=[self.keys.base], args=["remove", role, *fields])
        return bool(had)

    def limit(self, role: str) -> LimitInfo:
        """``role``'s limits, how many of its tasks wait for one and how many run in a slot."""
        check_name("role", role)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.limit(role))
            pipe.hget(self.keys.held, role)
            pipe.scard(self.keys.running(role))
            raw, held, running = pipe.execute()
        return parse_limit(role, raw, int(held or 0), int(running))

    def limits(self) -> list[LimitInfo]:
        """Every role that has limits, by name."""
        roles = sorted(m.decode() for m in self.redis.smembers(self.keys.limits))
        return [self.limit(role) for role in roles]
