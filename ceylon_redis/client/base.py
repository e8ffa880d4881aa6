"""What both clients share: settings, key names, partitions, and turning calls into the
enqueue script's arguments. No I/O here: the asyncio and blocking clients drive it."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ..errors import ReplicationError, ValidationError, raise_for_script_error
from ..keys import ENTRY_ID, Keys, check_task_id
from ..partitions import Link, Partitions
from ..protocol import (
    TaskDef,
    TaskSpec,
    enqueue_args,
    graph_specs,
    make_spec,
    make_specs,
    new_task_id,
    policy_code,
)
from ..scripts import Scripts
from ..settings import Settings

BATCH = 1000
"""Tasks per enqueue script call, ids per cancel or dead-letter page."""
"""A stream entry id (as a dead letter is named on ``{P}:dead``), not a task id."""

_Self = TypeVar("_Self", bound="ClientBase")


class ClientBase:
    """Settings, keys and partitions of one namespace, and the planning of enqueue calls."""

    redis: Any
    scripts: Scripts

    def __init__(self, url: str | None, prefix: str | None, settings: Settings | None) -> None:
        self.settings = Settings.resolve(settings, url, prefix)
        self.keys = Keys(self.settings.prefix)
        """Partition 0's keys: the whole namespace unless it has partitions."""
        self.parts = Partitions(self.settings.prefix, self.settings.partitions)
        self._checked = False
        """Whether the partition count in Redis was found to agree with the settings."""

    def _explained(self) -> contextlib.AbstractContextManager[None]:
        """Outage errors of the reply channel explained as the commands' are (own redis only)."""
        explained = getattr(self.redis, "explained", None)
        return explained() if explained is not None else contextlib.nullcontext()

    def _spec(self, role: str, data: Any, **options: Any) -> TaskSpec:
        return make_spec(self.settings, role, data, **options)

    def _specs(self, role: str, items: Iterable[Any], names: Sequence[str] | None,
               **options: Any) -> list[TaskSpec]:
        return make_specs(self.settings, role, items, names, **options)

    def _graph_specs(self, tasks: Sequence[TaskDef], graph_id: str | None,
                     ttl: int | None) -> tuple[str, list[TaskSpec], int]:
        gid = check_task_id(graph_id) if graph_id is not None else new_task_id()
        gttl = int(ttl or self.settings.result_ttl)
        if gttl < 1:
            raise ValidationError(f"graph ttl must be at least 1 second, not {gttl}")
        specs = graph_specs(self.settings, tasks)
        for spec in specs:
            spec.ttl = gttl
        return gid, specs, gttl

    def _plan(self, specs: list[TaskSpec], graph_id: str = "",
              graph_ttl: int = 0) -> tuple[list[Link], list[tuple[Keys, list[list[Any]]]]]:
        """The enqueue script calls for ``specs``, each with its partition's keys, and the
        links to make first. A graph goes whole to its graph id's partition, other tasks to
        their own; with partitions, every prerequisite enqueued in another call is linked
        (it may live anywhere) and releases its dependent through a coordinator."""
        if self.parts.count == 1 and not graph_id:
            return [], [(self.keys, _batches(specs))]
        groups: dict[Keys, list[TaskSpec]] = {}
        if self.parts.count == 1:
            groups[self.keys] = specs
        for spec in specs if self.parts.count > 1 else ():
            groups.setdefault(self.parts.home(graph_id or spec.id), []).append(spec)
        links: list[Link] = []
        if self.parts.count > 1:
            in_call = {s.id for s in specs}
            for keys, group in groups.items():
                for spec in group:
                    outside = [(d, p) for d, p in spec.depends_on if d not in in_call]
                    spec.linked = frozenset(d for d, _ in outside)
                    links.extend(Link(keys, spec.id, d, policy_code(p)) for d, p in outside)
        if graph_id:
            return links, [(keys, [enqueue_args(group, graph_id, graph_ttl)])
                           for keys, group in groups.items()]
        return links, [(keys, _batches(group)) for keys, group in groups.items()]

    def _views(self: _Self) -> list[_Self]:
        """This client once per partition, each with that partition's keys (only reads)."""
        if self.parts.count == 1:
            return [self]
        views = []
        for keys in self.parts.all:
            view = copy.copy(self)
            view.keys = keys
            views.append(view)
        return views

    def _homes(self, task_id: str) -> list[Keys]:
        """The partitions to look for a task in: its own, then the others (a graph's task
        lives in its graph's)."""
        home = self.parts.home(check_task_id(task_id))
        return [home, *self.parts.others(home)]

    def _dead_homes(self, id: str) -> list[Keys]:
        """Where a dead letter may be: any partition for an entry id, else its task's."""
        return self.parts.all if ENTRY_ID.match(id) else self._homes(id)

    def _wait_for_replicas(self, pipe: Any) -> None:
        """Queue a WAIT on ``pipe`` (same connection as the writes) when settings ask for one."""
        if self.settings.wait_replicas:
            pipe.execute_command("WAIT", self.settings.wait_replicas,
                                 max(1, round(self.settings.wait_timeout * 1000)))

    def _check_replies(self, replies: list[Any], scripts: int, ids: list[str]) -> None:
        """Raise the first script error, then ReplicationError if too few replicas acked."""
        for reply in replies[:scripts]:
            raise_for_script_error(reply)
        wanted = self.settings.wait_replicas
        if wanted and replies[-1] < wanted:
            raise ReplicationError(
                f"{len(ids)} task(s) enqueued on the master, but only {replies[-1]} of "
                f"{wanted} replicas acknowledged them within {self.settings.wait_timeout:g} s "
                "(Settings.wait_replicas): a failover now would lose them", ids)


def cancel_args(task_id: str, reason: str | None) -> list[Any]:
    """cancel.lua's arguments for one task."""
    return [reason or "cancelled", "", check_task_id(task_id)]


def _batches(specs: list[TaskSpec]) -> list[list[Any]]:
    if len(specs) > 1 and len({s.id for s in specs}) != len(specs):
        enqueue_args(specs)  # raises, naming the id that appears twice; nothing written
    return [enqueue_args(specs[i:i + BATCH]) for i in range(0, len(specs), BATCH)]
