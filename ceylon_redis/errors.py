"""The exceptions ceylon-redis raises.

::

    CeylonRedisError
    ├── ValidationError          bad input caught before anything is written
    │   └── EncodeError          a payload msgpack cannot carry (names the value)
    ├── TaskExistsError          a task id already in use
    ├── UnknownTaskError         a task id that Redis does not know
    ├── UnknownScheduleError     a schedule id that Redis does not know
    ├── DependencyError          a prerequisite that is unknown, failed or cancelled
    ├── ScriptError              a Lua script answered with an unexpected code
    ├── TaskTimeoutError         wait() ran out of time (also a builtin TimeoutError)
    ├── ProtocolMismatchError    a live daemon of this namespace runs other scripts (versions)
    ├── RedisConnectionError     a client's Redis is unreachable (also a redis.ConnectionError)
    └── RedisTimeoutError        a client's Redis did not answer in time (a redis.TimeoutError)

    Retry                        raised by a handler: run this task again (after ``delay``)
"""

from __future__ import annotations

import redis


class CeylonRedisError(Exception):
    """Base class of every error raised by ceylon-redis."""


class ValidationError(CeylonRedisError, ValueError):
    """Bad input: a name, size or value that cannot be accepted. Nothing was written."""


class EncodeError(ValidationError, TypeError):
    """A payload that msgpack cannot carry; the message names the offending value."""


class TaskExistsError(CeylonRedisError):
    """A task with this id exists already. Nothing was written."""


class UnknownTaskError(CeylonRedisError, KeyError):
    """No task with this id in this namespace (or its result has expired)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown task"


class UnknownScheduleError(CeylonRedisError, KeyError):
    """No schedule with this id in this namespace."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown schedule"


class DependencyError(CeylonRedisError):
    """Dependencies that cannot be met: a cycle, a task depending on itself, or a
    prerequisite already FAILED or CANCELLED on a ``cancel`` edge. Nothing was written.
    (An unknown prerequisite is an UnknownTaskError.)"""


class ScriptError(CeylonRedisError):
    """A Lua script returned an error code this version does not know."""


class TaskTimeoutError(CeylonRedisError, TimeoutError):
    """wait() gave up before the task reached a final state."""


class ReplicationError(CeylonRedisError):
    """Fewer replicas than ``Settings.wait_replicas`` acknowledged an enqueue in time. The
    tasks are on the master and run unless it fails before a replica copies them; ``task_ids``
    names them, so a caller can check (``get``) before enqueueing again."""

    def __init__(self, message: str, task_ids: list[str]) -> None:
        super().__init__(message)
        self.task_ids = task_ids


class ProtocolMismatchError(CeylonRedisError):
    """A worker would join a namespace where a live worker runs other scripts: another
    ceylon-redis version. Stop the old daemons first (docs/operations.md, "Upgrading")."""


class RedisConnectionError(CeylonRedisError, redis.ConnectionError):
    """A client could not reach its Redis (refused, reset, no free connection); the message
    names the URL, password redacted. The command may or may not have been carried out."""


class RedisTimeoutError(CeylonRedisError, redis.TimeoutError):
    """A client's Redis did not answer within ``Settings.socket_timeout`` (stopped,
    blackholed, overloaded); the message names the URL and the timeout. The command may
    still be carried out once Redis answers: repeat an enqueue with the same ``task_id``
    (TaskExistsError then says the first one went through)."""


class Retry(Exception):
    """Raise in a handler to have the task run again, after ``delay`` seconds if given
    (else the task's backoff). It spends an attempt: out of attempts, the task fails.
    """

    def __init__(self, reason: str = "retry requested", *, delay: float | None = None) -> None:
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float))
                                  or not delay >= 0):
            raise ValueError(f"Retry delay must be a number of seconds >= 0, not {delay!r}")
        super().__init__(reason)
        self.delay = delay


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``known`` (one differing only in case
    first, which it says), for a message about an unknown role; '' when none is close."""
    import difflib

    same = [k for k in known if k.lower() == name.lower() and k != name]
    if same:
        return f" (did you mean {same[0]!r}? roles are case-sensitive)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def raise_for_script_error(reply: object) -> None:
    """Turn a script's ``{'ERR', code, detail}`` reply into the matching exception."""
    if not (isinstance(reply, list) and reply and reply[0] in (b"ERR", "ERR")):
        return
    code = _text(reply[1]) if len(reply) > 1 else "?"
    detail = _text(reply[2]) if len(reply) > 2 else ""
    exc = _CODES.get(code)
    if exc is None:
        raise ScriptError(f"script error {code}: {detail}")
    raise exc(detail)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_CODES: dict[str, type[CeylonRedisError]] = {
    "EXISTS": TaskExistsError,
    "UNKNOWN": UnknownTaskError,
    "DEPENDENCY": DependencyError,
    "INVALID": ValidationError,
}
