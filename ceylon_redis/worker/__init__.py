"""The worker runtime: read a role's stream through its consumer group, run, record.

One ``Worker`` hosts one consumer per handler. Each consumer reads in batches
up to its free slots, starts the batch with one script call, runs handlers as
asyncio tasks (sync ones in a thread pool), and hands outcomes to a finisher
that records them in batches. A heartbeat loop keeps the consumers registered
and their in-flight entries fresh; a reaper gives back the tasks of workers
whose heartbeat lapsed. ``stop()`` drains: no new reads, in-flight tasks get
``grace`` seconds, whatever is left goes back on the stream.

The modules, each one part, composed by ``Worker`` around a shared ``Runtime``:

- ``state``: each handler's slots, its consumers, outcomes awaiting the finisher,
  and the runtime every part shares;
- ``consume``: the consume loop (blocking read, take, start);
- ``running``: one attempt from launch to its outcome: permits, time limit,
  mid-run fault, cancel, straggling sync threads;
- ``cancels``: the control channel's cancel listener;
- ``outcomes``: the finisher, recording outcomes in batches;
- ``heartbeat``: the heartbeat, reaping dead workers, give-back and deregister at stop;
- ``worker``: the ``Worker``, which makes the parts, runs them and stops them in order;
- ``daemon``: ``run_worker``, the ``ceylon-redis worker`` daemon with its signals.
"""

from __future__ import annotations

from .daemon import run_worker
from .heartbeat import reap_dead_workers
from .state import default_prefetch
from .worker import Worker

__all__ = ["Worker", "default_prefetch", "reap_dead_workers", "run_worker"]
