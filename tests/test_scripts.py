"""The Lua scripts, called directly on fakeredis: one state transition each."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

import ceylon_redis.scripts as scripts_pkg
from ceylon_redis.codec import decode, encode
from ceylon_redis.keys import GROUP, Keys
from ceylon_redis.protocol import Dep, enqueue_args, make_spec, parse_notification
from ceylon_redis.scripts import NAMES, Scripts, source
from ceylon_redis.settings import Settings
from tests.conftest import delete_namespace


@dataclass
class Env:
    """The scripts of one namespace on one fake Redis, plus small helpers around them."""

    r: fakeredis.FakeRedis
    s: Scripts
    k: Keys
    settings: Settings

    def enqueue(self, *tasks: dict[str, Any]) -> list[Any]:
        specs = [make_spec(self.settings, t.get("role", "role"), t.get("data"),
                           task_id=t["id"], name=t.get("name"),
                           depends_on=t.get("depends_on", ()),
                           max_attempts=t.get("max_attempts"),
                           result_ttl=t.get("ttl")) for t in tasks]
        return self.run("enqueue", enqueue_args(specs))

    def run(self, script: str, args: list[Any]) -> Any:
        return getattr(self.s, script)(keys=[self.k.base], args=args)

    def group(self, role: str = "role") -> None:
        try:
            self.r.xgroup_create(self.k.stream(role), GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            assert "BUSYGROUP" in str(exc)

    def read(self, consumer: str, role: str = "role", count: int = 100) -> list[tuple[str, str]]:
        """Entries newly delivered to ``consumer``: (entry id, task id or '')."""
        self.group(role)
        reply = self.r.xreadgroup(GROUP, consumer, {self.k.stream(role): ">"}, count=count)
        entries = reply[0][1] if reply else []
        return [(e.decode(), f.get(b"id", b"").decode()) for e, f in entries]

    def start(self, consumer: str, pairs: list[tuple[str, str]], role: str = "role") -> list[Any]:
        args: list[Any] = [role, consumer]
        for entry, tid in pairs:
            args += [entry, tid]
        return self.run("start", args)

    def take(self, consumer: str, role: str = "role") -> dict[str, tuple[str, int]]:
        """Read and start everything ready: task id -> (entry, attempt)."""
        pairs = self.read(consumer, role)
        items = self.start(consumer, pairs, role)
        return {it[0].decode(): (entry, int(it[1])) for (entry, _), it in zip(pairs, items)}

    defaults: tuple[Any, ...] = (1, 0, 600_000, 0.5, 604_800)
    """The finish script's worker defaults: attempts, backoff ms, its cap, jitter, DLQ TTL."""
    dead: list[str] | None = None

    def finish(self, consumer: str, *results: tuple[Any, ...], role: str = "role") -> list[str]:
        """results: (task id, entry, attempt, status, output, error, retry), where retry is
        the script's code ('n', 'x', 'b', ms) or True (backoff) / False (not retryable).
        Returns the refused ids; ``self.dead`` gets the dead-lettered ones, ``self.retried``
        (task id, failures, allowed, delay ms) for each retry scheduled."""
        args: list[Any] = [role, consumer, 42, *self.defaults]
        for res in results:
            tid, entry, attempt, status, output, error, retry = res
            code = retry if isinstance(retry, str) else "b" if retry else "x"
            args += [tid, entry, attempt, status, output, error, code]
        refused, dead, retried = self.run("finish", args)
        self.dead = [t.decode() for t in dead[::2]]
        self.retried = [(retried[i].decode(), *retried[i + 1:i + 4])
                        for i in range(0, len(retried), 4)]
        return [t.decode() for t in refused]

    def h(self, tid: str) -> dict[str, str]:
        """The task hash with text fields decoded (data/output left as bytes)."""
        raw = self.r.hgetall(self.k.task(tid))
        return {k.decode(): (v if k in (b"data", b"output") else v.decode())
                for k, v in raw.items()}

    def entries(self, role: str = "role") -> list[tuple[str, dict[bytes, bytes]]]:
        return [(e.decode(), f) for e, f in self.r.xrange(self.k.stream(role))]

    def pending(self, consumer: str, role: str = "role") -> list[str]:
        rows = self.r.xpending_range(self.k.stream(role), GROUP, "-", "+", 1000,
                                     consumername=consumer)
        return [row["message_id"].decode() for row in rows]

    def fenced(self) -> int:
        return int(self.r.hget(self.k.base + "counters", "fenced") or 0)

    def now_ms(self) -> int:
        sec, usec = self.r.time()
        return sec * 1000 + usec // 1000


def snapshot(r: fakeredis.FakeRedis) -> dict[bytes, Any]:
    """Every key with its type and content, to prove a refused call wrote nothing."""
    out: dict[bytes, Any] = {}
    for key in r.keys("*"):
        kind = r.type(key)
        if kind == b"hash":
            out[key] = ("hash", r.hgetall(key))
        elif kind == b"set":
            out[key] = ("set", r.smembers(key))
        elif kind == b"stream":
            out[key] = ("stream", r.xrange(key), r.xinfo_groups(key) if r.exists(key) else None)
        elif kind == b"zset":
            out[key] = ("zset", r.zrange(key, 0, -1, withscores=True))
        else:
            out[key] = (kind, r.dump(key))
    return out


