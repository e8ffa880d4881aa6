"""Pure units: key names, settings, URL redaction, graphs, protocol helpers, public API."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
import redis

import ceylon_redis
from ceylon_redis import (
    CeylonRedisError,
    DependencyError,
    EncodeError,
    Settings,
    TaskDef,
    TaskExistsError,
    TaskStatus,
    TaskTimeoutError,
    UnknownTaskError,
    ValidationError,
)
from ceylon_redis.codec import decode, encode
from ceylon_redis.errors import ScriptError, raise_for_script_error
from ceylon_redis.graph import check_acyclic, find_cycle
from ceylon_redis.keys import Keys, check_name, check_task_id
from ceylon_redis.outages import is_outage
from ceylon_redis.protocol import (
    enqueue_args,
    graph_specs,
    make_spec,
    parse_notification,
    parse_task,
    parse_watch,
)
from ceylon_redis.settings import DEFAULT_PREFIX, DEFAULT_URL, redact_url

# --- keys ----------------------------------------------------------------------------------


def all_keys(k: Keys) -> list[str]:
    return [
        k.base, k.task("t1"), k.deps("t1"), k.dependents("t1"), k.stream("role"), k.roles,
        k.workers, k.worker("w1"), k.waiting("role"), k.graph("g1"), k.graph_tasks("g1"),
        k.events, k.coordinators, k.stats("role"), k.reply_channel("c1"),
    ]


def test_every_key_carries_the_hash_tag() -> None:
    k = Keys("my-app.v1")
    keys = all_keys(k)
    assert k.base == "{my-app.v1}:"
    for key in keys:
        assert key.startswith("{my-app.v1}:"), key
        # exactly one hash tag, so the Cluster slot is that of the prefix
        assert key.count("{") == 1 and key.count("}") == 1, key
    assert len(set(keys)) == len(keys)


def test_key_names_are_the_documented_ones() -> None:
    k = Keys("p")
    assert k.task("abc") == "{p}:task:abc"
    assert k.deps("abc") == "{p}:task:abc:deps"
    assert k.dependents("abc") == "{p}:task:abc:dependents"
    assert k.stream("resize") == "{p}:stream:resize"
    assert k.roles == "{p}:roles"
    assert k.workers == "{p}:workers"
    assert k.worker("w") == "{p}:worker:w"
    assert k.waiting("r") == "{p}:waiting:r"
    assert k.graph("g") == "{p}:graph:g" and k.graph_tasks("g") == "{p}:graph:g:tasks"
    assert (k.events, k.coordinators, k.stats("r")) == ("{p}:events", "{p}:coordinators",
                                                        "{p}:stats:r")
    assert k.reply_channel("c") == "{p}:reply:c"


def test_two_prefixes_share_no_key() -> None:
    assert not set(all_keys(Keys("a"))) & set(all_keys(Keys("b")))


@pytest.mark.parametrize(
    "bad", ["", "a b", "a{b", "a}b", "a:b", "x" * 65, "ünï", "a/b", "a\nb", "*"],
)
def test_check_name_rejects_bad_roles_and_prefixes(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_name("role", bad)
    assert repr(bad) in str(info.value)
    assert "role" in str(info.value)
    with pytest.raises(ValidationError, match="prefix"):
        Keys(bad)


@pytest.mark.parametrize("bad", [None, 12, b"role"])
def test_check_name_rejects_non_strings(bad: object) -> None:
    with pytest.raises(ValidationError, match=repr(bad).replace("'", ".")):
        check_name("role", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["a", "A-Z_0.9", "x" * 64, "resize-images"])
def test_check_name_accepts_good_names(good: str) -> None:
    assert check_name("role", good) == good
    assert Keys(good).prefix == good


def test_check_task_id() -> None:
    assert check_task_id("x" * 128) == "x" * 128
    for bad in ["", "x" * 129, "a b", "a:b", "{x}"]:
        with pytest.raises(ValidationError, match="task id"):
            check_task_id(bad)


def test_validation_error_is_a_value_error() -> None:
    assert issubclass(ValidationError, ValueError)
    assert issubclass(ValidationError, CeylonRedisError)


# --- settings ------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ["CEYLON_REDIS_URL", "REDIS_URL", "CEYLON_REDIS_PREFIX",
                 "CEYLON_REDIS_RESULT_TTL", "CEYLON_REDIS_MAX_ATTEMPTS",
                 "CEYLON_REDIS_WORKER_TIMEOUT", "CEYLON_REDIS_HEARTBEAT_INTERVAL"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings.from_env()
    assert s.url == DEFAULT_URL == "redis://localhost:6379/0"
    assert s.prefix == DEFAULT_PREFIX
    assert s == Settings()


def test_from_env_prefers_ceylon_redis_url_over_redis_url(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REDIS_URL", "redis://generic:6379/1")
    assert Settings.from_env().url == "redis://generic:6379/1"
    clean_env.setenv("CEYLON_REDIS_URL", "redis://specific:6379/2")
    assert Settings.from_env().url == "redis://specific:6379/2"
    # an argument beats both
    assert Settings.from_env(url="redis://arg:1/0").url == "redis://arg:1/0"


def test_from_env_empty_ceylon_url_falls_back(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CEYLON_REDIS_URL", "")
    clean_env.setenv("REDIS_URL", "redis://generic:6379/1")
    assert Settings.from_env().url == "redis://generic:6379/1"


def test_from_env_reads_prefix_and_timers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CEYLON_REDIS_PREFIX", "envpfx")
    clean_env.setenv("CEYLON_REDIS_RESULT_TTL", "60")
    clean_env.setenv("CEYLON_REDIS_MAX_ATTEMPTS", "4")
    clean_env.setenv("CEYLON_REDIS_WORKER_TIMEOUT", "12.5")
    clean_env.setenv("CEYLON_REDIS_HEARTBEAT_INTERVAL", "2")
    s = Settings.from_env()
    assert (s.prefix, s.result_ttl, s.max_attempts) == ("envpfx", 60, 4)
    assert (s.worker_timeout, s.heartbeat_interval) == (12.5, 2.0)
    assert Settings.from_env(prefix="argpfx", max_attempts=2).prefix == "argpfx"
    assert Settings.from_env(max_attempts=2).max_attempts == 2
    assert Settings.from_env(max_attempts=None).max_attempts == 4


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"result_ttl": 0}, "result_ttl"),
        ({"result_ttl": -5}, "result_ttl"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"worker_timeout": 5.0, "heartbeat_interval": 5.0}, "worker_timeout"),
        ({"worker_timeout": 1.0, "heartbeat_interval": 2.0}, "worker_timeout"),
    ],
)
def test_settings_validation(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Settings(**changes)  # type: ignore[arg-type]


def test_settings_bad_prefix_is_a_validation_error(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="'bad prefix'"):
        Settings(prefix="bad prefix")
    clean_env.setenv("CEYLON_REDIS_PREFIX", "a:b")
    with pytest.raises(ValidationError, match="'a:b'"):
        Settings.from_env()


def test_settings_with_copies_and_validates() -> None:
    s = Settings(prefix="a")
    t = s.with_(prefix="b", max_attempts=3)
    assert (s.prefix, s.max_attempts) == ("a", 1)
    assert (t.prefix, t.max_attempts) == ("b", 3)
    with pytest.raises(ValueError):
        s.with_(max_attempts=0)


# --- redact_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:s3cret@host:6379/0", "redis://***@host:6379/0"),
        ("rediss://default:s3cret@cache.example.com:6380", "rediss://default:***@cache.example.com:6380"),
        ("redis://user:p@ss:w0rd@host/1", "redis://user:***@host/1"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://justuser@host", "redis://justuser@host"),
        ("unix://:s3cret@/var/run/redis.sock?db=2", "unix://***@/var/run/redis.sock?db=2"),
        ("embedded://", "embedded://"),
    ],
)
def test_redact_url_shapes(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:s3cret@host:6379/0",
        "redis://:s3cret@host",
        "rediss://u:s3cret@h:1/2?ssl_cert_reqs=none",
        "redis://u:s3cret@with@at@host/0",
        "unix://user:s3cret@/tmp/redis.sock",
        "redis://u:s3cret%40x@host",
        # redis-py also takes the password from the query string
        "redis://localhost:6379/0?password=s3cret",
        "unix:///tmp/redis.sock?db=0&password=s3cret",
    ],
)
def test_redact_url_never_shows_the_password(url: str) -> None:
    assert "s3cret" not in redact_url(url)


def test_redis_py_really_reads_a_password_from_the_query_string() -> None:
    """Why the query-string shape above matters: redis-py uses it as the password."""
    from redis.connection import parse_url

    assert parse_url("redis://localhost:6379/0?password=s3cret")["password"] == "s3cret"


# --- graph ---------------------------------------------------------------------------------


def test_find_cycle_names_the_cycle_in_order() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    cycle = find_cycle(edges)
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    # each step goes from a task to one of its prerequisites
    for node, prereq in itertools.pairwise(cycle):
        assert prereq in edges[node]
    assert set(cycle) == {"a", "b", "c"}
    assert len(cycle) == 4


def test_find_cycle_from_a_root_outside_the_cycle() -> None:
    edges = {"x": ["y"], "y": ["z"], "z": ["y"]}
    assert find_cycle(edges) == ["y", "z", "y"]


def test_find_cycle_self_loop() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    with pytest.raises(DependencyError, match="a -> a"):
        check_acyclic({"b": [], "a": ["b", "a"]})


def test_diamond_has_no_cycle() -> None:
    edges = {"top": ["left", "right"], "left": ["bottom"], "right": ["bottom"], "bottom": []}
    assert find_cycle(edges) is None
    check_acyclic(edges)


def test_prerequisites_outside_the_graph_are_ignored() -> None:
    assert find_cycle({"a": ["existing-task"], "b": ["a", "other"]}) is None
    assert find_cycle({}) is None


def test_long_chain_has_no_cycle_and_no_recursion_limit() -> None:
    n = 5000
    edges = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(n)}
    assert find_cycle(edges) is None
    edges["t0"] = [f"t{n - 1}"]
    cycle = find_cycle(edges)
    assert cycle is not None and len(cycle) == n + 1


def test_check_acyclic_message() -> None:
    with pytest.raises(DependencyError) as info:
        check_acyclic({"a": ["b"], "b": ["a"]})
    assert str(info.value) == "dependency cycle: a -> b -> a"


# --- protocol ------------------------------------------------------------------------------


def test_make_spec_encodes_and_fills_defaults() -> None:
    s = Settings(max_attempts=2, result_ttl=99)
    spec = make_spec(s, "role", {"x": 1}, depends_on=["d1", "d2", "d1"])
    assert decode(spec.data) == {"x": 1}
    assert re.fullmatch(r"[A-Za-z0-9_.]{16}", spec.id)
    assert spec.prerequisites == ["d1", "d2"]
    assert list(spec.depends_on) == [("d1", "cancel"), ("d2", "cancel")]
    assert (spec.max_attempts, spec.ttl, spec.name) == (None, 99, "")  # the worker's default
    assert spec.args() == [f"{spec.id}\nrole\n\n\n99\n\n\n\n\n\n\n\nd1\nc\nd2\nc", spec.data]
    other = make_spec(s, "role", None, name="n", task_id="given", max_attempts=5, result_ttl=7)
    assert (other.id, other.name, other.max_attempts, other.ttl) == ("given", "n", 5, 7)


def test_make_spec_payload_limit_names_the_limit() -> None:
    s = Settings(max_payload_bytes=100)
    make_spec(s, "role", b"x" * 90)
    with pytest.raises(ValidationError) as info:
        make_spec(s, "role", b"x" * 200, task_id="big")
    msg = str(info.value)
    assert "100" in msg
    assert "max_payload_bytes" in msg
    assert "big" in msg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"role": "bad role"}, "'bad role'"),
        ({"task_id": "bad id"}, "'bad id'"),
        ({"depends_on": ["ok", "not ok"]}, "'not ok'"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"name": "two\nlines"}, "name"),
        ({"name": "x" * 257}, "name"),
    ],
)
def test_make_spec_validation(kwargs: dict[str, object], match: str) -> None:
    args = {"role": "role", "data": None, **kwargs}
    role, data = args.pop("role"), args.pop("data")
    with pytest.raises(ValidationError, match=match):
        make_spec(Settings(), role, data, **args)  # type: ignore[arg-type]


def test_make_spec_unencodable_data() -> None:
    with pytest.raises(EncodeError, match=r"data\['f'\]"):
        make_spec(Settings(), "role", {"f": object()})


def test_enqueue_args_rejects_duplicate_ids() -> None:
    s = Settings()
    a = make_spec(s, "r", 1, task_id="same")
    b = make_spec(s, "r", 2, task_id="same")
    with pytest.raises(ValidationError, match="same"):
        enqueue_args([a, b])
    c = make_spec(s, "r", 3, task_id="other")
    args = enqueue_args([a, c])
    assert args[:3] == ["", 0, 2]
    assert args[3:] == [*a.args(), *c.args()]


def test_graph_specs_rejects_a_cycle_naming_it() -> None:
    tasks = [TaskDef("r", id="a", depends_on=["c"]), TaskDef("r", id="b", depends_on=["a"]),
             TaskDef("r", id="c", depends_on=["b"])]
    with pytest.raises(DependencyError, match="dependency cycle: a -> c -> b -> a"):
        graph_specs(Settings(), tasks)
    ok = graph_specs(Settings(), [TaskDef("r", id="a"), TaskDef("r", id="b", depends_on=["a"])])
    assert [s.id for s in ok] == ["a", "b"]


def _notification(tid: str, status: str, error: bytes, output: bytes) -> bytes:
    """The message finish publishes (common.lua notify): id, status, #error, error..output."""
    return b"\n".join([tid.encode(), status.encode(), str(len(error)).encode(), error + output])


