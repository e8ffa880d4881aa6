"""A producer's fast lane (one connection set aside for single script calls), on servers
these tests start: it serves one-at-a-time calls, and a killed connection, a stalled
Redis, threads, tasks of one event loop and a fork all behave as through the pool."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import warnings
from typing import Any

import pytest
import redis

from ceylon_redis import AsyncClient, Client, Settings
from ceylon_redis.errors import RedisConnectionError, RedisTimeoutError

from .redis_server import RedisServer

pytestmark = pytest.mark.redis


def _lane_address(client: Any) -> str:
    """ip:port of the client's lane connection, as CLIENT LIST names it."""
    (conn,) = client.redis.ceylon_lane.idle
    host, port = conn._sock.getsockname() if hasattr(conn, "_sock") \
        else conn._writer.get_extra_info("sockname")
    return f"{host}:{port}"


def _last_command(probe: redis.Redis, address: str) -> str:
    (entry,) = [c for c in probe.client_list() if c["addr"] == address]
    return str(entry["cmd"])


def test_one_at_a_time_calls_use_the_lane_and_pipelines_the_pool(own_redis: RedisServer) -> None:
    probe = redis.Redis(port=own_redis.port)
    with Client(own_redis.url, "lane") as client:
        for i in range(5):
            client.enqueue("r", i)
        address = _lane_address(client)
        assert _last_command(probe, address) == "evalsha"
        client.enqueue_many("r", [1, 2])                     # pipelined: a pooled connection
        client.enqueue("r", 3)
        assert _lane_address(client) == address
        assert client.redis.xlen(client.keys.stream("r")) == 8


def test_a_killed_lane_connection_is_reopened_and_the_call_made_once(
        own_redis: RedisServer) -> None:
    probe = redis.Redis(port=own_redis.port)
    with Client(own_redis.url, "killed") as client:
        client.enqueue("r", "first")
        assert probe.client_kill(_lane_address(client))
        second = client.enqueue("r", "second")               # broken lane: the pool's way
        third = client.enqueue("r", "third")                 # the lane again, reconnected
        assert client.get(second).data == "second" and client.get(third).data == "third"
        assert client.redis.xlen(client.keys.stream("r")) == 3


def test_a_killed_async_lane_connection_is_reopened(own_redis: RedisServer) -> None:
    probe = redis.Redis(port=own_redis.port)

    async def main() -> None:
        async with AsyncClient(own_redis.url, "akilled") as client:
            await client.enqueue("r", "first")
            assert probe.client_kill(_lane_address(client))
            await asyncio.sleep(0.05)  # the event loop sees the close, as after a restart
            second = await client.enqueue("r", "second")
            third = await client.enqueue("r", "third")
            assert (await client.get(second)).data == "second"
            assert (await client.get(third)).data == "third"
            assert await client.redis.xlen(client.keys.stream("r")) == 3

    asyncio.run(main())


class _ReplyDroppingProxy:
    """A TCP proxy to Redis that, when told, passes one command on and then closes the
    client's connection instead of passing the reply back."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.drop_next_reply = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.redis_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while data := src.recv(65536):
                if replies and self.drop_next_reply:
                    self.drop_next_reply = False
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump's recv too
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_lost_after_the_script_ran_is_raised_not_sent_again(
        own_redis: RedisServer) -> None:
    proxy = _ReplyDroppingProxy(own_redis.port)
    try:
        with Client(f"redis://127.0.0.1:{proxy.port}/0", "lost") as client:
            client.enqueue("r", "first")
            proxy.drop_next_reply = True
            with pytest.raises(RedisConnectionError):
                client.enqueue("r", "reply lost")   # it ran: sent again, it would say EXISTS
            after = client.enqueue("r", "after")
            assert client.get(after).data == "after"
            stream = redis.Redis(port=own_redis.port).xrange("{lost}:stream:r")
            assert len(stream) == 3                  # the lost reply's task was written, once
    finally:
        proxy.close()


def test_a_stalled_redis_times_the_lane_out_with_the_clients_error(
        own_redis: RedisServer) -> None:
    probe = redis.Redis(port=own_redis.port)
    with Client(own_redis.url, "stall", settings=Settings(socket_timeout=0.3)) as client:
        client.enqueue("r", "before")
        probe.client_pause(1500)
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"did not answer within 0\.3 s"):
            client.enqueue("r", "paused")
        assert time.monotonic() - started < 1.0              # raised, not tried again
        time.sleep(1.5)
        after = client.enqueue("r", "after")
        assert client.get(after).data == "after"


def test_threads_share_a_client_without_crossing_replies(own_redis: RedisServer) -> None:
    with Client(own_redis.url, "threads") as client:
        ids: list[list[str]] = [[] for _ in range(8)]

        def produce(n: int) -> None:
            ids[n] = [client.enqueue("r", f"{n}-{i}") for i in range(200)]

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(len(batch) == 200 for batch in ids)
        for n, batch in enumerate(ids):
            sample = [client.get(t).data for t in batch[::50]]
            assert sample == [f"{n}-{i}" for i in (0, 50, 100, 150)]
        assert client.redis.xlen(client.keys.stream("r")) == 1600


def test_concurrent_enqueues_of_one_event_loop_all_land(own_redis: RedisServer) -> None:
    async def main() -> None:
        async with AsyncClient(own_redis.url, "gather") as client:
            ids = await asyncio.gather(*(client.enqueue("r", i) for i in range(500)))
            assert len(set(ids)) == 500
            got = await asyncio.gather(*(client.get(t) for t in ids[::25]))
            assert [g.data for g in got] == list(range(0, 500, 25))
            assert await client.redis.xlen(client.keys.stream("r")) == 500

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_use_its_parents_lane(own_redis: RedisServer) -> None:
    with Client(own_redis.url, "fork") as client:
        client.enqueue("r", "parent before")
        address = _lane_address(client)
        with warnings.catch_warnings():  # Python 3.12+ warns of fork in a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its own connection, not the parent's socket
            code = 1
            try:
                code = 0 if client.get(client.enqueue("r", "child")).data == "child" else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        after = client.enqueue("r", "parent after")
        assert client.get(after).data == "parent after"
        assert _lane_address(client) == address
        assert client.redis.xlen(client.keys.stream("r")) == 3