@pytest.fixture
def env(fake_sync: fakeredis.FakeRedis, prefix: str) -> Env:
    return Env(fake_sync, Scripts.register(fake_sync), Keys(prefix), Settings(prefix=prefix))


def test_includes_are_spliced_in() -> None:
    for name in NAMES:
        text = source(name)
        assert "--!include" not in text
        raw = (Path(scripts_pkg.__file__).parent / f"{name}.lua").read_text()
        if "--!include common.lua" in raw:
            assert "local function task_key" in text


# --- enqueue -------------------------------------------------------------------------------


def test_enqueue_writes_a_plain_text_hash_and_a_stream_entry(env: Env) -> None:
    reply = env.enqueue({"id": "t1", "role": "resize", "name": "first one", "data": {"x": 1},
                         "max_attempts": 3, "ttl": 600})
    assert reply == [b"OK", 1, 0]
    h = env.h("t1")
    assert h["status"] == "QUEUED"
    assert h["role"] == "resize"
    assert h["name"] == "first one"
    assert "attempt" not in h  # absent is 0: start's HINCRBY makes it 1
    assert h["max_attempts"] == "3"
    assert h["ttl"] == "600"
    assert decode(h["data"]) == {"x": 1}
    # a task enqueued ready keeps its enqueue time only in its entry id (<ms>-<seq>)
    assert "enqueued_at" not in h and "queued_at" not in h
    assert int(h["entry"].split("-")[0]) / 1000 == pytest.approx(env.now_ms() / 1000, abs=5)
    assert "reply_to" not in h and "depends_on" not in h and "worker" not in h
    entries = env.entries("resize")
    assert len(entries) == 1
    entry, fields = entries[0]
    assert fields == {b"id": b"t1"}
    assert h["entry"] == entry
    assert env.r.smembers(env.k.roles) == {b"resize"}
    assert all(key.startswith(env.k.base.encode()) for key in env.r.keys("*"))


def test_enqueue_many_in_one_call(env: Env) -> None:
    reply = env.enqueue(*({"id": f"t{i}", "data": i} for i in range(5)))
    assert reply == [b"OK", 5, 0]
    assert [f[b"id"] for _, f in env.entries()] == [f"t{i}".encode() for i in range(5)]


def test_enqueue_duplicate_id_writes_nothing(env: Env) -> None:
    env.enqueue({"id": "t1", "data": "original"})
    before = snapshot(env.r)
    dbsize = env.r.dbsize()
    reply = env.enqueue({"id": "fresh", "role": "other"}, {"id": "t1", "data": "dup"})
    assert reply[0] == b"ERR" and reply[1] == b"EXISTS"
    assert b"t1" in reply[2]
    assert env.r.dbsize() == dbsize
    assert snapshot(env.r) == before
    assert decode(env.h("t1")["data"]) == "original"


def test_enqueue_same_id_twice_in_one_call_is_invalid(env: Env) -> None:
    specs = [make_spec(env.settings, "role", 1, task_id="x"),
             make_spec(env.settings, "role", 2, task_id="x")]
    args = ["", 0, 2, *specs[0].args(), *specs[1].args()]  # past enqueue_args' own check
    reply = env.run("enqueue", args)
    assert reply[:2] == [b"ERR", b"INVALID"]
    assert env.r.dbsize() == 0


def test_enqueue_reads_every_header_field_and_refuses_a_malformed_header(env: Env) -> None:
    spec = make_spec(env.settings, "role", [1], task_id="full", name="résumé: a b, c",
                     depends_on=[Dep("p1", "run"), "p2"], max_attempts=3, result_ttl=60,
                     backoff=0.25, timeout=2, delay=30)
    spec.linked = frozenset({"p1", "p2"})  # as the client marks edges linked elsewhere
    assert env.run("enqueue", enqueue_args([spec]))[:3] == [b"OK", 0, 1]
    h = env.h("full")
    assert (h["role"], h["name"], h["max_attempts"], h["ttl"], h["backoff"], h["timeout"]) \
        == ("role", "résumé: a b, c", "3", "60", "250", "2000")
    assert h["depends_on"] == "p1 p2" and h["dep_policy"] == "p1=r"
    assert "due_at" in h and decode(h["data"]) == [1]
    header, data = make_spec(env.settings, "role", 1, task_id="bad").args()
    for broken in (header.rsplit("\n", 1)[0], header + "\ndangling"):
        reply = env.run("enqueue", ["", 0, 1, broken, data])
        assert reply[:2] == [b"ERR", b"INVALID"] and b"malformed" in reply[2]
    assert not env.r.exists(env.k.task("bad"))


def test_enqueue_unknown_prerequisite_writes_nothing(env: Env) -> None:
    env.enqueue({"id": "base"})
    before = snapshot(env.r)
    reply = env.enqueue({"id": "ok"}, {"id": "child", "depends_on": ["base", "ghost"]})
    assert reply[:2] == [b"ERR", b"UNKNOWN"]
    assert b"ghost" in reply[2] and b"child" in reply[2]
    assert snapshot(env.r) == before