def test_parse_notification_round_trip_with_newlines_and_binary_output() -> None:
    error = "Traceback:\n  line 1\n\nValueError: bad ✗\n".encode()
    output = encode({"blob": b"\n\x00\xff\n", "text": "a\nb"})
    r = parse_notification(_notification("t-1", "FAILED", error, output))
    assert r.task_id == "t-1"
    assert r.status is TaskStatus.FAILED
    assert r.success is False
    assert r.error == error.decode()
    assert r.output == {"blob": b"\n\x00\xff\n", "text": "a\nb"}


def test_parse_notification_completed_without_error_or_output() -> None:
    r = parse_notification(_notification("t2", "COMPLETED", b"", b""))
    assert (r.success, r.output, r.error, r.status) == (True, None, None, TaskStatus.COMPLETED)
    r = parse_notification(_notification("t3", "COMPLETED", b"", encode(b"\n\n")))
    assert r.output == b"\n\n"


def test_parse_watch() -> None:
    assert parse_watch("t", [b"RUNNING", None, None]) is None
    assert parse_watch("t", [b"WAITING", None, None]) is None
    r = parse_watch("t", [b"CANCELLED", None, b"dependency x failed: boom"])
    assert r is not None and r.status is TaskStatus.CANCELLED and not r.success
    assert r.error == "dependency x failed: boom"
    r = parse_watch("t", [b"COMPLETED", encode([1]), None])
    assert r is not None and r.success and r.output == [1]
    with pytest.raises(UnknownTaskError, match="unknown task t"):
        parse_watch("t", [None, None, None])


