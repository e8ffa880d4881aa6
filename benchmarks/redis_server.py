"""A redis-server of the benchmark's own, on a free loopback port, that keeps nothing on disk."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def own_redis(binary: str = "redis-server", extra: tuple[str, ...] = ()) -> Iterator[str]:
    """Start a redis-server only this run uses (so it may be flushed); yield its URL.
    ``extra``: more redis-server arguments (``--replicaof HOST PORT`` makes a replica)."""
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} not found: install Redis (e.g. apt install redis-server) "
                           "or pass --redis-server PATH")
    port = free_port()
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
