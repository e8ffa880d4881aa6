"""A redis-server of the benchmark's own, on a free loopback port, that keeps nothing on disk."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from redis.crc import key_slot

from ceylon_redis.partitions import Partitions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too."""
    for _ in range(100):
        port = random.randint(20000, 40000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


@contextlib.contextmanager
def own_cluster(masters: int) -> Iterator[list[int]]:
    """A Redis Cluster of ``masters`` masters, no replicas, only this run uses; yields
    the nodes' ports (``redis+cluster://127.0.0.1:<port>,...`` reaches it)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(masters):
            port = free_cluster_port()
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-node-"))
            stack.enter_context(own_redis(extra=(
                "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                "--cluster-config-file", f"{workdir}/nodes.conf"), port=port))
            ports.append(port)
        # By hand, not redis-cli --cluster create, which wants 3 masters at least.
        step = 16384 // masters
        for i, port in enumerate(ports):
            node = redis.Redis(port=port)
            last = 16383 if i == masters - 1 else (i + 1) * step - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, last)
            if i:
                node.execute_command("CLUSTER", "MEET", "127.0.0.1", ports[0])
            node.close()
        deadline = time.monotonic() + 30
        while not all(redis.Redis(port=p).cluster("info")["cluster_state"] == "ok"
                      for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark's cluster did not come up")
            time.sleep(0.1)
        yield ports


def shard_of_key(ports: list[int]) -> Callable[[str], int]:
    """Which master (its index in ``ports``) serves a key, from one read of CLUSTER SLOTS."""
    with redis.Redis(port=ports[0]) as r:
        table = r.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]

    def shard(key: str) -> int:
        slot = key_slot(key.encode())
        return next(ports.index(int(m[1])) for a, b, m, *_ in table if a <= slot <= b)

    return shard


def spread_prefix(ports: list[int], partitions: int, run: int = 0) -> str:
    """A prefix whose partitions sit on as many different shards as there can be; the
    ``run``-th such, so that every run can have a fresh namespace."""
    shard = shard_of_key(ports)
    want, found = min(len(ports), partitions), -1
    for i in range(10_000):
        name = f"spread{i}"
        if len({shard(k.base) for k in Partitions(name, partitions).all}) == want:
            found += 1
            if found == run:
                return name
    raise RuntimeError("no prefix spreads its partitions over every shard")


@contextlib.contextmanager
def own_redis(binary: str = "redis-server", extra: tuple[str, ...] = (),
              port: int | None = None) -> Iterator[str]:
    """Start a redis-server only this run uses (so it may be flushed); yield its URL.
    ``extra``: more redis-server arguments (``--replicaof HOST PORT`` makes a replica)."""
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} not found: install Redis (e.g. apt install redis-server) "
                           "or pass --redis-server PATH")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    proc = subprocess.Popen(
        [path, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--logfile", str(workdir / "redis.log"), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"redis-server did not start on port {port}:\n{log}") from None
                time.sleep(0.05)
        yield url
    finally:
        r.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
