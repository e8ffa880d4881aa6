"""``ceylon-redis dashboard``: the web dashboard, served by uvicorn (extra ``dashboard``)."""

from __future__ import annotations

import sys

import click

from ..settings import Settings, redact_url
from .common import connection_options, friendly_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes it: use --actions only with care).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--actions", is_flag=True,
              help="Allow retry, cancel, purge and pause/resume, for holders of the token.")
@click.option("--token", envvar="CEYLON_REDIS_DASHBOARD_TOKEN", default=None,
              help="The token actions need [env CEYLON_REDIS_DASHBOARD_TOKEN; made up and "
                   "printed when --actions is given without one].")
@click.option("--refresh", type=click.FloatRange(min=0.5), default=2.0, show_default=True,
              help="Seconds between a page's looks at Redis when no event prompts one.")
@click.option("--root-path", default="", help="The path prefix a proxy serves it under.")
@connection_options
@friendly_errors
def dashboard(host: str, port: int, actions: bool, token: str | None, refresh: float,
              root_path: str, url: str | None, prefix: str | None) -> None:
    """Serve the web dashboard: queues, workers, tasks, graphs, dead letters, schedules,
    limits and events, updated live. Read-only unless --actions."""
    try:
        import uvicorn

        from ..dashboard import DashboardConfig, create_app
        from ..dashboard.guard import new_token
    except ImportError as exc:
        click.echo(f"error: the dashboard needs its extra: pip install 'ceylon-redis[dashboard]' "
                   f"({exc.name} is missing)", err=True)
        sys.exit(1)
    settings = Settings.from_env(url=url, prefix=prefix)
    if actions and not token:
        token = new_token()
        click.echo(f"actions are on; sign in with the token {token}", err=True)
    config = DashboardConfig(actions=actions, token=token, refresh=refresh)
    app = create_app(settings=settings, config=config)
    click.echo(f"dashboard of {settings.prefix} at {redact_url(settings.url)}: "
               f"http://{host}:{port}{root_path}/ ({'actions on' if actions else 'read-only'})",
               err=True)
    uvicorn.run(app, host=host, port=port, root_path=root_path, log_level="warning",
                access_log=False)
