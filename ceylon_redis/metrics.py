"""Prometheus metrics of one namespace, read from Redis at scrape time.

``CeylonCollector`` is a ``prometheus_client`` custom collector: each scrape
reads the namespace through a blocking ``Client`` (``queues()``, ``workers()``,
``dead_letters()`` and the pipeline of ``stats()``) and yields, every metric
labelled ``prefix`` and most ``role``:

=========================================  =========  ====================================
metric                                     type       what
=========================================  =========  ====================================
``ceylon_redis_up``                        gauge      1 if this scrape read Redis, else 0
``ceylon_redis_queue_ready``               gauge      on the stream, not yet delivered
``ceylon_redis_queue_running``             gauge      in flight: delivered, not yet acked
``ceylon_redis_queue_waiting``             gauge      waiting for prerequisites
``ceylon_redis_queue_scheduled``           gauge      delayed, or retrying after a backoff
``ceylon_redis_queue_held``                gauge      waiting for a limit (rate or slot)
``ceylon_redis_queue_oldest_ready_age_``   gauge      seconds the oldest ready task has
``seconds``                                           waited (0 when none is ready)
``ceylon_redis_dead_letters``              gauge      dead letters on ``{P}:dead``
``ceylon_redis_consumers``                 gauge      consumers of the role's group
``ceylon_redis_workers_alive``             gauge      workers of the role with a fresh
                                                      heartbeat
``ceylon_redis_worker_slots``              gauge      tasks those workers may run at once
``ceylon_redis_coordinators_alive``        gauge      coordinators with a fresh heartbeat
``ceylon_redis_tasks_completed_total``     counter    tasks that ended COMPLETED
``ceylon_redis_tasks_failed_total``        counter    tasks that ended FAILED
``ceylon_redis_tasks_cancelled_total``     counter    tasks that ended CANCELLED
``ceylon_redis_task_retries_total``        counter    attempts beyond the first, of final
                                                      tasks
``ceylon_redis_task_wait_seconds``         histogram  queue wait of the attempt that ended
                                                      a task
``ceylon_redis_task_run_seconds``          histogram  run time of that attempt
=========================================  =========  ====================================

The counters and histograms are the coordinator's statistics (``{P}:stats:<role>``,
see ``scripts/stats.lua``): they only grow (HINCRBY), so they are monotonic across
scrapes and across exporters, and they move only while a coordinator runs. The
latency histograms are real Prometheus histograms: the coordinator counts wait
and run times in log-scale buckets (ten per decade of milliseconds), and every
``bucket_step``-th bucket bound (default 5: two per decade, 1 ms to 10,000 s) is
exported as an ``le`` bound; ``_sum`` is the exact sum, ``_count`` the number of
samples. A coordinator bucket excludes its upper bound, so a time exactly on a
bound is counted in the next ``le``. The gauges are the state at the scrape.

Dead letters are counted per role over the newest ``dead_letter_scan`` entries
(default 10,000); beyond that, the rest are counted with ``role="?"``. A
malformed dead letter (no role) counts with ``role=""``.

Serve it with ``ceylon-redis metrics`` or ``ceylon-redis coordinator
--metrics-port``, or register it on your own registry::

    registry = CollectorRegistry()
    registry.register(CeylonCollector(Client(url, prefix)))
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from loguru import logger
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .client import DEAD_LETTER_SCAN, Client
from .client.replies import stats_from, stats_reads
from .errors import CeylonRedisError
from .models import QueueInfo, Stats, WorkerInfo
from .settings import Settings
from .stats import LAST_BUCKET, _fields

NAMESPACE = "ceylon_redis"
DEFAULT_PORT = 9808


@dataclass
class Snapshot:
    """What one scrape read: the client's views plus the raw statistics hashes."""

    prefix: str
    queues: list[QueueInfo]
    stats: Stats
    raw_stats: dict[str, dict[str, int]]
    workers: list[WorkerInfo]
    dead_letters: dict[str, int] = field(default_factory=dict)


