"""The web dashboard (extra ``ceylon-redis[dashboard]``): ``create_app`` is an ASGI app
to serve with uvicorn or mount in a Starlette or FastAPI app; ``ceylon-redis dashboard``
serves it. Read-only unless made with actions and a token."""

from __future__ import annotations

from .app import create_app
from .config import DashboardConfig

__all__ = ["DashboardConfig", "create_app"]
