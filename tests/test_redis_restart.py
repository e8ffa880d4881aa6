"""Scripts reload after SCRIPT FLUSH and after a Redis restart, on a server this test starts."""

from __future__ import annotations

import pytest
import redis

from ceylon_redis import Client

from .redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_scripts_reload_after_script_flush(own_redis: RedisServer) -> None:
    with Client(own_redis.url, "reload") as client:
        first = client.enqueue("r", 1)
        redis.Redis(port=own_redis.port).script_flush()
        second = client.enqueue("r", 2)                      # EVALSHA -> NOSCRIPT -> reload
        client.enqueue_many("r", [3, 4])                     # and inside a pipeline
        assert client.get(first).data == 1 and client.get(second).data == 2
        assert len(client.redis.xrange(client.keys.stream("r"))) == 4


def test_client_carries_on_after_a_redis_restart(own_redis: RedisServer) -> None:
    with Client(own_redis.url, "restart") as client:
        before = client.enqueue("r", "before")
        own_redis.stop()
        with pytest.raises(redis.ConnectionError):
            client.enqueue("r", "while down")
        own_redis.start()                                    # scripts are gone from the new process
        after = client.enqueue("r", "after")
        assert client.get(before).data == "before"           # kept by the append-only file
        assert client.get(after).data == "after"
