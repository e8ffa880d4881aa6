"""OpenTelemetry, when installed (the ``otel`` extra): the producer's trace context travels
with each task (W3C ``traceparent``, field ``trace``) and the worker runs the attempt in a
CONSUMER span that is its child. Without the package nothing is imported and both ends
are free: an enqueue carries no context, an attempt runs without a span (so it does while
no tracer provider is set)."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

_otel: Any = None
_looked = False
_tracers: dict[Any, Any] = {}
"""The tracer of each tracer provider set, made once."""


def _api() -> Any:
    """The opentelemetry modules we use, or None when the package is not installed (looked
    for once, without importing it)."""
    global _otel, _looked
    if not _looked:
        _looked = True
        try:
            present = importlib.util.find_spec("opentelemetry") is not None
        except (ImportError, ValueError):  # a None placed in sys.modules hides it
            present = False
        if present:
            from opentelemetry import propagate, trace
            _otel = (propagate, trace)
    return _otel


def current_traceparent() -> str:
    """The calling code's trace context as a W3C traceparent ('' when none is active or
    OpenTelemetry is not installed)."""
    api = _api()
    if api is None:
        return ""
    carrier: dict[str, str] = {}
    api[0].inject(carrier)
    return carrier.get("traceparent", "")


_NO_SPAN: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()


def attempt_span(role: str, task_id: str, attempt: int,
                 traceparent: str) -> contextlib.AbstractContextManager[Any]:
    """A CONSUMER span around one attempt, child of the producer's context when the task
    carries one; it gives the span (None without OpenTelemetry or while no tracer
    provider is set: a span would record nothing, and cost some 10 us)."""
    api = _api()
    provider = api and api[1].get_tracer_provider()
    if api is None or isinstance(provider, api[1].ProxyTracerProvider):
        return _NO_SPAN
    propagate, trace = api
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    tracer = _tracers.get(provider) or _tracers.setdefault(
        provider, provider.get_tracer("ceylon_redis"))
    span: contextlib.AbstractContextManager[Any] = tracer.start_as_current_span(
        f"process {role}", context=parent, kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "ceylon-redis", "messaging.destination.name": role,
                    "messaging.message.id": task_id, "ceylon_redis.attempt": attempt})
    return span


def mark_failed(span: Any, error: str) -> None:
    """Set a failed attempt's span to ERROR, with its error's last line."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode
    last = error.strip().splitlines()[-1][:300] if error.strip() else "failed"
    span.set_status(Status(StatusCode.ERROR, last))
