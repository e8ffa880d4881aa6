"""Scripts reload after SCRIPT FLUSH and after a Redis restart, on a server this test starts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ceylon_redis import Client

pytestmark = pytest.mark.redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


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
