"""The dashboard as an ASGI app: ``create_app(url=...)`` to serve it (``ceylon-redis
dashboard`` does), or to mount in a Starlette or FastAPI app of your own."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..client import AsyncClient
from ..errors import CeylonRedisError, UnknownTaskError, ValidationError, did_you_mean
from ..events import KINDS
from ..settings import Settings
from . import actions, views
from .config import DashboardConfig
from .guard import COOKIE, CSRF_FIELD, Guard
from .layout import NODE_H, NODE_W
from .lists import LIST_STATUSES, dead_page, lifecycle_page, tasks_page, whole
from .live import EventHub, SharedCache
from .render import jinja_env

HERE = Path(__file__).parent
FEED_KINDS = sorted(KINDS - {"progress"})
"""What the overview's feed shows: every transition but progress reports (too many)."""
FEED_SCAN = 2_000
"""Lifecycle entries the feed looks back through at most when the page opens."""
SESSION_SECONDS = 12 * 3600
"""How long a sign-in lasts (the cookie holds an HMAC of the token: changing the token
signs every browser out)."""
HEARTBEAT = 15.0
"""Seconds between SSE comments that keep an idle stream open through proxies."""


class Dashboard:
    """The state behind the routes: the client, the cache, the event hub, the guard."""

    def __init__(self, client: AsyncClient, config: DashboardConfig, owns_client: bool) -> None:
        self.client, self.config, self.owns_client = client, config, owns_client
        self.guard = Guard(config.actions, config.token)
        self.cache = SharedCache(config.cache_ttl)
        self.hub = EventHub(client)
        self.env = jinja_env(HERE / "templates")

    def cached(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]
               ) -> Awaitable[Any]:
        """``make()``'s value, shared with every request for the same view (``key``)."""
        return self.cache.get(repr(key), make)

    def render(self, request: Request, name: str, http_status: int = 200, **ctx: Any) -> Response:
        """A page, or only its live block when the page's script asks for it."""
        signed_in = self.guard.signed_in(request)
        q = request.query_params
        msg, error, sig = q.get("msg", ""), q.get("error", ""), q.get("sig", "")
        ctx.update(
            request=request, root=request.scope.get("root_path", ""),
            refresh=self.config.refresh, actions=self.config.actions, signed_in=signed_in,
            csrf=self.guard.csrf if signed_in else "", csrf_field=CSRF_FIELD,
            prefix=self.client.settings.prefix,
            msg=msg if self.guard.signed("msg:" + msg, sig) else "",
            error=error if self.guard.signed("error:" + error, sig) else "",
            now=dt.datetime.now(dt.timezone.utc), node_w=NODE_W, node_h=NODE_H)
        template = self.env.get_template(name)
        if request.query_params.get("fragment") and "live" in template.blocks:
            body = "".join(template.blocks["live"](template.new_context(ctx)))
        else:
            body = template.render(ctx)
        return HTMLResponse(body, status_code=http_status, headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store"}
"""No inline script runs (a task field that slipped the escaping could not execute), and
no other site may frame the pages (clickjacking)."""


def _dash(request: Request) -> Dashboard:
    return request.app.state.dashboard  # type: ignore[no-any-return]


async def overview(request: Request) -> Response:
    d = _dash(request)
    data = await d.cached(("overview",), lambda: views.overview(d.client))
    recent: list[Any] = []
    if not request.query_params.get("fragment"):  # the live region has no feed: SSE fills it
        recent = await d.cached(("recent",), lambda: d.client.recent_events(
            25, kinds=FEED_KINDS, scan=FEED_SCAN))
    return d.render(request, "overview.html", data=data, recent=list(reversed(recent)))


async def overview_json(request: Request) -> Response:
    d = _dash(request)
    return JSONResponse(await d.cached(("overview",), lambda: views.overview(d.client)))


async def queues(request: Request) -> Response:
    d = _dash(request)
    rows = await d.cached(("queues",), d.client.queues)
    return d.render(request, "queues.html", queues=rows)


async def workers(request: Request) -> Response:
    d = _dash(request)
    rows = await d.cached(("workers",), lambda: views.workers(d.client))
    return d.render(request, "workers.html", workers=rows)


async def tasks(request: Request) -> Response:
    d = _dash(request)
    q = request.query_params
    task_id = q.get("id", "").strip()
    if task_id:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/tasks/"
                                f"{quote(task_id, safe='')}", 303)
    known = sorted(x.role for x in await d.cached(("queues",), d.client.queues))
    role, status, cursor = q.get("role", ""), q.get("status", "queued"), q.get("cursor", "")
    if status not in LIST_STATUSES:
        raise ValidationError(f"unknown status {status!r}; one of {', '.join(LIST_STATUSES)}")
    if role and role not in known:  # a role new since the cached read?
        known = sorted(x.role for x in await d.client.queues())
    if role and role not in known:
        raise ValidationError(f"no role {role!r} in this namespace{did_you_mean(role, known)}; "
                              f"roles: {', '.join(known) or 'none yet'}")
    page = None
    if role or status in ("finished", "completed", "failed", "cancelled"):
        page = await d.cached(("tasks", role, status, cursor), lambda: tasks_page(
            d.client, role, status, cursor, d.config.page_size))
    return d.render(request, "tasks.html", roles=known, role=role, status=status,
                    statuses=LIST_STATUSES, page=page, cursor=cursor)


