"""No-op handlers the benchmark workers run: each returns its input unchanged."""

from __future__ import annotations

from typing import Any


async def noop_async(data: Any) -> Any:
    """An async handler that does nothing but return its input."""
    return data


def noop_sync(data: Any) -> Any:
    """A sync handler (run in the worker's thread pool) that returns its input."""
    return data
