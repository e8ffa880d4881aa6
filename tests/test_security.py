"""Security: an ACL user, TLS, and namespaces kept apart, each on a redis-server the test starts.

Every test starts its own throwaway redis-server on a free loopback port
(``tests/redis_server.py``); none touches the shared test Redis. Worker and
coordinator daemons are real ``ceylon-redis`` subprocesses, as in
``test_integration.py``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from ceylon_redis import AsyncClient, Client, TaskStatus, UnknownTaskError
from tests.cli_support import assert_one_error_line, cli
from tests.conftest import ROOT, Daemon
from tests.handlers_for_tests import runs_key

from .redis_server import RedisServer, require_redis_server

pytestmark = pytest.mark.redis

H = "tests.handlers_for_tests:"
PASSWORD = "s3cret-Zq8wK"
"""The ACL user's password: it must never show up in a log line, CLI output or Redis value."""
ADMIN_PASSWORD = "admin-Pw-71c"
"""A second user the test itself uses to look behind ceylon-redis's back (ACL LOG, keys)."""

# The rules the ``ceylon`` user gets, besides its password and its namespace's keys and
# channels (``~{P}:*`` and ``&{P}:*``: every key and the reply channels share the prefix).
# Found by dropping one rule at a time: each removal (but ping's) fails the round trip or
# leaves NOPERM entries in ACL LOG; without @pubsub, Client.wait raises NoPermissionError.
#   @read @write  the data commands, also those run inside the Lua scripts
#                 (HSET, XADD, XREADGROUP, XAUTOCLAIM, XINFO GROUPS, EXISTS, SMEMBERS ...)
#   @scripting    EVALSHA, and SCRIPT LOAD/EXISTS when a script is not cached yet
#   @pubsub       SUBSCRIBE (client.wait's reply channel), PUBLISH (inside finish.lua)
#   ping          health checks of connections idle for 30 s (health_check_interval):
#                 too rare for this short test to show, kept for long-lived daemons
#   time          TIME is only in @fast: queues(), workers(), stats() and the daemons ask it
#   -@dangerous   none needed (no flush, KEYS, INFO, CLIENT KILL, CONFIG ...)
CEYLON_RULES = ("-@all", "+@read", "+@write", "+@scripting", "+@pubsub", "+ping", "+time",
                "-@dangerous")


# ---------------------------------------------------------------- servers and daemons


class SecureServer(RedisServer):
    """A RedisServer whose readiness ping logs in as a user and/or speaks TLS.

    ``RedisServer.start`` pings the plain port as the default user; with
    ``--user default off`` or ``--port 0`` that cannot answer. The server's own
    output goes to ``redis-server.log`` in its directory, for error messages.
    """

    def __init__(self, workdir: Path, *extra: str, username: str | None = None,
                 password: str | None = None, tls: dict[str, Path] | None = None) -> None:
        super().__init__(workdir, *extra)
        self.username = username
        self.password = password
        self.tls = tls
        self.log_path = workdir / "redis-server.log"

    def url_for(self, username: str | None = None, password: str | None = None) -> str:
        creds = f"{quote(username or '')}:{quote(password)}@" if password else ""
        if self.tls is None:
            return f"redis://{creds}127.0.0.1:{self.port}/0"
        query = (f"ssl_ca_certs={quote(str(self.tls['ca']), safe='/')}"
                 "&ssl_cert_reqs=required")
        return f"rediss://{creds}127.0.0.1:{self.port}/0?{query}"

    def admin(self) -> redis.Redis:
        """A client with every right: the test's view of the server."""
        kwargs: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.tls is not None:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls["ca"]), ssl_cert_reqs="required")
        return redis.Redis(port=self.port, socket_timeout=5, **kwargs)

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            ports = ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(self.tls["cert"]),
                     "--tls-key-file", str(self.tls["key"]),
                     "--tls-ca-cert-file", str(self.tls["ca"]), "--tls-auth-clients", "no"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", *ports, "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), *self.extra],
                stdout=log, stderr=subprocess.STDOUT)
        client = self.admin()
        try:
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not start:\n{self.server_log()[-2000:]}")


