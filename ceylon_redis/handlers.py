"""Turning what a user gives a worker (function, ProcessWorker, list) into handlers."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .codec import encode
from .errors import EncodeError, Retry, ValidationError
from .keys import check_name
from .models import TaskResult, TaskStatus
from .process import ProcessRequest, ProcessWorker, TaskContext, _current
from .threads import Call, ThreadRunner

FINAL, NOT_RETRYABLE, BACKOFF = "n", "x", "b"
"""How the finish script treats a failed attempt (else: retry after that many ms)."""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, ready for the finish script."""

    status: str  # COMPLETED or FAILED
    output: bytes
    error: str
    retry: str = FINAL
    """FINAL: as reported; NOT_RETRYABLE: dead-letter it; BACKOFF or ms: retry while
    attempts are left."""


@dataclass
class Handler:
    """One consumer's code: a role, a display name, and how to call it."""

    role: str
    name: str
    func: Callable[..., Any]
    is_async: bool
    process_worker: ProcessWorker | None = None

    async def run(self, ctx: TaskContext, data: Any, threads: ThreadRunner,
                  timeout: float | None = None,
                  on_thread: Callable[[Call], None] | None = None) -> Outcome:
        """Run the handler for one task and turn what it did into an Outcome.

        Past ``timeout`` seconds the attempt fails with a timeout error: an async
        handler is cancelled; a sync one cannot be, and its thread (handed to
        ``on_thread``) runs on with its result discarded.
        """
        token = _current.set(ctx)
        try:
            if timeout is None:
                return await self._call(ctx, data, threads, on_thread)
            try:
                return await asyncio.wait_for(self._call(ctx, data, threads, on_thread),
                                              timeout)
            except asyncio.TimeoutError:
                return Outcome("FAILED", b"", f"TaskTimeout: the attempt ran past its "
                               f"timeout of {timeout:g} s", BACKOFF)
        finally:
            _current.reset(token)

    async def _call(self, ctx: TaskContext, data: Any, threads: ThreadRunner,
                    on_thread: Callable[[Call], None] | None) -> Outcome:
        try:
            if self.process_worker is not None:
                value = await self.process_worker._processor(
                    _request(ctx, data), int(time.time() * 1000))
                return _process_outcome(value)
            if self.is_async:
                value = await self.func(data)
            else:
                thread, outcome = threads.submit(self.func, data)
                if on_thread is not None:
                    on_thread(thread)
                value = await outcome
            return _encoded(True, value)
        except asyncio.CancelledError:
            raise
        except Retry as exc:
            retry = BACKOFF if exc.delay is None else str(round(exc.delay * 1000))
            return Outcome("FAILED", b"", f"Retry: {exc}", retry)
        except Exception as exc:
            return Outcome("FAILED", b"", _describe(exc), BACKOFF)


def _request(ctx: TaskContext, data: Any) -> ProcessRequest:
    """As Ceylon's: ``dependency_data`` maps each completed prerequisite to its TaskResult
    (Ceylon's tutorial adds up ``d.output``); TaskContext's maps to the bare output."""
    inner = data.get("data") if isinstance(data, dict) else None
    deps = {tid: TaskResult(success=True, output=output, task_id=tid,
                            status=TaskStatus.COMPLETED)
            for tid, output in ctx.dependency_data.items()}
    return ProcessRequest(task_type=ctx.role, data=inner, input_data=data,
                          dependency_data=deps or None,
                          failed_dependencies=ctx.failed_dependencies or None, task_id=ctx.id,
                          task_name=ctx.name, attempt=ctx.attempt)


def _process_outcome(value: Any) -> Outcome:
    """A processor's ``(False, payload)`` is an outcome it reported, not a failure to retry."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):
        success, output = value
        return _encoded(success, output, error="" if success else "processor reported failure")
    return _encoded(True, value)


def _encoded(success: bool, value: Any, error: str = "") -> Outcome:
    try:
        payload = encode(value, "output") if value is not None else b""
    except EncodeError as exc:
        return Outcome("FAILED", b"", f"EncodeError: {exc}", NOT_RETRYABLE)
    return Outcome("COMPLETED" if success else "FAILED", payload, error, FINAL)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text[:4000]


def handlers_from(obj: Any, role: str | None = None) -> list[Handler]:
    """Handlers for a callable, a ProcessWorker, or a list of either.

    A plain callable needs ``role``; a ProcessWorker brings its own (``role``,
    when given, must match it).
    """
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    if not items:
        raise ValidationError("no handlers given")
    out = []
    for item in items:
        if isinstance(item, ProcessWorker):
            if role and item.role != role:
                raise ValidationError(
                    f"worker {item.name!r} has role {item.role!r}, not {role!r}")
            check_name("role", item.role)
            if not inspect.iscoroutinefunction(item._processor):
                raise ValidationError(f"{type(item).__name__}._processor must be "
                                      "`async def` (ProcessWorker awaits it)")
            out.append(Handler(item.role, item.name, item._processor, True, item))
        elif callable(item):
            if not role:
                raise ValidationError(f"a role is needed for handler {item!r} (--role)")
            check_name("role", role)
            name = getattr(item, "__name__", type(item).__name__)
            is_async = inspect.iscoroutinefunction(item) or inspect.iscoroutinefunction(
                type(item).__call__)
            out.append(Handler(role, name, item, is_async))
        else:
            raise ValidationError(f"{item!r} is neither a callable nor a ProcessWorker")
    return out


def load_object(spec: str) -> Any:
    """Import ``MODULE:OBJECT`` (OBJECT may be dotted), with an error that says what failed."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(f"expected MODULE:OBJECT, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        where = ""
        if isinstance(exc, ModuleNotFoundError) and exc.name and (
                module_name == exc.name or module_name.startswith(exc.name + ".")):
            where = (f" (modules are imported from the current directory, {os.getcwd()}, and "
                     "PYTHONPATH: run the worker where the module is, or add its directory "
                     "to PYTHONPATH)")  # the target itself is missing, not one of its imports
        raise ValidationError(f"cannot import module {module_name!r}: {exc}{where}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValidationError(f"module {module_name!r} has no {attr!r}") from None
    return target