def read_snapshot(client: Client, dead_letter_scan: int = DEAD_LETTER_SCAN) -> Snapshot:
    """Read one namespace through ``client`` (Redis errors propagate)."""
    queues = client.queues()
    roles = [q.role for q in queues]
    with client.redis.pipeline(transaction=False) as pipe:
        stats_reads(pipe, client.parts, roles)
        replies = pipe.execute()
    now = client.scripts.clock(keys=[client.keys.base])
    stats = stats_from(client.settings, client.parts, roles, replies, queues, now)
    raws = {role: _fields(raw) for role, raw in zip(roles, replies)}
    workers = client.workers()
    dead = {**dict.fromkeys(roles, 0), **client.dead_letter_counts(dead_letter_scan)}
    return Snapshot(prefix=client.settings.prefix, queues=queues, stats=stats, raw_stats=raws,
                    workers=workers, dead_letters=dead)


def histogram_buckets(counts: Mapping[int, int],
                      step: int = 5) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs in seconds from the coordinator's bucket counts.

    Coordinator bucket ``b`` holds [10^((b-1)/10), 10^(b/10)) ms (bucket 0: under 1 ms),
    so everything up to bucket ``k`` is below 10^(k/10) ms; bounds are taken at
    ``k = 0, step, 2 * step, ...`` below the last bucket (rounded to four significant
    digits: off by under 0.02%), then ``+Inf``.
    """
    out: list[tuple[str, float]] = []
    seen = 0
    for b in range(LAST_BUCKET):
        seen += counts.get(b, 0)
        if b % step == 0:
            out.append((repr(float(f"{10 ** (b / 10) / 1000:.4g}")), float(seen)))
    seen += sum(c for b, c in counts.items() if b >= LAST_BUCKET)
    out.append(("+Inf", float(seen)))
    return out


def _counts(raw: Mapping[str, int], kind: str) -> dict[int, int]:
    return {int(k[1:]): v for k, v in raw.items() if k[:1] == kind and k[1:].isdigit()}


def families(snap: Snapshot, step: int = 5) -> Iterator[Metric]:
    """The metric families of one snapshot."""
    p = snap.prefix
    labels = ["prefix", "role"]

    def gauge(name: str, doc: str, values: Iterable[tuple[str, float]]) -> GaugeMetricFamily:
        g = GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)
        for role, value in values:
            g.add_metric([p, role], value)
        return g

    qs = snap.queues
    yield gauge("queue_ready", "Tasks on the role's stream not yet delivered to a worker.",
                ((q.role, q.ready) for q in qs))
    yield gauge("queue_running", "Tasks in flight: delivered to a worker, not yet acknowledged.",
                ((q.role, q.running) for q in qs))
    yield gauge("queue_waiting", "Tasks waiting for prerequisites.",
                ((q.role, q.waiting) for q in qs))
    yield gauge("queue_scheduled", "Tasks held until a time: delayed, or retrying after a "
                "backoff.", ((q.role, q.scheduled) for q in qs))
    yield gauge("queue_held", "Tasks waiting for a limit of the role: a rate's turn or a free "
                "concurrency slot.", ((q.role, q.held) for q in qs))
    yield gauge("queue_oldest_ready_age_seconds", "Seconds the oldest ready task has waited "
                "to be taken (0 when none is ready).",
                ((q.role, getattr(q, "oldest_ready_age", None) or 0.0) for q in qs))
    yield gauge("dead_letters", "Dead letters (tasks given up, malformed entries) by role.",
                sorted(snap.dead_letters.items()))
    yield gauge("consumers", "Consumers in the role's consumer group.",
                ((q.role, q.consumers) for q in qs))
    yield gauge("workers_alive", "Workers of the role with a fresh heartbeat.",
                ((q.role, q.workers_alive) for q in qs))
    slots = {q.role: 0 for q in qs}
    for w in snap.workers:
        if w.alive:
            for role in w.roles:
                slots[role] = slots.get(role, 0) + w.concurrency
    yield gauge("worker_slots", "Tasks the role's live workers may run at once.",
                sorted(slots.items()))
    alive = GaugeMetricFamily(f"{NAMESPACE}_coordinators_alive",
                              "Coordinators with a fresh heartbeat (statistics move only "
                              "while one runs).", labels=["prefix"])
    alive.add_metric([p], snap.stats.coordinators_alive)
    yield alive

    counters = (("tasks_completed", "completed", "Tasks that ended COMPLETED."),
                ("tasks_failed", "failed", "Tasks that ended FAILED."),
                ("tasks_cancelled", "cancelled", "Tasks that ended CANCELLED."),
                ("task_retries", "retries", "Attempts beyond the first, of final tasks "
                                            "(retries and crashes)."))
    for name, attr, doc in counters:
        c = CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)
        for r in snap.stats.roles:
            c.add_metric([p, r.role], getattr(r, attr))
        yield c

    for name, kind, total, doc in (
            ("task_wait_seconds", "w", "wait_sum",
             "Queue wait (QUEUED to start) of the attempt that ended a task."),
            ("task_run_seconds", "r", "run_sum", "Run time of the attempt that ended a task.")):
        h = HistogramMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)
        for role in sorted(snap.raw_stats):
            raw = snap.raw_stats[role]
            h.add_metric([p, role], histogram_buckets(_counts(raw, kind), step),
                         raw.get(total, 0) / 1000)
        yield h


class CeylonCollector:
    """A custom collector reading one namespace at each scrape (see the module docs).

    ``client``: a blocking Client, or one is opened from ``url``/``prefix``/``settings``
    (closed by ``close()``). With ``raise_errors`` a scrape that cannot read Redis
    raises; otherwise it logs a warning and yields only ``ceylon_redis_up 0``.
    """

    def __init__(self, client: Client | None = None, *, url: str | None = None,
                 prefix: str | None = None, settings: Settings | None = None,
                 bucket_step: int = 5, dead_letter_scan: int = DEAD_LETTER_SCAN,
                 raise_errors: bool = False) -> None:
        if not 1 <= bucket_step <= LAST_BUCKET:
            raise ValueError(f"bucket_step must be 1 to {LAST_BUCKET}, not {bucket_step}")
        self._owns_client = client is None
        self.client = client if client is not None else Client(url, prefix, settings=settings)
        self.bucket_step = bucket_step
        self.dead_letter_scan = dead_letter_scan
        self.raise_errors = raise_errors

    def describe(self) -> list[Metric]:
        """Nothing up front: registering the collector reads no Redis."""
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{NAMESPACE}_up", "1 if this scrape could read Redis, else 0.",
                               labels=["prefix"])
        try:
            snap = read_snapshot(self.client, self.dead_letter_scan)
        except (redis.RedisError, CeylonRedisError, OSError) as exc:
            if self.raise_errors:
                raise
            logger.warning("metrics: cannot read prefix {}: {}", self.client.settings.prefix,
                           exc)
            up.add_metric([self.client.settings.prefix], 0)
            yield up
            return
        up.add_metric([snap.prefix], 1)
        yield up
        yield from families(snap, self.bucket_step)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def registry_for(collector: CeylonCollector) -> CollectorRegistry:
    """A registry of its own holding ``collector`` only."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


@dataclass
class MetricsServer:
    """A running /metrics HTTP server (a daemon thread) and its collector."""

    collector: CeylonCollector
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.collector.close()


def serve(settings: Settings, port: int = DEFAULT_PORT, host: str = "0.0.0.0",
          **options: Any) -> MetricsServer:
    """Serve ``/metrics`` of ``settings``' namespace on ``host:port`` from a thread.

    The collector opens its own blocking client; ``options`` go to CeylonCollector.
    """
    collector = CeylonCollector(settings=settings, **options)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry_for(collector))
    except BaseException:
        collector.close()
        raise
    logger.info("metrics of prefix {} served at http://{}:{}/metrics", settings.prefix, host,
                server.server_address[1])
    return MetricsServer(collector, server, thread)
