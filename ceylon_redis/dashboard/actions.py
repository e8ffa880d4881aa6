"""The dashboard's actions: retry and purge dead letters, cancel a task, purge a role's
queue, retry a graph's failures, pause and resume a schedule. Each is a POST that the
guard lets through only with the token (and, from a browser, the CSRF token); a browser
is sent back to the page it came from with what happened, an API caller gets JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from loguru import logger
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..client import AsyncClient
from ..errors import CeylonRedisError
from .guard import CSRF_FIELD, Guard


def safe_back(back: str, root: str) -> str:
    """Where to send the browser after an action: a path of this dashboard only."""
    if back.startswith(root + "/") and not back.startswith("//") and "\\" not in back:
        return back
    return f"{root}/"


def _ids(form: FormData) -> list[str]:
    return [str(v).strip() for v in form.getlist("id") if str(v).strip()]


async def _retry_dead(client: AsyncClient, form: FormData) -> str:
    ids = _ids(form)
    if not ids and form.get("all") != "yes":
        raise CeylonRedisError("name the dead letters to retry, or confirm retrying all")
    report = await client.retry_dead(ids or None)
    skipped = "; ".join(f"{k}: {v}" for k, v in list(report.skipped.items())[:5])
    return f"retried {report.retried}" + (f" (skipped {skipped})" if skipped else "")


async def _purge_dead(client: AsyncClient, form: FormData) -> str:
    ids = _ids(form)
    if not ids and form.get("all") != "yes":
        raise CeylonRedisError("name the dead letters to purge, or confirm purging all")
    return f"purged {await client.purge_dead(ids or None)} dead letters"


async def _cancel(client: AsyncClient, form: FormData) -> str:
    done = [tid for tid in _ids(form) if await client.cancel(tid, "cancelled from the "
                                                             "dashboard")]
    return f"cancelled {len(done)}"


async def _purge_role(client: AsyncClient, form: FormData) -> str:
    role = str(form.get("role", ""))
    if not role:
        raise CeylonRedisError("which role's queue to purge?")
    return f"purged {await client.purge(role, 'purged from the dashboard')} tasks of {role}"


async def _retry_graph(client: AsyncClient, form: FormData) -> str:
    gid = str(form.get("graph", ""))
    return f"reset {await client.graph(gid).retry_failed()} tasks of graph {gid}"


async def _pause(client: AsyncClient, form: FormData) -> str:
    sid = str(form.get("schedule", ""))
    await client.pause_schedule(sid)
    return f"paused schedule {sid}"


async def _resume(client: AsyncClient, form: FormData) -> str:
    sid = str(form.get("schedule", ""))
    await client.resume_schedule(sid)
    return f"resumed schedule {sid}"


ACTIONS: dict[str, Callable[[AsyncClient, FormData], Awaitable[str]]] = {
    "retry-dead": _retry_dead, "purge-dead": _purge_dead, "cancel": _cancel,
    "purge-role": _purge_role, "retry-graph": _retry_graph, "pause-schedule": _pause,
    "resume-schedule": _resume}


def _handler(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def act(request: Request) -> Response:
        d: Any = request.app.state.dashboard
        form = await request.form()
        root = request.scope.get("root_path", "")
        back = safe_back(str(form.get("back", "")), root)
        wants_json = "application/json" in request.headers.get("accept", "")
        refusal = d.guard.refusal(request, str(form.get(CSRF_FIELD, "")) or None)
        if refusal is not None:
            status, reason = refusal
            logger.warning("dashboard: {} refused ({})", name, reason)
            if wants_json:
                return JSONResponse({"error": reason}, status_code=status)
            page: Response = d.render(request, "error.html", http_status=status, problem=reason,
                                      code=status)
            return page
        try:
            said = await ACTIONS[name](d.client, form)
        except CeylonRedisError as exc:
            if wants_json:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return RedirectResponse(_with(back, "error", str(exc), d.guard), 303)
        logger.info("dashboard: {}: {}", name, said)
        d.cache.clear()  # the next look shows the action's effect
        if wants_json:
            return JSONResponse({"ok": said})
        return RedirectResponse(_with(back, "msg", said, d.guard), 303)

    return act


def _with(back: str, key: str, text: str, guard: Guard) -> str:
    """``back`` with a signed flash message (any earlier one dropped)."""
    base = back.split("?", 1)[0] if ("msg=" in back or "error=" in back) else back
    return (f"{base}{'&' if '?' in base else '?'}{key}={quote(text)}"
            f"&sig={guard.sign(key + ':' + text)}")


def routes() -> list[Route]:
    return [Route(f"/actions/{name}", _handler(name), methods=["POST"]) for name in ACTIONS]