def test_enqueue_self_dependency_is_refused(env: Env) -> None:
    reply = env.enqueue({"id": "me", "depends_on": ["me"]})
    assert reply[:2] == [b"ERR", b"DEPENDENCY"]
    assert env.r.dbsize() == 0


def _fail(env: Env, tid: str, error: str = "boom") -> None:
    taken = env.take("c-fail")
    entry, attempt = taken[tid]
    assert env.finish("c-fail", (tid, entry, attempt, "FAILED", "", error, False)) == []


def test_enqueue_on_failed_or_cancelled_prerequisite_is_refused(env: Env) -> None:
    env.enqueue({"id": "p"}, {"id": "q", "depends_on": ["p"]})
    _fail(env, "p")
    assert env.h("p")["status"] == "FAILED"
    assert env.h("q")["status"] == "CANCELLED"
    before = snapshot(env.r)
    reply = env.enqueue({"id": "x"}, {"id": "c", "depends_on": ["p"]})
    assert reply[:2] == [b"ERR", b"DEPENDENCY"]
    assert b"p" in reply[2] and b"FAILED" in reply[2]
    reply = env.enqueue({"id": "d", "depends_on": ["q"]})
    assert reply[:2] == [b"ERR", b"DEPENDENCY"]
    assert b"CANCELLED" in reply[2]
    assert snapshot(env.r) == before


def test_enqueue_with_prerequisites_waits(env: Env) -> None:
    env.enqueue({"id": "a"})
    reply = env.enqueue({"id": "b", "depends_on": ["a"]},
                        {"id": "c", "depends_on": ["b", "later"]},
                        {"id": "later"})
    assert reply == [b"OK", 1, 2]
    assert env.h("b")["status"] == "WAITING"
    assert env.h("b")["depends_on"] == "a"
    assert env.h("c")["depends_on"] == "b later"
    assert "entry" not in env.h("b")
    assert env.r.hgetall(env.k.deps("c")) == {b"b": b"c", b"later": b"c"}
    assert env.r.smembers(env.k.dependents("a")) == {b"b"}
    assert env.r.smembers(env.k.dependents("later")) == {b"c"}
    assert [f[b"id"] for _, f in env.entries()] == [b"a", b"later"]


def test_enqueue_on_completed_prerequisite_is_queued_at_once(env: Env) -> None:
    env.enqueue({"id": "a"})
    (entry, attempt), = env.take("c1").values()
    env.finish("c1", ("a", entry, attempt, "COMPLETED", encode(1), "", False))
    assert env.enqueue({"id": "b", "depends_on": ["a"]}) == [b"OK", 1, 0]
    assert env.h("b")["status"] == "QUEUED"


# --- start ---------------------------------------------------------------------------------


def test_start_marks_running_and_counts_the_attempt(env: Env) -> None:
    env.enqueue({"id": "t1", "name": "nm", "data": {"k": "v"}})
    pairs = env.read("c1")
    items = env.start("c1", pairs)
    assert len(items) == 1
    tid, attempt, name, data, timeout, tick, trace, failed = items[0]
    assert (timeout, tick, trace, failed) == (b"", b"", b"", 0)
    assert (tid, attempt, name) == (b"t1", 1, b"nm")
    assert decode(data) == {"k": "v"}
    h = env.h("t1")
    assert h["status"] == "RUNNING"
    assert h["attempt"] == "1"
    assert h["worker"] == "c1"
    assert float(h["started_at"]) >= float(h["enqueued_at"])
    assert env.pending("c1") == [pairs[0][0]]


@pytest.mark.parametrize("where", ["fakeredis", "real"])
def test_start_can_read_the_entries_itself(where: str, request: pytest.FixtureRequest,
                                           prefix: str) -> None:
    # XREADGROUP's reply inside Lua differs between Redis and fakeredis: both are read.
    r = request.getfixturevalue("fake_sync" if where == "fakeredis" else "sync_redis")
    env = Env(r, Scripts.register(r), Keys(prefix), Settings(prefix=prefix))
    if where == "real":
        request.addfinalizer(lambda: delete_namespace(r, prefix))
    env.group()
    assert env.run("start", ["role", "c1", ">", 10]) == []
    env.enqueue({"id": "t1", "data": "one"}, {"id": "t2"}, {"id": "t3"})
    bad = env.r.xadd(env.k.stream("role"), {"junk": "no id"}).decode()
    reply = env.run("start", ["role", "c1", ">", 3])
    entries = [e.decode() for e in reply[0::2]]
    assert [i[:2] for i in reply[1::2]] == [[b"t1", 1], [b"t2", 1], [b"t3", 1]]
    assert decode(reply[1][3]) == "one" and env.h("t1")["worker"] == "c1"
    assert env.pending("c1") == entries
    reply = env.run("start", ["role", "c2", ">", 3])  # the rest: a malformed entry
    assert reply[0].decode() == bad and reply[1][1] == 0 and b"malformed" in reply[1][2]
    assert env.pending("c2") == [] and len(env.r.xrange(env.k.base + "dead")) == 1


