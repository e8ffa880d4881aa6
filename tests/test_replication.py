"""Sentinel and Cluster URLs and waiting for replicas: parsing and refusing bad URLs (no Redis), and
``wait_replicas`` against a Redis with no replica (the failover itself: test_sentinel.py)."""

from __future__ import annotations

import re

import pytest
import redis

from ceylon_redis import AsyncClient, Client, ReplicationError, Settings, TaskDef, TaskStatus
from ceylon_redis.connection import async_redis
from ceylon_redis.errors import RedisConnectionError, ValidationError
from ceylon_redis.outages import is_outage
from ceylon_redis.sentinel import SentinelTarget
from ceylon_redis.settings import redact_url


def test_a_sentinel_url_names_sentinels_master_db_and_both_credentials() -> None:
    target = SentinelTarget.parse(
        "redis+sentinel://app:s3cret@10.0.0.1:26379,[::1]:26380/my-master/3"
        "?sentinel_password=other")
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (target.master, target.db) == ("my-master", 3)
    assert (target.username, target.password) == ("app", "s3cret")
    assert (target.sentinel_username, target.sentinel_password) == (None, "other")
    plain = SentinelTarget.parse("redis+sentinel://h:1/m")
    assert (plain.db, plain.password, plain.sentinel_password) == (0, None, None)


@pytest.mark.parametrize(("url", "names"), [
    ("redis+sentinel://h:26379", "/<master name>"),
    ("redis+sentinel://h:26379/m/x", "database 'x'"),
    ("redis+sentinel://h/m", "'h' in"),
    ("redis+sentinel://:pw@h:1,h:x/m", "'h:x'"),
    ("redis+sentinel://h:1/m?master_password=x", "master_password"),
    ("redis+sentinel:///m", "/<master name>"),
])
def test_a_bad_sentinel_url_is_refused_naming_the_problem(url: str, names: str) -> None:
    with pytest.raises(ValidationError) as exc:
        SentinelTarget.parse(url)
    assert names in str(exc.value)
    assert "pw" not in str(exc.value)


def test_sentinel_passwords_are_redacted() -> None:
    url = "redis+sentinel://:pw@h:1,h:2/m/0?sentinel_password=spw"
    assert redact_url(url) == "redis+sentinel://***@h:1,h:2/m/0?sentinel_password=***"


def test_a_client_on_a_sentinel_url_raises_a_connection_error_naming_it() -> None:
    settings = Settings(url="redis+sentinel://127.0.0.1:1/nomaster", socket_timeout=0.5)
    with Client(settings=settings) as client, pytest.raises(redis.ConnectionError):
        client.enqueue("r", 1)


def test_wait_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="wait_replicas"):
        Settings(wait_replicas=-1)
    with pytest.raises(ValidationError, match="wait_timeout"):
        Settings(wait_timeout=0)


@pytest.mark.redis
def test_enqueues_without_enough_replicas_raise_naming_the_tasks_which_stay(
        redis_url: str, prefix: str) -> None:
    settings = Settings(url=redis_url, prefix=prefix, wait_replicas=1, wait_timeout=0.05)
    with Client(settings=settings) as client:
        with pytest.raises(ReplicationError, match="0 of 1 replicas") as one:
            client.enqueue("r", 1, task_id="one")
        assert one.value.task_ids == ["one"]
        with pytest.raises(ReplicationError) as many:
            client.enqueue_many("r", range(1500))
        assert len(many.value.task_ids) == 1500
        with pytest.raises(ReplicationError) as graph:
            client.enqueue_graph([TaskDef("r", 1, id="g1"), TaskDef("r", 2, id="g2",
                                                                    depends_on=["g1"])])
        assert graph.value.task_ids == ["g1", "g2"]
        for tid in ["one", *many.value.task_ids[::500], "g1", "g2"]:
            assert client.get(tid).status in (TaskStatus.QUEUED, TaskStatus.WAITING)


@pytest.mark.redis
async def test_async_enqueues_wait_for_replicas_too(redis_url: str, prefix: str) -> None:
    settings = Settings(url=redis_url, prefix=prefix, wait_replicas=1, wait_timeout=0.05)
    async with AsyncClient(settings=settings) as client:
        with pytest.raises(ReplicationError):
            await client.enqueue("r", 1, task_id="a1")
        with pytest.raises(ReplicationError):
            await client.enqueue_and_wait("r", 1, timeout=1)
    async with AsyncClient(settings=settings.with_(wait_replicas=0)) as client:
        assert (await client.get("a1")).status == TaskStatus.QUEUED


def test_a_bad_cluster_url_is_refused_naming_the_problem() -> None:
    from ceylon_redis.cluster import sync_cluster_client

    for url, names in [("redis+cluster://", "host:port"), ("redis+cluster://h/", "'h'"),
                       ("redis+cluster://h:1/3", "database 0 only"),
                       ("redis+cluster://h:1?x=1", "database 0 only")]:
        with pytest.raises(ValidationError) as exc:
            sync_cluster_client(url)
        assert names in str(exc.value), url


async def test_an_unreachable_cluster_is_an_explained_connection_error() -> None:
    from benchmarks.redis_server import free_port

    url = f"redis+cluster://127.0.0.1:{free_port()}"
    named = re.escape(f"cannot reach Redis at {url}: Redis Cluster cannot be connected")
    with pytest.raises(RedisConnectionError, match=named), Client(url, "p") as client:
        client.enqueue("r", 1)
    with pytest.raises(RedisConnectionError, match=named):
        async with AsyncClient(url, "p") as aclient:
            await aclient.enqueue("r", 1)
    daemons = async_redis(url)  # no timeout: a daemon's, which waits outages out
    with pytest.raises(redis.ConnectionError) as exc:
        await daemons.ping()
    assert is_outage(exc.value)
    pipe = async_redis(url).pipeline(transaction=False)
    pipe.get("k")
    with pytest.raises(redis.ConnectionError) as exc:
        await pipe.execute()
    assert is_outage(exc.value)


def test_wait_replicas_is_refused_on_a_cluster() -> None:
    with pytest.raises(ValidationError, match="not supported on a Redis Cluster"):
        Settings(url="redis+cluster://h:7000", wait_replicas=1)