def start_daemons(daemons: list[Daemon], url: str, prefix: str,
                  *commands: list[str]) -> list[Daemon]:
    """Start ``ceylon-redis COMMAND...`` daemons at once, then wait until each one reads."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CEYLON_REDIS_") and k != "REDIS_URL"}
    env.update({"CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": prefix,
                "CEYLON_REDIS_LOG_LEVEL": "DEBUG", "PYTHONPATH": str(ROOT)})
    started = [Daemon(args, env) for args in commands]
    daemons.extend(started)
    for d in started:
        d.wait_for("started:")
    return started


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread; the exception it raised, or None; fail if it is still
    running after ``seconds`` (a hang, instead of hanging the test run)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s: it hangs"
    return outcome[0]


def round_trip(url: str, prefix: str, daemons: list[Daemon]) -> tuple[Daemon, Daemon]:
    """A worker daemon and a coordinator daemon on ``url``; a Client enqueues, waits and
    reads the statistics; the CLI lists queues and workers. Returns the two daemons."""
    worker, coordinator = start_daemons(
        daemons, url, prefix, ["worker", H + "record", "--role", "sec"], ["coordinator"])
    with Client(url, prefix) as client:
        tid = client.enqueue("sec", {"x": 1}, name="secured")
        result = client.wait(tid, timeout=15)

        assert result.success, result.error
        assert result.output["data"] == {"x": 1} and result.output["task"] == tid
        assert client.get(tid).status is TaskStatus.COMPLETED
        wait_until(lambda: client.stats().overall.completed == 1, what="the coordinator to count")
        st = client.stats()
        assert (st.overall.completed, st.overall.failed, st.coordinators_alive) == (1, 0, 1)
        assert [(r.role, r.completed) for r in st.roles] == [("sec", 1)]
        (w,) = client.workers()
        assert w.alive and w.roles == ["sec"]
    return worker, coordinator


def assert_cli_works_and_hides(url: str, prefix: str, secret: str) -> None:
    """``queues`` and ``workers`` (text and JSON) answer, and never print ``secret``."""
    env = {"CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": prefix}
    for args in (["queues"], ["queues", "--json"], ["workers"], ["workers", "--json"],
                 ["stats"]):
        proc = cli(env, *args)
        assert proc.returncode == 0, (args, proc.stderr[-600:])
        assert "sec" in proc.stdout, (args, proc.stdout)
        assert secret not in proc.stdout + proc.stderr, args


def values_in(r: redis.Redis, prefix: str) -> list[bytes]:
    """Every key name and value of a namespace, as bytes, for grepping."""
    out: list[bytes] = []
    for key in r.scan_iter(match="{" + prefix + "}:*"):
        out.append(key)
        kind = r.type(key).decode()
        if kind == "hash":
            out += [x for kv in r.hgetall(key).items() for x in kv]
        elif kind == "stream":
            out += [x for _, fields in r.xrange(key) for kv in fields.items() for x in kv]
        elif kind == "set":
            out += list(r.smembers(key))
        elif kind == "zset":
            out += list(r.zrange(key, 0, -1))
        elif kind == "string":
            out.append(r.get(key) or b"")
        elif kind == "list":
            out += list(r.lrange(key, 0, -1))
    return out


# ---------------------------------------------------------------- 1. ACL


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[tuple[SecureServer, str]]:
    """A redis-server with no default user, an admin, and ``ceylon`` confined to one prefix."""
    require_redis_server()
    prefix = f"acl-{uuid.uuid4().hex[:8]}"
    server = SecureServer(
        tmp_path,
        "--user", "default", "off",
        "--user", "admin", "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all",
        "--user", "ceylon", "on", f">{PASSWORD}", "~{" + prefix + "}:*",
        "&{" + prefix + "}:*", *CEYLON_RULES,
        username="admin", password=ADMIN_PASSWORD)
    server.start()
    yield server, prefix
    server.stop()


def test_acl_user_round_trip_and_the_password_stays_hidden(
        acl_server: tuple[SecureServer, str], own_daemons: list[Daemon]) -> None:
    server, prefix = acl_server
    url = server.url_for("ceylon", PASSWORD)
    admin = server.admin()
    try:
        admin.acl_log_reset()

        worker, coordinator = round_trip(url, prefix, own_daemons)
        assert_cli_works_and_hides(url, prefix, PASSWORD)
        assert worker.stop() == 0 and coordinator.stop() == 0

        denied = admin.acl_log()
        assert denied == [], f"ceylon-redis ran commands its ACL user may not run: {denied}"
        for d in (worker, coordinator):
            out = d.output()
            assert "started:" in out and "stopped:" in out, out
            assert PASSWORD not in out, out
            assert "redis://ceylon:***@127.0.0.1" in out, out
        assert all(PASSWORD.encode() not in v for v in values_in(admin, prefix))
    finally:
        admin.close()


def test_wrong_password_is_a_clear_error_and_nothing_hangs(
        acl_server: tuple[SecureServer, str], tmp_path: Path) -> None:
    server, prefix = acl_server
    wrong = "not-" + PASSWORD
    url = server.url_for("ceylon", wrong)

    with Client(url, prefix) as client:
        for call in (lambda: client.enqueue("sec", 1), lambda: client.wait("abc", timeout=2),
                     client.queues, client.stats, client.workers):
            exc = within(10, call)
            assert isinstance(exc, redis.AuthenticationError), repr(exc)
            assert "WRONGPASS" in str(exc) or "invalid username-password" in str(exc), exc
            assert wrong not in str(exc)

    env = {"CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": prefix}
    for args in (["worker", H + "echo", "--role", "sec"], ["coordinator"], ["queues"],
                 ["workers"], ["enqueue", "sec", "{}"]):
        started = time.monotonic()
        proc = cli(env, *args, timeout=20)
        assert time.monotonic() - started < 15, args
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        line = assert_one_error_line(proc.stderr)
        assert "invalid username-password pair" in line, line
        assert wrong not in proc.stdout + proc.stderr and PASSWORD not in proc.stderr

    admin = server.admin()
    try:
        assert list(admin.scan_iter(match="{" + prefix + "}:*")) == []
    finally:
        admin.close()


def test_acl_user_cannot_reach_another_namespace(
        acl_server: tuple[SecureServer, str]) -> None:
    server, _ = acl_server
    url = server.url_for("ceylon", PASSWORD)

    with Client(url, "someone-else") as client:
        exc = within(10, lambda: client.enqueue("sec", 1))
        assert isinstance(exc, redis.exceptions.NoPermissionError), repr(exc)
        assert "no permissions to access one of the keys" in str(exc)

    env = {"CEYLON_REDIS_URL": url, "CEYLON_REDIS_PREFIX": "someone-else"}
    for args in (["worker", H + "echo", "--role", "sec"], ["coordinator"], ["queues"]):
        proc = cli(env, *args, timeout=20)
        assert proc.returncode == 1, (args, proc.stderr)
        line = assert_one_error_line(proc.stderr)
        assert "no permissions to access one of the keys" in line, line
        assert PASSWORD not in proc.stdout + proc.stderr


async def test_async_wait_without_channel_permission_raises(
        acl_server: tuple[SecureServer, str]) -> None:
    server, _ = acl_server
    async with AsyncClient(server.url_for("ceylon", PASSWORD), "someone-else") as client:
        with pytest.raises(redis.exceptions.NoPermissionError, match="channels"):
            await asyncio.wait_for(client.wait("abc", timeout=2), 10)


def test_sync_wait_without_channel_permission_raises_instead_of_hanging(
        acl_server: tuple[SecureServer, str]) -> None:
    server, _ = acl_server
    with Client(server.url_for("ceylon", PASSWORD), "someone-else") as client:
        exc = within(3, lambda: client.wait("abc", timeout=1))
    assert isinstance(exc, redis.exceptions.NoPermissionError), repr(exc)


# ---------------------------------------------------------------- 2. TLS


def make_certs(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl not installed")
        pytest.skip("openssl not installed: cannot make certificates for the TLS test")
    directory.mkdir()
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (
            ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=ceylon-redis test CA"],
            ["req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.cnf"]):
        proc = subprocess.run(["openssl", *cmd], cwd=directory, capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, f"openssl {' '.join(cmd)}:\n{proc.stderr}"
    return {"ca": directory / "ca.crt", "cert": directory / "server.crt",
            "key": directory / "server.key"}


NO_TLS_SIGNS = ("bad directive", "build_tls", "not built", "not supported", "no tls",
                "tls module", "connection type tls")
"""Words in redis-server's output that say it cannot do TLS (``tls-port`` is an unknown
directive in 6.x/7.0 built without BUILD_TLS=yes; 7.2+ needs the TLS connection type)."""


def skip_without_tls(output: str) -> None:
    """Skip (fail under CI=true) when redis-server's output says it has no TLS."""
    if any(sign in output.lower() for sign in NO_TLS_SIGNS):
        msg = f"this redis-server cannot do TLS (build it with BUILD_TLS=yes): {output[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[SecureServer]:
    require_redis_server()
    probe = subprocess.run(["redis-server", "--port", "0", "--tls-port", "0", "--save", "",
                            "--dir", str(tmp_path)], capture_output=True, text=True, timeout=10)
    skip_without_tls(probe.stdout + probe.stderr)
    server = SecureServer(tmp_path, tls=make_certs(tmp_path / "certs"))
    try:
        server.start()
    except RuntimeError:
        skip_without_tls(server.server_log())
        raise
    yield server
    server.stop()