@pytest.mark.parametrize("where", ["fakeredis", "real"])
def test_finish_leaves_only_queued_and_running_entries_on_the_stream(
        where: str, request: pytest.FixtureRequest, prefix: str) -> None:
    # Entries before the oldest still pending are trimmed in one XTRIM, those after it
    # deleted one by one: either way XLEN less the pending ones is what waits.
    r = request.getfixturevalue("fake_sync" if where == "fakeredis" else "sync_redis")
    env = Env(r, Scripts.register(r), Keys(prefix), Settings(prefix=prefix))
    if where == "real":
        request.addfinalizer(lambda: delete_namespace(r, prefix))
    env.enqueue(*({"id": f"t{i}"} for i in range(6)))
    pairs = env.read("c1", count=4)  # t0-t3 delivered, t4 and t5 still queued
    run = {it[0].decode(): (entry, int(it[1]))
           for (entry, _), it in zip(pairs, env.start("c1", pairs))}

    def done(*ids: str) -> None:
        assert env.finish("c1", *((t, *run[t], "COMPLETED", "", "", "n") for t in ids)) == []

    def left() -> list[bytes]:
        return [f[b"id"] for _, f in env.entries()]

    done("t3", "t1")  # behind t0, still running
    assert left() == [b"t0", b"t2", b"t4", b"t5"]
    done("t0")  # the oldest: everything before t2, still running, goes
    assert left() == [b"t2", b"t4", b"t5"]
    done("t2")  # none pending: every delivered entry goes, the queued ones stay
    assert left() == [b"t4", b"t5"] and env.pending("c1") == []
    run = {t: (entry, attempt) for t, (entry, attempt) in env.take("c1").items()}
    assert sorted(run) == ["t4", "t5"]
    done("t4", "t5")
    assert left() == [] and env.r.xlen(env.k.stream("role")) == 0
    assert {env.h(f"t{i}")["status"] for i in range(6)} == {"COMPLETED"}


def test_start_skips_an_entry_not_pending_for_that_consumer(env: Env) -> None:
    env.enqueue({"id": "t1"})
    pairs = env.read("owner")
    before = env.h("t1")
    items = env.start("thief", pairs)
    assert items[0][0] == b"t1"
    assert items[0][1] == 0
    assert b"not pending for thief" in items[0][2]
    assert env.h("t1") == before
    assert env.pending("owner") == [pairs[0][0]]
    # the owner can still start it
    assert env.start("owner", pairs)[0][1] == 1


def test_start_dead_letters_a_malformed_entry(env: Env) -> None:
    env.group()
    bad = env.r.xadd(env.k.stream("role"), {"junk": "no id here"}).decode()
    env.enqueue({"id": "good"})
    pairs = env.read("c1")
    assert pairs[0] == (bad, "")
    items = env.start("c1", pairs)
    assert items[0][0] == b""
    assert items[0][1] == 0
    assert b"malformed" in items[0][2]
    assert items[1][:2] == [b"good", 1]
    dead = env.r.xrange(env.k.base + "dead")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"entry"] == bad.encode()
    assert fields[b"role"] == b"role"
    assert b"malformed" in fields[b"reason"]
    assert b"at" in fields
    # acked and deleted: no longer pending, no longer on the stream
    assert env.pending("c1") == [pairs[1][0]]
    assert bad not in [e for e, _ in env.entries()]


def test_start_dead_letters_an_entry_naming_an_unknown_task(env: Env) -> None:
    env.group()
    entry = env.r.xadd(env.k.stream("role"), {"id": "ghost"}).decode()
    pairs = env.read("c1")
    items = env.start("c1", pairs)
    assert items[0][:2] == [b"ghost", 0]
    assert b"unknown task ghost" in items[0][2]
    dead = env.r.xrange(env.k.base + "dead")
    assert dead[0][1][b"task"] == b"ghost"
    assert env.pending("c1") == []
    assert entry not in [e for e, _ in env.entries()]
    assert not env.r.exists(env.k.task("ghost"))


def test_start_drops_a_stale_entry_without_dead_lettering(env: Env) -> None:
    env.enqueue({"id": "t1"})
    env.group()
    # a second entry for the same task (say, a duplicate push): not the task's entry
    stale = env.r.xadd(env.k.stream("role"), {"id": "t1"}).decode()
    pairs = env.read("c1")
    items = env.start("c1", pairs)
    assert items[0][:2] == [b"t1", 1]
    assert items[1][:2] == [b"t1", 0]
    assert b"stale" in items[1][2]
    assert env.h("t1")["attempt"] == "1"
    assert not env.r.exists(env.k.base + "dead")
    assert stale not in env.pending("c1")