def test_parse_task() -> None:
    raw = {b"role": b"r", b"name": b"n", b"status": b"COMPLETED", b"attempt": b"2",
           b"max_attempts": b"3", b"worker": b"w1", b"depends_on": b"a b",
           b"enqueued_at": b"100.000", b"started_at": b"101.500", b"finished_at": b"104.000",
           b"data": encode({"in": 1}), b"output": encode({"out": 2})}
    info = parse_task("t", raw)
    assert (info.role, info.name, info.status, info.attempt, info.max_attempts) == (
        "r", "n", TaskStatus.COMPLETED, 2, 3)
    assert info.worker == "w1"
    assert info.depends_on == ["a", "b"]
    assert info.enqueued_at == dt.datetime.fromtimestamp(100, tz=dt.timezone.utc)
    assert info.queue_wait == 1.5
    assert info.run_time == 2.5
    assert info.data == {"in": 1}
    assert info.result is not None and info.result.output == {"out": 2}
    with pytest.raises(UnknownTaskError):
        parse_task("gone", {})
    with pytest.raises(ValidationError, match="invalid status"):
        parse_task("t", {b"status": b"BOGUS"})


def test_raise_for_script_error_maps_codes() -> None:
    raise_for_script_error([b"OK", 1, 0])
    raise_for_script_error([])
    for code, exc in [(b"EXISTS", TaskExistsError), (b"UNKNOWN", UnknownTaskError),
                      (b"DEPENDENCY", DependencyError), (b"INVALID", ValidationError),
                      (b"WHAT", ScriptError)]:
        with pytest.raises(exc, match="detail text"):
            raise_for_script_error([b"ERR", code, b"detail text"])


