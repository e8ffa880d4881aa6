"""Every Redis key name ceylon-redis uses, built in one place.

All keys of a namespace share the hash tag ``{prefix}`` so that one namespace
lives in one Redis Cluster slot and every script touches a single slot.

=============================  ======  ===================  ==================
key                            type    written by           read by
=============================  ======  ===================  ==================
``{P}:task:<id>``              hash    enqueue/start/finish client, worker, CLI
``{P}:task:<id>:deps``         hash    enqueue, finish      finish (release)
``{P}:task:<id>:dependents``   set     enqueue              finish (release)
``{P}:stream:<role>``          stream  enqueue, finish      worker (group)
``{P}:waiting:<role>``         set     enqueue, finish      ``queues``, stats
``{P}:scheduled:<role>``       zset    enqueue, finish      promote (scheduler)
``{P}:priority:<role>``        zset    enqueue, finish      start (priorities)
``{P}:bound:<role>``           hash    start                finish, requeue
``{P}:limit:<role>``           hash    limit                start (limits)
``{P}:limits``                 set     limit                ``limit list``
``{P}:bucket:<scope>``         string  start                start (rates)
``{P}:running:<scope>``        set     start                start, finish, requeue
``{P}:blocked:<scope>``        list    start                finish, requeue, limit
``{P}:blocking:<role>``        set     start                limit
``{P}:held``                   hash    start, finish        ``queues``, ``limit``
``{P}:buckets:<role>``         set     start                limit
``{P}:dead``                   stream  finish, start, reap  ``dead`` CLI, client
``{P}:roles``                  set     enqueue, worker      CLI ``queues``
``{P}:workers``                zset    worker heartbeat     recovery, CLI
``{P}:worker:<id>``            hash    worker               CLI ``workers``
``{P}:graph:<id>``             hash    enqueue, finish      graph handle, CLI
``{P}:graph:<id>:tasks``       set     enqueue              graph handle
``{P}:events``                 stream  finish, cancel       coordinator (group)
``{P}:lifecycle``              stream  every transition     ``events`` (CLI, clients)
``{P}:stats:<role>``           hash    coordinator          ``stats``
``{P}:coordinators``           zset    coordinator          ``queues``, ``stats``
``{P}:partitions``             string  first process        every process
``{P}:task:<id>:xdependents``  set     link                 finish (releases)
``{P}:releases``               stream  finish, link         coordinator (group)
``{P}:task:<id>:early``        hash    release              enqueue
``{P}:task:<id>:xout``         hash    release              start
=============================  ======  ===================  ==================

A namespace with N partitions (Settings.partitions) has N such sets of keys:
partition 0 under ``{P}:``, partition k under ``{P~k}:``; ``partitions`` lives
in partition 0 only.

Channels: ``{P}:reply:<client-id>`` carries completions to waiting clients;
``{P}:control`` tells workers to cancel a running task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
ENTRY_ID = re.compile(r"^[0-9]+-[0-9]+\Z")
"""A stream entry id, "<ms>-<seq>" (task ids can look like one: callers say which they mean)."""
GROUP = "workers"
COORDINATOR_GROUP = "coordinators"


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid role or prefix name, else raise ValidationError."""
    from .errors import ValidationError

    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ValidationError(
            f"invalid {kind} {value!r}: use 1-64 characters from A-Z a-z 0-9 _ . -"
        )
    return value


def check_task_id(value: str) -> str:
    """Return ``value`` if it is a valid task id, else raise ValidationError."""
    from .errors import ValidationError

    if not isinstance(value, str) or not TASK_ID_PATTERN.match(value):
        raise ValidationError(
            f"invalid task id {value!r}: use 1-128 characters from A-Z a-z 0-9 _ . -"
        )
    return value