def test_start_returns_prerequisites_outputs(env: Env) -> None:
    env.enqueue({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a", "b"]})
    taken = env.take("c1")
    env.finish("c1", ("a", *taken["a"], "COMPLETED", encode({"from": "a"}), "", False))
    assert env.h("c")["status"] == "WAITING"
    env.finish("c1", ("b", *taken["b"], "COMPLETED", "", "", False))  # no output
    assert env.h("c")["status"] == "QUEUED"
    pairs = env.read("c1")
    (item,) = env.start("c1", pairs)
    assert item[:2] == [b"c", 1]
    assert item[4:8] == [b"", b"", b"", 0]  # no timeout of its own, tick, trace, failed ones
    deps = dict(zip(item[8::2], item[9::2]))
    assert decode(deps[b"a"]) == {"from": "a"}
    assert deps[b"b"] == b""


# --- finish --------------------------------------------------------------------------------


def test_finish_completed_records_output_and_ttl(env: Env) -> None:
    env.enqueue({"id": "t1", "ttl": 123})
    entry, attempt = env.take("c1")["t1"]
    assert env.finish("c1", ("t1", entry, attempt, "COMPLETED", encode([1, 2]), "", False)) == []
    h = env.h("t1")
    assert h["status"] == "COMPLETED"
    assert "success" not in h  # the status says it: no field of its own
    assert decode(h["output"]) == [1, 2]
    assert "entry" not in h and "error" not in h
    assert float(h["finished_at"]) >= float(h["started_at"])
    assert 0 < env.r.ttl(env.k.task("t1")) <= 123
    assert env.pending("c1") == []
    assert env.entries() == []


@pytest.mark.parametrize("wrong", ["attempt", "consumer"])
def test_finish_by_a_non_owner_is_refused_and_fenced(env: Env, wrong: str) -> None:
    env.enqueue({"id": "t1"})
    entry, attempt = env.take("owner")["t1"]
    before = env.h("t1")
    consumer = "intruder" if wrong == "consumer" else "owner"
    stale_attempt = attempt + 1 if wrong == "attempt" else attempt
    refused = env.finish(consumer, ("t1", entry, stale_attempt, "COMPLETED", encode("x"), "",
                                    False))
    assert refused == ["t1"]
    assert env.fenced() == 1
    assert env.h("t1") == before
    assert env.r.ttl(env.k.task("t1")) == -1


@pytest.mark.parametrize("wrong", ["attempt", "consumer"])
def test_refused_finish_leaves_the_owners_entry_alone(env: Env, wrong: str) -> None:
    """A refused finish writes "nothing of theirs": the owner can still finish its attempt."""
    env.enqueue({"id": "t1"})
    entry, attempt = env.take("owner")["t1"]
    consumer = "intruder" if wrong == "consumer" else "owner"
    stale_attempt = attempt + 1 if wrong == "attempt" else attempt
    assert env.finish(consumer, ("t1", entry, stale_attempt, "FAILED", "", "x", False)) == ["t1"]
    assert env.pending("owner") == [entry]
    assert env.finish("owner", ("t1", entry, attempt, "COMPLETED", encode("ok"), "", False)) == []
    assert env.h("t1")["status"] == "COMPLETED"


def test_finish_releases_a_waiting_dependent_exactly_once(env: Env) -> None:
    env.enqueue({"id": "a"}, {"id": "b", "depends_on": ["a"]})
    assert env.h("b")["status"] == "WAITING"
    entry, attempt = env.take("c1")["a"]
    result = ("a", entry, attempt, "COMPLETED", encode("A"), "", False)
    assert env.finish("c1", result) == []
    assert env.h("b")["status"] == "QUEUED"
    ids = [f[b"id"] for _, f in env.entries()]
    assert ids == [b"b"]
    assert env.h("b")["entry"] == env.entries()[0][0]
    assert not env.r.exists(env.k.deps("b"))
    assert not env.r.exists(env.k.dependents("a"))
    # the same finish again is refused and releases nothing more
    assert env.finish("c1", result) == ["a"]
    assert env.fenced() == 1
    assert [f[b"id"] for _, f in env.entries()] == [b"b"]
    assert env.h("a")["status"] == "COMPLETED"


def test_dependent_waits_for_all_prerequisites(env: Env) -> None:
    env.enqueue({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a", "b"]})
    taken = env.take("c1")
    env.finish("c1", ("a", *taken["a"], "COMPLETED", "", "", False))
    assert env.h("c")["status"] == "WAITING"
    assert env.r.hkeys(env.k.deps("c")) == [b"b"]
    env.finish("c1", ("b", *taken["b"], "COMPLETED", "", "", False))
    assert env.h("c")["status"] == "QUEUED"
    assert [f[b"id"] for _, f in env.entries()] == [b"c"]


def test_failure_cascades_cancellation_transitively(env: Env) -> None:
    env.enqueue({"id": "a"}, {"id": "b", "depends_on": ["a"]},
                {"id": "c", "depends_on": ["b"]}, {"id": "d", "depends_on": ["a"]},
                {"id": "e"}, {"id": "f", "depends_on": ["e", "c"]})
    taken = env.take("c1")
    assert set(taken) == {"a", "e"}
    env.finish("c1", ("a", *taken["a"], "FAILED", "", "ValueError: boom", False))
    a, b, c, d, f = (env.h(t) for t in "abcdf")
    assert a["status"] == "FAILED" and "success" not in a
    assert a["error"] == "ValueError: boom"
    assert b["status"] == "CANCELLED"
    assert b["error"] == "dependency a failed: ValueError: boom"
    assert d["status"] == "CANCELLED"
    assert d["error"] == "dependency a failed: ValueError: boom"
    assert c["status"] == "CANCELLED"
    assert c["error"].startswith("dependency b cancelled: ")
    assert c["error"].endswith("dependency a failed: ValueError: boom")
    assert f["status"] == "CANCELLED"
    assert "dependency c cancelled" in f["error"]
    for h in (b, c, d, f):
        assert "finished_at" in h
    assert [f[b"id"] for _, f in env.entries()] == [b"e"]  # nothing released (e is running)
    # e completing later does not resurrect f
    env.finish("c1", ("e", *taken["e"], "COMPLETED", "", "", False))
    assert env.h("f")["status"] == "CANCELLED"
    assert env.entries() == []


def test_retryable_failure_with_attempts_left_is_requeued(env: Env) -> None:
    env.enqueue({"id": "t1", "max_attempts": 2})
    entry, attempt = env.take("c1")["t1"]
    assert env.finish("c1", ("t1", entry, attempt, "FAILED", "", "flaky", True)) == []
    assert env.retried == [("t1", 1, 2, 0)]  # what the worker logs: attempt 1 of 2, at once
    h = env.h("t1")
    assert h["status"] == "QUEUED"
    assert h["error"] == "flaky"
    assert h["entry"] != entry
    entry2, attempt2 = env.take("c1")["t1"]
    assert attempt2 == 2
    assert env.finish("c1", ("t1", entry2, attempt2, "FAILED", "", "flaky again", True)) == []
    assert env.retried == [] and env.dead == ["t1"]
    assert env.h("t1")["status"] == "FAILED"
    assert env.h("t1")["error"] == "flaky again"


def test_non_retryable_failure_is_final_despite_attempts_left(env: Env) -> None:
    env.enqueue({"id": "t1", "max_attempts": 5})
    entry, attempt = env.take("c1")["t1"]
    env.finish("c1", ("t1", entry, attempt, "FAILED", encode("partial"), "no", False))
    h = env.h("t1")
    assert h["status"] == "FAILED"
    assert decode(h["output"]) == "partial"
    assert env.entries() == []


def test_finish_publishes_the_outcome_to_reply_channels(env: Env) -> None:
    env.enqueue({"id": "t1"})
    chan = env.k.reply_channel("client1")
    assert env.run("watch", [chan, "t1"]) == [[b"QUEUED", None, None]]
    ps = env.r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(chan)
    ps.get_message(timeout=0.1)
    entry, attempt = env.take("c1")["t1"]
    error = "Traceback:\n  x\n\nKeyError: 'ü'\n"
    output = encode({"bin": b"\n\x00\n", "s": "two\nlines"})
    env.finish("c1", ("t1", entry, attempt, "FAILED", output, error, False))
    msg = None
    for _ in range(20):
        msg = ps.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if msg:
            break
    ps.close()
    assert msg is not None and msg["channel"] == chan.encode()
    result = parse_notification(msg["data"])
    assert result.task_id == "t1"
    assert result.success is False
    assert result.error == error
    assert result.output == {"bin": b"\n\x00\n", "s": "two\nlines"}


# --- requeue -------------------------------------------------------------------------------


def test_requeue_gives_back_a_consumers_entries(env: Env) -> None:
    env.enqueue({"id": "run", "max_attempts": 3}, {"id": "read", "max_attempts": 3},
                {"id": "other", "max_attempts": 3})
    pairs = env.read("c1", count=2)
    assert [t for _, t in pairs] == ["run", "read"]
    env.start("c1", pairs[:1])  # 'run' RUNNING, 'read' delivered but not started
    other = env.take("c2")["other"]
    old = {t: e for e, t in pairs}
    assert env.run("requeue", ["c1", "worker c1 stopped", 604800, 0, "role", "nostream"]) == [2, 0]
    run, read = env.h("run"), env.h("read")
    assert run["status"] == read["status"] == "QUEUED"
    assert run["entry"] != old["run"] and read["entry"] != old["read"]
    assert run["error"] == "worker c1 stopped"
    assert "error" not in read
    assert "worker" not in run
    assert run["attempt"] == "1" and read.get("attempt", "0") == "0"
    ids = {e: f[b"id"].decode() for e, f in env.entries()}
    assert old["run"] not in ids and old["read"] not in ids
    assert sorted(ids.values()) == ["other", "read", "run"]
    assert env.pending("c1") == []
    consumers = {c["name"] for c in env.r.xinfo_consumers(env.k.stream("role"), GROUP)}
    assert b"c1" not in consumers
    # c2 is untouched
    assert env.pending("c2") == [other[0]]
    assert env.h("other")["status"] == "RUNNING"
    # a late finish of the old entry is refused
    assert env.finish("c1", ("run", old["run"], 1, "COMPLETED", encode("late"), "", False)) \
        == ["run"]
    assert env.h("run")["status"] == "QUEUED"
    assert "output" not in env.h("run")
    # and the new entries run normally
    taken = env.take("c3")
    assert taken["run"][1] == 2 and taken["read"][1] == 1


def test_requeue_gives_back_a_started_but_never_run_entry_as_it_was(env: Env) -> None:
    env.enqueue({"id": "ran", "max_attempts": 1}, {"id": "prefetched", "max_attempts": 1})
    taken = env.take("c1")  # both started; the worker ran 'ran' only
    assert env.h("prefetched")["status"] == "RUNNING"
    assert env.run("requeue", ["c1", "worker c1 stopped", 604800, 1, taken["prefetched"][0],
                               "role"]) == [2, 0]
    ran, prefetched = env.h("ran"), env.h("prefetched")
    assert (ran["status"], ran["attempt"], ran["crashes"]) == ("QUEUED", "1", "1")
    assert (prefetched["status"], prefetched["attempt"]) == ("QUEUED", "0")
    assert "crashes" not in prefetched and "error" not in prefetched
    assert env.take("c2")["prefetched"][1] == 1  # its first attempt, as if never taken


def test_a_crash_does_not_spend_attempts_but_a_poison_task_is_failed(env: Env) -> None:
    env.enqueue({"id": "once", "max_attempts": 1}, {"id": "dep", "depends_on": ["once"]})
    for lost in range(1, 4):                 # lost with its worker three times: re-queued
        env.take("c1")
        assert env.run("requeue", ["c1", "worker c1 stopped", 604800, 0, "role"]) == [1, 0]
        assert env.h("once")["status"] == "QUEUED"
        assert env.h("once")["crashes"] == str(lost)
    env.take("c1")                           # the fourth loss is one too many
    assert env.run("requeue", ["c1", "worker c1 stopped", 604800, 0, "role"]) == [0, 1]
    h = env.h("once")
    assert h["status"] == "FAILED"
    assert h["attempt"] == "4"
    assert h["error"] == "worker c1 stopped during attempt 4; lost 4 times, given up"
    assert env.h("dep")["status"] == "CANCELLED"
    assert env.entries() == []


# --- reap ----------------------------------------------------------------------------------


def _register(env: Env, wid: str, age_ms: int, roles: str = "role") -> None:
    env.r.zadd(env.k.workers, {wid: env.now_ms() - age_ms})
    env.r.hset(env.k.worker(wid), mapping={"roles": roles, "host": "h"})


def test_reap_requeues_the_entries_of_a_dead_worker_only(env: Env) -> None:
    env.enqueue({"id": "d1", "max_attempts": 2}, {"id": "f1", "max_attempts": 2})
    pairs = env.read("dead", count=1)
    assert env.start("dead", pairs)[0][:2] == [b"d1", 1]
    d_entry = pairs[0][0]
    f_entry, _ = env.take("fresh")["f1"]
    _register(env, "dead", 60_000)
    _register(env, "fresh", 0)
    reply = env.run("reap", [30_000, 604800])
    assert reply == [b"dead", 1, 0]
    d1, f1 = env.h("d1"), env.h("f1")
    assert d1["status"] == "QUEUED"
    assert d1["entry"] != d_entry
    assert d1["error"] == "worker dead died"
    assert f1["status"] == "RUNNING" and f1["worker"] == "fresh"
    assert env.pending("fresh") == [f_entry]
    assert env.pending("dead") == []
    assert env.r.zscore(env.k.workers, "dead") is None
    assert env.r.zscore(env.k.workers, "fresh") is not None
    assert not env.r.exists(env.k.worker("dead"))
    assert env.r.exists(env.k.worker("fresh"))
    # idempotent
    assert env.run("reap", [30_000, 604800]) == []
    assert env.finish("dead", ("d1", d_entry, 1, "COMPLETED", "", "", False)) == ["d1"]


def test_reap_gives_back_entries_of_an_unregistered_idle_consumer(env: Env) -> None:
    env.enqueue({"id": "t1", "max_attempts": 2})
    env.r.sadd(env.k.roles, "role")
    entry, _ = env.take("ghost")["t1"]
    assert env.run("reap", [60_000, 604800]) == []  # not idle long enough
    assert env.pending("ghost") == [entry]
    assert env.h("t1")["status"] == "RUNNING"
    time.sleep(0.01)
    assert env.run("reap", [1, 604800]) == [b"ghost", 1, 0]
    assert env.h("t1")["status"] == "QUEUED"
    assert env.h("t1")["entry"] != entry
    assert env.pending("ghost") == []


def test_reap_without_registered_roles_uses_all_roles(env: Env) -> None:
    env.enqueue({"id": "t1", "role": "a", "max_attempts": 2})
    env.take("w", role="a")
    env.r.zadd(env.k.workers, {"w": env.now_ms() - 100_000})  # no worker hash
    assert env.run("reap", [30_000, 604800]) == [b"w", 1, 0]
    assert env.h("t1")["status"] == "QUEUED"


# --- watch and heartbeat -------------------------------------------------------------------


def test_watch_adds_the_reply_channel_once(env: Env) -> None:
    env.enqueue({"id": "t1"}, {"id": "t2", "depends_on": ["t1"]})
    assert env.run("watch", ["chan-a", "t1", "t2"]) == [[b"QUEUED", None, None],
                                                        [b"WAITING", None, None]]
    assert env.run("watch", ["chan-a", "t1"]) == [[b"QUEUED", None, None]]
    assert env.h("t1")["reply_to"] == "chan-a"
    assert env.h("t2")["reply_to"] == "chan-a"
    env.run("watch", ["chan-b", "t1"])
    env.run("watch", ["chan-a", "t1"])
    env.run("watch", ["chan", "t1"])  # a prefix of another channel is a channel of its own
    assert env.h("t1")["reply_to"].split() == ["chan-a", "chan-b", "chan"]


def test_a_final_task_keeps_no_reply_channel(env: Env) -> None:
    env.enqueue({"id": "t1"})
    env.run("watch", ["chan-a", "t1"])
    assert env.h("t1")["reply_to"] == "chan-a"
    entry, attempt = env.take("c1")["t1"]
    env.finish("c1", ("t1", entry, attempt, "COMPLETED", encode(1), "", False))
    assert "reply_to" not in env.h("t1")      # told; 50-odd bytes less per stored result


def test_watch_reports_final_tasks_without_subscribing(env: Env) -> None:
    env.enqueue({"id": "t1"})
    entry, attempt = env.take("c1")["t1"]
    env.finish("c1", ("t1", entry, attempt, "COMPLETED", encode({"r": 1}), "", False))
    (reply,) = env.run("watch", ["chan", "t1"])
    assert reply[0] == b"COMPLETED"
    assert decode(reply[1]) == {"r": 1}
    assert reply[2] is None
    assert "reply_to" not in env.h("t1")


def test_watch_unknown_task(env: Env) -> None:
    assert env.run("watch", ["chan", "nope"]) == [[None, None, None]]
    assert not env.r.exists(env.k.task("nope"))


def test_enqueue_with_reply_to_records_it(env: Env) -> None:
    spec = make_spec(env.settings, "role", None, task_id="t1")
    spec.reply_to = "chan-x"
    assert env.run("enqueue", enqueue_args([spec])) == [b"OK", 1, 0]
    assert env.h("t1")["reply_to"] == "chan-x"


def test_heartbeat_registers_the_worker(env: Env) -> None:
    env.enqueue({"id": "t1"})
    entry, _ = env.take("w1")["t1"]
    now, gone, orphans = env.run(
        "heartbeat", ["w1", 0, 60, 2, "roles", "role", "pid", 42, "role", entry, "t1"])
    assert gone == [] and orphans == 0
    assert abs(now - env.now_ms()) < 5000
    assert env.r.zscore(env.k.workers, "w1") == now
    info = env.r.hgetall(env.k.worker("w1"))
    assert info[b"roles"] == b"role" and info[b"pid"] == b"42"
    assert int(info[b"heartbeat_at"]) == now
    assert env.pending("w1") == [entry]


def test_heartbeat_names_running_tasks_that_are_no_longer_the_workers(env: Env) -> None:
    env.enqueue({"id": "t1"}, {"id": "t2"})
    taken = env.take("w1")
    env.run("cancel", ["stop it", "", "t1"])
    args = ["w1", 0, 60, 0]
    for tid, (entry, _) in sorted(taken.items()):
        args += ["role", entry, tid]
    _, gone, _ = env.run("heartbeat", args)
    assert gone == [b"t1"]


def test_heartbeat_gives_back_entries_its_worker_no_longer_runs(env: Env) -> None:
    """A finish lost in a failover leaves the task RUNNING under a live worker that has
    forgotten it: its next heartbeat gives it back, and only once it has been idle long."""
    env.enqueue({"id": "t1"}, {"id": "t2"})
    taken = env.take("w1")
    beat = ["w1", 60_000, 60, 1, "roles", "role", "role", taken["t1"][0], "t1"]
    assert env.run("heartbeat", beat)[2] == 0  # t2 not idle long enough yet
    assert env.h("t2")["status"] == "RUNNING"
    time.sleep(0.02)
    beat[1] = 10
    assert env.run("heartbeat", beat)[2] == 1
    t2 = env.h("t2")
    assert t2["status"] == "QUEUED" and t2["entry"] != taken["t2"][0] and t2["crashes"] == "1"
    assert "no longer had it" in t2["error"]
    assert env.pending("w1") == [taken["t1"][0]]  # the in-flight one is kept
    assert env.h("t1")["status"] == "RUNNING"
    assert set(env.take("w2")) == {"t2"}


def test_start_again_after_a_lost_reply_returns_the_same_attempt(env: Env) -> None:
    # The worker retries a start whose reply a dropped connection lost; the first one ran.
    env.enqueue({"id": "t1", "data": 7})
    pairs = env.read("c1")
    first = env.start("c1", pairs)
    again = env.start("c1", pairs)
    assert again == first and first[0][:2] == [b"t1", 1]
    assert env.h("t1")["attempt"] == "1" and env.h("t1")["status"] == "RUNNING"
    assert env.pending("c1") == [pairs[0][0]]  # still pending: its finish can land
    assert env.start("c2", pairs)[0][1] == 0  # another consumer still may not
