"""Handlers of the production example: one worker daemon per role runs them.

    ceylon-redis worker examples.production.tasks:resize --role resize --concurrency 20
    ceylon-redis worker examples.production.tasks:report --role report --concurrency 4
"""

import asyncio
import hashlib

from ceylon_redis import current_task


async def resize(data: dict) -> dict:
    """Pretend to resize an image: an async handler."""
    await asyncio.sleep(0.01)
    return {"path": data["path"], "size": [data.get("width", 640), data.get("height", 480)]}


def report(data: dict) -> dict:
    """Summarise the resized images this task depends on: a sync handler (runs in a thread)."""
    inputs = current_task().dependency_data
    digest = hashlib.sha256(repr(sorted(inputs)).encode()).hexdigest()[:12]
    return {"images": len(inputs), "digest": digest, "title": data.get("title", "")}
