"""Producers: ``Client`` for any Python program, ``AsyncClient`` for asyncio. Same methods.

::

    client = Client()                 # CEYLON_REDIS_URL / REDIS_URL, else localhost
    task_id = client.enqueue("resize", {"path": "a.png"})
    result = client.wait(task_id, timeout=10)

The asyncio side (``_async/``) is the one source; ``_sync/`` is generated from it
by ``.ci/unasync.py`` (a test fails when it is not current). Each client is made of
the same parts: producing, graphs, inspecting, dead letters and purges.
"""

from ._async.client import AsyncClient
from ._async.graphs import AsyncGraph
from ._sync.client import Client
from ._sync.graphs import Graph
from .replies import DEAD_LETTER_SCAN

__all__ = ["DEAD_LETTER_SCAN", "AsyncClient", "AsyncGraph", "Client", "Graph"]
