"""Handlers the benchmark workers run: each returns its input unchanged."""

from __future__ import annotations

from typing import Any

from ceylon_redis import current_task


async def noop_async(data: Any) -> Any:
    """An async handler that does nothing but return its input."""
    return data


def noop_sync(data: Any) -> Any:
    """A sync handler (run in the worker's thread pool) that returns its input."""
    return data


async def progress_10_async(data: Any) -> Any:
    """An async no-op that reports its progress ten times before returning its input."""
    ctx = current_task()
    for i in range(1, 11):
        ctx.progress(i / 10)
    return data


async def fail_when_told_async(data: Any) -> Any:
    """An async no-op that raises when its input says ``{"fail": True}`` (dead letters)."""
    if isinstance(data, dict) and data.get("fail"):
        raise RuntimeError("told to fail")
    return data