def test_tls_round_trip(tls_server: SecureServer, own_daemons: list[Daemon]) -> None:
    prefix = f"tls-{uuid.uuid4().hex[:8]}"
    url = tls_server.url_for()
    assert url.startswith("rediss://")

    worker, coordinator = round_trip(url, prefix, own_daemons)
    assert_cli_works_and_hides(url, prefix, PASSWORD)
    assert worker.stop() == 0 and coordinator.stop() == 0
    for d in (worker, coordinator):
        assert "redis=rediss://127.0.0.1" in d.output(), d.output()


def test_tls_port_refuses_plain_text_and_unknown_certificates(tls_server: SecureServer) -> None:
    plain = f"redis://127.0.0.1:{tls_server.port}/0"
    no_ca = f"rediss://127.0.0.1:{tls_server.port}/0?ssl_cert_reqs=required"
    for url, words in ((plain, ("Connection", "closed", "reset", "Timeout", "timed out")),
                       (no_ca, ("certificate verify failed",))):
        with Client(url, "tls-refused") as client:
            exc = within(15, lambda c=client: c.enqueue("sec", 1))  # type: ignore[misc]
        assert isinstance(exc, redis.ConnectionError), repr(exc)
        assert any(w in str(exc) for w in words), (url, str(exc))


# ---------------------------------------------------------------- 3. namespaces