def test_unknown_task_error_message_is_not_quoted() -> None:
    assert str(UnknownTaskError("unknown task x")) == "unknown task x"


def test_task_timeout_error_is_a_builtin_timeout_error() -> None:
    assert issubclass(TaskTimeoutError, TimeoutError)
    assert issubclass(EncodeError, TypeError) and issubclass(EncodeError, ValidationError)


# --- models --------------------------------------------------------------------------------


def test_pending_is_waiting() -> None:
    assert TaskStatus.PENDING is TaskStatus.WAITING
    assert TaskStatus("WAITING") is TaskStatus.PENDING
    assert TaskStatus.PENDING.value == "WAITING"


def test_final_states() -> None:
    final = {s for s in TaskStatus if s.is_final}
    assert final == {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


# --- public API ----------------------------------------------------------------------------

PUBLIC_API = [
    "AsyncClient",
    "AsyncGraph",
    "CeylonRedisError",
    "Client",
    "Coordinator",
    "DeadLetter",
    "DeadRetry",
    "Dep",
    "DependencyError",
    "EncodeError",
    "Graph",
    "GraphInfo",
    "OnFailure",
    "Percentiles",
    "ProcessRequest",
    "ProcessWorker",
    "ProtocolMismatchError",
    "QueueInfo",
    "Record",
    "RedisConnectionError",
    "RedisTimeoutError",
    "ReplicationError",
    "Retry",
    "RoleStats",
    "ScheduleInfo",
    "ScriptError",
    "Settings",
    "Stats",
    "Task",
    "TaskContext",
    "TaskDef",
    "TaskEvent",
    "TaskExistsError",
    "TaskInfo",
    "TaskManager",
    "TaskProcessingPlayground",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskUpdate",
    "UnknownScheduleError",
    "UnknownTaskError",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "current_task",
    "register_type",
]


def test_public_api_is_exactly_this() -> None:
    assert sorted(ceylon_redis.__all__) == PUBLIC_API


def test_all_is_sorted_and_unique() -> None:
    assert list(ceylon_redis.__all__) == sorted(ceylon_redis.__all__)
    assert len(set(ceylon_redis.__all__)) == len(ceylon_redis.__all__)


def test_every_public_name_exists() -> None:
    for name in ceylon_redis.__all__:
        assert getattr(ceylon_redis, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from ceylon_redis import *", namespace)
    assert set(PUBLIC_API) <= set(namespace)


def test_cycle_check_is_linear_on_a_wide_fan_in() -> None:
    import time

    from ceylon_redis.graph import find_cycle

    edges: dict[str, list[str]] = {f"c{i}": ["root"] for i in range(20000)}
    edges["root"], edges["sink"] = [], [f"c{i}" for i in range(20000)]
    began = time.perf_counter()
    assert find_cycle(edges) is None
    assert time.perf_counter() - began < 2.0  # quadratic took minutes here


def test_outages_are_waited_out_and_other_errors_are_not() -> None:
    busy = redis.ResponseError("BUSY Redis is busy running a script. You can only call "
                               "SCRIPT KILL or SHUTDOWN NOSAVE.")
    assert is_outage(busy)
    assert is_outage(redis.ConnectionError("refused")) and is_outage(redis.TimeoutError())
    assert is_outage(redis.BusyLoadingError("LOADING Redis is loading the dataset in memory"))
    assert not is_outage(redis.ResponseError("BUSYGROUP Consumer Group name already exists"))
    assert not is_outage(redis.exceptions.NoPermissionError("NOPERM no permissions"))
    assert not is_outage(ValueError("a bug"))


def test_mistakes_in_api_use_are_validation_errors_naming_them() -> None:
    class SyncProcessor(ceylon_redis.ProcessWorker):
        def _processor(self, request: object, time: int) -> object:  # type: ignore[override]
            return True, 1

    with pytest.raises(ceylon_redis.ValidationError, match=r"_processor must be `async def`"):
        ceylon_redis.Worker(SyncProcessor("p", role="r"), url="embedded://")
    with pytest.raises(ceylon_redis.ValidationError, match="concurrency must be at least 1"):
        ceylon_redis.Worker(lambda d: d, role="r", url="embedded://", concurrency=0)

    async def later(result: object) -> None:
        pass

    with ceylon_redis.Client("embedded://", "units") as client:
        with pytest.raises(ceylon_redis.ValidationError, match="on_result must be a plain"):
            client.wait_many(["x"], timeout=0.1, on_result=later)  # type: ignore[arg-type]
        with pytest.raises(ceylon_redis.ValidationError, match="2 names for 1 items"):
            client.enqueue_many("r", [1], names=["a", "b"])


def test_the_errors_producers_catch_are_exported() -> None:
    for name in ("RedisConnectionError", "RedisTimeoutError", "ProtocolMismatchError",
                 "ScriptError"):
        assert issubclass(getattr(ceylon_redis, name), ceylon_redis.CeylonRedisError)
    assert issubclass(ceylon_redis.RedisTimeoutError, redis.TimeoutError)


def test_url_and_prefix_replace_those_of_given_settings_everywhere() -> None:
    base = ceylon_redis.Settings(url="embedded://", prefix="base")
    for make in (lambda **kw: ceylon_redis.Client(**kw),
                 lambda **kw: ceylon_redis.Coordinator(**kw),
                 lambda **kw: ceylon_redis.Worker(lambda d: d, role="r", **kw)):
        assert make(settings=base, prefix="other").settings.prefix == "other"
        assert make(settings=base).settings.prefix == "base"


def test_enqueue_many_refuses_a_name_or_task_id_for_every_task() -> None:
    from ceylon_redis.protocol import make_specs

    with pytest.raises(ValidationError, match="names="):
        make_specs(Settings(), "role", [1, 2], None, name="same")
    with pytest.raises(ValidationError, match="task_id"):
        make_specs(Settings(), "role", [1, 2], None, task_id="same")
    specs = make_specs(Settings(), "role", [1, 2, 3], None, max_attempts=2, delay=5)
    assert len({s.id for s in specs}) == 3
    assert {(s.max_attempts, s.due) for s in specs} == {(2, "+5000")}