async def task(request: Request) -> Response:
    d = _dash(request)
    tid = request.path_params["task_id"]
    data = await d.cached(("task", tid), lambda: views.task(d.client, tid))
    return d.render(request, "task.html", **data)


async def graph(request: Request) -> Response:
    d = _dash(request)
    gid = request.path_params["graph_id"]
    data = await d.cached(("graph", gid), lambda: views.graph(d.client, gid))
    return d.render(request, "graph.html", **data)


async def dead(request: Request) -> Response:
    d = _dash(request)
    role, cursor = request.query_params.get("role") or None, request.query_params.get(
        "cursor", "")
    letters, after = await d.cached(("dead", role, cursor), lambda: dead_page(
        d.client, role, cursor, d.config.page_size))
    counts = await d.cached(("dead counts",), d.client.dead_letter_counts)
    return d.render(request, "dead.html", letters=letters, next=after, role=role or "",
                    counts=counts, cursor=cursor)


async def schedules(request: Request) -> Response:
    d = _dash(request)
    return d.render(request, "schedules.html",
                    schedules=await d.cached(("schedules",), d.client.schedules))


async def limits(request: Request) -> Response:
    d = _dash(request)
    return d.render(request, "limits.html", limits=await d.cached(("limits",), d.client.limits))


async def events(request: Request) -> Response:
    d = _dash(request)
    q = request.query_params
    role, kind, before = q.get("role") or None, q.get("kind") or None, q.get("before", "")
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"unknown event kind {kind!r}; one of {', '.join(sorted(KINDS))}")
    parts = d.client.parts.all
    part = whole(q.get("part", ""))
    if part >= len(parts):
        raise ValidationError(f"no partition {part}: this namespace has {len(parts)}")
    kinds = frozenset({kind}) if kind else None
    found, after, _ = await d.cached(("events", part, role, kind, before),
                                     lambda: lifecycle_page(d.client, parts[part], role, kinds,
                                                            before, 100))
    return d.render(request, "events.html", events=found, next=after, role=role or "",
                    kind=kind or "", kinds=sorted(KINDS), part=part, parts=len(parts))


async def stream(request: Request) -> Response:
    """Server-sent events: the lifecycle stream as it grows, one JSON list per batch
    (``?task=`` or ``?role=`` narrows it; an empty list means: reload your view)."""
    d = _dash(request)
    task_id, role = request.query_params.get("task"), request.query_params.get("role")

    async def body() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        async with d.hub.listen() as queue:
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    yield ": idle\n\n"
                    continue
                batch = [first]
                await asyncio.sleep(0.2)  # gather what comes with it: one message per burst
                while not queue.empty() and len(batch) < 500:
                    batch.append(queue.get_nowait())
                if any(e is None for e in batch):
                    yield "data: []\n\n"
                    continue
                picked = [e.model_dump(mode="json") for e in batch if e is not None
                          and (task_id is None or e.task_id == task_id)
                          and (role is None or e.role == role)]
                if picked:
                    yield f"data: {json.dumps(picked)}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def login(request: Request) -> Response:
    d = _dash(request)
    if request.method == "GET":
        return d.render(request, "login.html")
    form = await request.form()
    root = request.scope.get("root_path", "")
    if not d.config.actions or d.config.token is None:
        return d.render(request, "login.html", http_status=403, failed="actions are off")
    if not d.guard._matches(str(form.get("token", "")), d.config.token):
        return d.render(request, "login.html", http_status=401, failed="wrong token")
    response = RedirectResponse(actions.safe_back(str(form.get("back", "")), root), 303)
    response.set_cookie(COOKIE, d.guard.cookie_value, httponly=True, samesite="strict",
                        path=root or "/", max_age=SESSION_SECONDS,
                        secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}/", 303)
    response.delete_cookie(COOKIE, path=root or "/")
    return response


async def _errors(request: Request, exc: Exception) -> Response:
    d = _dash(request)
    if isinstance(exc, UnknownTaskError):
        status = 404
    elif isinstance(exc, ValidationError):
        status = 400
    elif isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        status = 503
    else:
        status = 500
    return d.render(request, "error.html", http_status=status, problem=str(exc), code=status)


def create_app(client: AsyncClient | None = None, *, url: str | None = None,
               prefix: str | None = None, settings: Settings | None = None,
               config: DashboardConfig | None = None) -> Starlette:
    """The dashboard's ASGI app, on ``client`` (kept open) or on a client of its own made
    from ``url``/``prefix``/``settings`` (closed with the app)."""
    config = config or DashboardConfig()
    config.check()
    owns = client is None
    the_client = client or AsyncClient(url, prefix, settings=settings)
    dashboard = Dashboard(the_client, config, owns)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await dashboard.hub.close()
        if dashboard.owns_client:
            await dashboard.client.close()

    routes = [
        Route("/", overview), Route("/api/overview", overview_json),
        Route("/queues", queues), Route("/workers", workers), Route("/tasks", tasks),
        Route("/tasks/{task_id:path}", task), Route("/graphs/{graph_id:path}", graph),
        Route("/dead", dead), Route("/schedules", schedules), Route("/limits", limits),
        Route("/events", events), Route("/api/stream", stream),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        *actions.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[Any, Any] = {CeylonRedisError: _errors, redis.RedisError: _errors}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.dashboard = dashboard
    return app


__all__ = ["create_app"]