@dataclass(frozen=True)
class Keys:
    """Key names of one namespace (prefix), or of one partition of it."""

    prefix: str
    partition: int = 0
    """Partition 0 is the namespace itself; partition k > 0 is ``{prefix~k}``, a hash tag
    (so a Redis Cluster slot) of its own. ``~`` cannot occur in a prefix."""

    def __post_init__(self) -> None:
        check_name("prefix", self.prefix)

    @property
    def base(self) -> str:
        """The hash-tagged stem of every key of the partition; scripts take it as KEYS[1]."""
        if self.partition:
            return "{" + f"{self.prefix}~{self.partition}" + "}:"
        return "{" + self.prefix + "}:"

    @property
    def partitions(self) -> str:
        """How many partitions the namespace has, recorded by its first process (partition 0)."""
        return f"{self.base}partitions"

    @property
    def releases(self) -> str:
        """Releases of dependents in other partitions, for the coordinators to apply."""
        return f"{self.base}releases"

    def task(self, task_id: str) -> str:
        return f"{self.base}task:{task_id}"

    def deps(self, task_id: str) -> str:
        return f"{self.base}task:{task_id}:deps"

    def dependents(self, task_id: str) -> str:
        return f"{self.base}task:{task_id}:dependents"

    def stream(self, role: str) -> str:
        return f"{self.base}stream:{role}"

    @property
    def roles(self) -> str:
        return f"{self.base}roles"

    @property
    def workers(self) -> str:
        return f"{self.base}workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.base}worker:{worker_id}"

    def waiting(self, role: str) -> str:
        return f"{self.base}waiting:{role}"

    def scheduled(self, role: str) -> str:
        return f"{self.base}scheduled:{role}"

    def priority(self, role: str) -> str:
        """The role's prioritized QUEUED tasks, best first (common.lua has the layout)."""
        return f"{self.base}priority:{role}"

    def bound(self, role: str) -> str:
        """Entry id -> the prioritized task it serves, while that task runs."""
        return f"{self.base}bound:{role}"

    def limit(self, role: str) -> str:
        """The role's flow-control limits (limits.py; scripts/includes/limits.lua)."""
        return f"{self.base}limit:{role}"

    @property
    def limits(self) -> str:
        """Roles that have limits."""
        return f"{self.base}limits"

    @property
    def held(self) -> str:
        """Role -> tasks waiting for a limit (a rate's turn or a slot)."""
        return f"{self.base}held"

    def blocked(self, scope: str) -> str:
        """Task ids waiting for a concurrency slot of the scope, oldest first."""
        return f"{self.base}blocked:{scope}"

    def blocking(self, role: str) -> str:
        """The role's scopes with tasks in a ``blocked`` list."""
        return f"{self.base}blocking:{role}"

    def running(self, scope: str) -> str:
        """Task ids holding a concurrency slot of ``<role>`` or ``<role>:<limit key>``."""
        return f"{self.base}running:{scope}"

    @property
    def dead(self) -> str:
        return f"{self.base}dead"

    @property
    def control(self) -> str:
        """Channel on which workers are told to cancel a running task."""
        return f"{self.base}control"

    def graph(self, graph_id: str) -> str:
        return f"{self.base}graph:{graph_id}"

    def graph_tasks(self, graph_id: str) -> str:
        return f"{self.base}graph:{graph_id}:tasks"

    @property
    def events(self) -> str:
        return f"{self.base}events"

    @property
    def lifecycle(self) -> str:
        """Every transition of every task (common.lua's note_event), capped."""
        return f"{self.base}lifecycle"

    @property
    def coordinators(self) -> str:
        return f"{self.base}coordinators"

    def recent(self, role: str) -> str:
        """List: "<C|F|X> <finished at> <task id>" of the role's latest finished tasks."""
        return f"{self.base}recent:{role}"

    def failures(self, role: str) -> str:
        """List: as ``recent``, of the role's failed and cancelled tasks only."""
        return f"{self.base}failures:{role}"

    def stats(self, role: str) -> str:
        return f"{self.base}stats:{role}"

    @property
    def schedules(self) -> str:
        """Schedule ids scored by their next tick (ms, Redis's clock; +inf while paused)."""
        return f"{self.base}schedules"

    def schedule(self, schedule_id: str) -> str:
        return f"{self.base}schedule:{schedule_id}"

    @property
    def schedule_roles(self) -> str:
        """How many schedules feed each role: role -> count."""
        return f"{self.base}schedule_roles"

    def reply_channel(self, client_id: str) -> str:
        return f"{self.base}reply:{client_id}"
