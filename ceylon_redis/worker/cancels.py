"""The control channel: cancel running attempts as ``client.cancel`` announces them."""

from __future__ import annotations

import asyncio

from loguru import logger

from ..outages import is_outage
from .state import Cancel, Runtime

_IDLE_READ = 30.0
"""Seconds one read of the control channel waits for a message before waiting again."""

class CancelListener:
    """Subscribes to every partition's ``{P}:control`` and cancels what names this worker."""

    def __init__(self, rt: Runtime, cancel: Cancel) -> None:
        self.rt = rt
        self.cancel = cancel

    async def listen(self) -> None:
        """Cancel running attempts as ``cancel`` announces them on the control channel."""
        ids = {c.id for c in self.rt.firsts}
        backoff = 0.5
        while True:
            pubsub = self.rt.redis.pubsub()
            try:
                await pubsub.subscribe(*(keys.control for keys in self.rt.parts.all))
                backoff = 0.5
                while True:
                    # A read with its own timeout, not listen(): redis-py 5 cuts an idle
                    # listen() at the socket timeout.
                    msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=_IDLE_READ)
                    if msg is None or msg["type"] != "message":
                        continue
                    verb, _, rest = msg["data"].decode().partition(" ")
                    wid, _, tid = rest.partition(" ")
                    if verb == "cancel" and wid in ids:
                        self.cancel(tid, "cancel requested")
            except Exception as exc:
                if not is_outage(exc):
                    raise
                logger.warning("control channel lost ({}); resubscribing in {:.1f} s", exc,
                               backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await pubsub.aclose()
