"""OpenTelemetry (the ``otel`` extra): the producer's trace context travels with the task
and the worker's span of each attempt is its child; without the package nothing is
imported and tasks run as ever. Each case runs in a fresh interpreter on an embedded
Redis, since a tracer provider, once set, is the process's for good."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TRACED = """
import asyncio, json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ceylon_redis import AsyncClient, Settings, Worker

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def handler(data):
    if data == "fail":
        raise ValueError("told to fail")
    return data

async def main():
    settings = Settings(url="embedded://", prefix="otel")
    async with AsyncClient(settings=settings) as client:
        with trace.get_tracer("app").start_as_current_span("request") as request:
            ok = await client.enqueue("work", "ok")
            bad = await client.enqueue("work", "fail")
        plain = await client.enqueue("work", "untraced")
        worker = Worker(handler, role="work", settings=settings,
                        redis_client=client.redis, reap=False)
        run = asyncio.create_task(worker.run())
        await client.wait_many([ok, bad, plain], timeout=10)
        worker.stop()
        await run
        stored = (await client.redis.hget(client.keys.task(ok), "trace")).decode()
    ctx = request.get_span_context()
    spans = [s for s in exporter.get_finished_spans() if s.name == "process work"]
    print(json.dumps({
        "trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x"),
        "stored": stored,
        "spans": {s.attributes["messaging.message.id"]: {
            "trace_id": format(s.context.trace_id, "032x"),
            "parent": format(s.parent.span_id, "016x") if s.parent else None,
            "kind": s.kind.name, "status": s.status.status_code.name,
            "attempt": s.attributes["ceylon_redis.attempt"]} for s in spans},
        "ids": {"ok": ok, "bad": bad, "plain": plain}}))

asyncio.run(main())
"""

HIDDEN = """
import asyncio, json, sys
sys.modules["opentelemetry"] = None          # as if the extra were not installed
from ceylon_redis import AsyncClient, Settings, Worker

async def handler(data):
    return data * 2

async def main():
    settings = Settings(url="embedded://", prefix="nootel")
    async with AsyncClient(settings=settings) as client:
        tid = await client.enqueue("work", 21)
        worker = Worker(handler, role="work", settings=settings,
                        redis_client=client.redis, reap=False)
        run = asyncio.create_task(worker.run())
        result = await client.wait(tid, timeout=10)
        worker.stop()
        await run
        stored = await client.redis.hget(client.keys.task(tid), "trace")
    print(json.dumps({"output": result.output, "stored": stored,
                      "imported": sorted(m for m in sys.modules
                                         if m.startswith("opentelemetry."))}))

asyncio.run(main())
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_workers_span_is_a_child_of_the_producers() -> None:
    got = _run(TRACED)
    ids, spans = got["ids"], got["spans"]
    assert got["stored"].startswith(f"00-{got['trace_id']}-{got['span_id']}-")
    for which in ("ok", "bad"):
        span = spans[ids[which]]
        assert span["trace_id"] == got["trace_id"] and span["parent"] == got["span_id"]
        assert span["kind"] == "CONSUMER" and span["attempt"] == 1
    assert spans[ids["ok"]]["status"] == "UNSET"
    assert spans[ids["bad"]]["status"] == "ERROR"
    plain = spans[ids["plain"]]                 # enqueued outside any span: a root span
    assert plain["parent"] is None and plain["trace_id"] != got["trace_id"]


def test_without_opentelemetry_nothing_is_imported_and_tasks_run() -> None:
    got = _run(HIDDEN)
    assert got == {"output": 42, "stored": None, "imported": []}