def test_two_prefixes_in_one_redis_never_see_each_others_tasks(
        own_redis: RedisServer, own_daemons: list[Daemon]) -> None:
    a, b = f"ns-a-{uuid.uuid4().hex[:6]}", f"ns-b-{uuid.uuid4().hex[:6]}"
    (wa,) = start_daemons(own_daemons, own_redis.url, a,
                          ["worker", H + "record", "--role", "same", "-c", "20"])
    r = redis.Redis(port=own_redis.port)
    with Client(own_redis.url, a) as ca, Client(own_redis.url, b) as cb:
        ids_b = cb.enqueue_many("same", [{"ns": "b", "i": i} for i in range(20)])
        ids_a = ca.enqueue_many("same", [{"ns": "a", "i": i} for i in range(20)])

        results_a = ca.wait_many(ids_a, timeout=15)
        time.sleep(0.5)  # a worker that could see B's stream would have taken some by now

        assert all(x.success and x.output["data"]["ns"] == "a" for x in results_a)
        assert all(cb.get(t).status is TaskStatus.QUEUED for t in ids_b)
        assert not any(r.exists(runs_key(p, t)) for p in (a, b) for t in ids_b)
        with pytest.raises(UnknownTaskError):
            ca.get(ids_b[0])  # A cannot even name B's task
        assert [q.ready for q in cb.queues()] == [20] and cb.workers() == []
        assert [q.ready for q in ca.queues()] == [0] and len(ca.workers()) == 1

        (wb,) = start_daemons(own_daemons, own_redis.url, b,
                              ["worker", H + "record", "--role", "same", "-c", "20"])
        results_b = cb.wait_many(ids_b, timeout=15)

        assert all(x.success and x.output["data"]["ns"] == "b" for x in results_b)
        assert {x.output["worker"] for x in results_a}.isdisjoint(
            {x.output["worker"] for x in results_b})
        assert [int(r.get(runs_key(b, t)) or 0) for t in ids_b] == [1] * 20
        assert [int(r.get(runs_key(a, t)) or 0) for t in ids_a] == [1] * 20
        assert not any(r.exists(runs_key(b, t)) for t in ids_a)
    keys = [k.decode() for k in r.scan_iter()]
    r.close()
    assert keys and all(k.startswith(("{" + a + "}:", "{" + b + "}:")) for k in keys), keys
    assert wa.stop() == 0 and wb.stop() == 0
