"""A producer's fast lane: one connection set aside for single script calls.

redis-py checks every connection out of its pool with a lock and a probe of the
socket (in asyncio, a zero timeout around a read): about 15 us of a 120 us
one-at-a-time enqueue, 6 of 90 blocking. The lane keeps one connection checked
out and uses it while no other call holds it; a call that finds it busy, a
forked process, and every pipeline go through the pool as before.

A call is sent again (the pool's way) only when it cannot have reached Redis: the
lane connection was found closed before sending, or connecting or sending failed.
Once sent, a lost connection is raised as the pool's path raises it, since the
script may have run.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import redis

from .outages import explain_outage


class Lane:
    """The set-aside connection of one client (checked out of its pool on first use)."""

    __slots__ = ("idle", "opened", "pid")

    def __init__(self) -> None:
        self.idle: list[Any] = []
        self.pid = os.getpid()
        self.opened = False

    def take(self) -> Any:
        """The idle lane connection, None when busy (or in a fork); OPEN to check one out."""
        if self.pid != os.getpid():
            return None
        try:
            return self.idle.pop()  # atomic: two threads never take the same connection
        except IndexError:
            if self.opened:
                return None
            self.opened = True
            return OPEN

    def give_back(self, conn: Any) -> None:
        if conn is OPEN:
            self.opened = False
        else:
            self.idle.append(conn)


OPEN = object()
"""Lane.take's answer when the lane has no connection yet: check one out of the pool."""


def _checkout_args(pool: Any) -> tuple[str, ...]:
    """redis-py before 5.3 wants a command name; later ones warn when given one."""
    param = inspect.signature(pool.get_connection).parameters.get("command_name")
    return ("EVALSHA",) if param is not None and param.default is param.empty else ()


def _command(script: Any, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
    head = getattr(script, "head", ())  # scripts.CappedScript's arguments that lead
    return ("EVALSHA", script.sha, len(keys), *keys, *head, *args)


def _stale(conn: Any) -> bool:
    """True when a connected lane connection was closed by Redis (or holds unread data)."""
    if getattr(conn, "_sock", None) is None:
        return False  # not connected: sending connects it
    try:
        return bool(conn.can_read(timeout=0))
    except (redis.ConnectionError, OSError):
        return True


def _astale(conn: Any) -> bool:
    """_stale for an asyncio connection, from its stream's state: no system call."""
    reader = getattr(conn, "_reader", None)
    return reader is not None and (reader.at_eof() or reader.exception() is not None)


def _marked(conn: Any) -> bool:
    """redis-py 8 marks a connection to reconnect (a server maintenance notice)."""
    should = getattr(conn, "should_reconnect", None)
    return bool(should and should())


def _explained(client: Any, exc: BaseException) -> BaseException:
    better = explain_outage(exc, client.ceylon_url, client.ceylon_timeout)
    return exc if better is None else better


def run_script(client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """``script(keys=keys, args=args)`` on ``client``, over its lane when that is free.

    A reply error is raised as the pool's path would; on NOSCRIPT, or when the call
    cannot have reached Redis, the call goes the pool's way (which loads the script
    or reconnects). A timeout or a connection lost after sending is raised.
    """
    lane: Lane | None = getattr(client, "ceylon_lane", None)
    conn = lane.take() if lane is not None else None
    if conn is None:
        return script(keys=keys, args=args)
    assert lane is not None
    sent = broken = False
    try:
        if conn is OPEN:
            conn = client.connection_pool.get_connection(*_checkout_args(client.connection_pool))
        if _stale(conn):
            conn.disconnect()
        conn.send_packed_command(conn.pack_command(*_command(script, keys, args)))
        sent = True
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        return script(keys=keys, args=args)
    except redis.ResponseError:
        raise
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        broken = True
        if sent or isinstance(exc, redis.TimeoutError):
            raise _explained(client, exc) from exc
        return script(keys=keys, args=args)
    except BaseException:
        broken = True
        raise
    finally:
        if conn is not OPEN and (broken or _marked(conn)):
            conn.disconnect()
        lane.give_back(conn)


async def arun_script(client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """run_script for an asyncio client."""
    lane: Lane | None = getattr(client, "ceylon_lane", None)
    conn = lane.take() if lane is not None else None
    if conn is None:
        return await script(keys=keys, args=args)
    assert lane is not None
    sent = broken = False
    try:
        if conn is OPEN:
            conn = await client.connection_pool.get_connection(
                *_checkout_args(client.connection_pool))
        if _astale(conn):
            await conn.disconnect()
        await conn.send_packed_command(conn.pack_command(*_command(script, keys, args)))
        sent = True
        return await conn.read_response()
    except redis.exceptions.NoScriptError:
        return await script(keys=keys, args=args)
    except redis.ResponseError:
        raise
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        broken = True
        if sent or isinstance(exc, redis.TimeoutError):
            raise _explained(client, exc) from exc
        return await script(keys=keys, args=args)
    except BaseException:
        broken = True
        raise
    finally:
        if conn is not OPEN and (broken or _marked(conn)):
            await conn.disconnect(nowait=True)
        lane.give_back(conn)
