"""The Jinja2 environment of the pages: autoescaping on for every template (task fields
are user input), and the filters that format times, durations and payloads."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2

from ..codec import jsonable
from ..events import entry_time


def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """``3 s ago``, ``in 2 min``: a time relative to now."""
    if value is None:
        return ""
    secs = ((now or dt.datetime.now(dt.timezone.utc)) - value).total_seconds()
    text = seconds(abs(secs))
    return f"{text} ago" if secs >= 0 else f"in {text}"


def seconds(value: float | None) -> str:
    """A duration in the unit that reads best: 850 ms, 12.5 s, 3 min, 2 h."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1000:.2f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def entry_when(entry_id: str) -> str:
    """The time of a stream entry id "<ms>-<seq>"."""
    try:
        return when(entry_time(entry_id.partition(".")[0]))
    except ValueError:
        return entry_id


def pretty(value: Any) -> str:
    """A decoded payload as indented JSON (its text; the template escapes it)."""
    try:
        return json.dumps(jsonable(value), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


MACROS = ("status", "bar", "task_rows", "action", "limit_scope")


def jinja_env(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(ago=ago, seconds=seconds, when=when, pretty=pretty,
                       entry_when=entry_when)
    macros = env.get_template("macros.html").make_module()
    env.globals.update({name: getattr(macros, name) for name in MACROS})  # in every block
    return env
