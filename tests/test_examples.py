"""The tutorial examples in examples/ run and do what they say, on real and embedded Redis.

Each example's ``main()`` runs in-process with its sleeps scaled down
(CEYLON_EXAMPLE_TIME_SCALE=0.01), once against the real Redis of the test
suite (its own key prefix, deleted afterwards) and once against the embedded
in-process Redis (``embedded://``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections import Counter
from types import ModuleType

import pytest

from ceylon_redis import AsyncClient, TaskResult, TaskStatus, ValidationError

TIME_SCALE = "0.01"


@pytest.fixture(params=["redis", "embedded"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the playground at a real Redis (own prefix, cleaned up) or the embedded one."""
    # a real Redis skips (or fails under CI) when none answers
    url = request.getfixturevalue("redis_url") if request.param == "redis" else "embedded://"
    prefix = request.getfixturevalue("prefix")  # after redis_url, so its keys get deleted
    monkeypatch.setenv("CEYLON_REDIS_URL", url)
    monkeypatch.setenv("CEYLON_REDIS_PREFIX", prefix)
    monkeypatch.setenv("CEYLON_EXAMPLE_TIME_SCALE", TIME_SCALE)
    return str(request.param)


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``examples.<name>`` with its time scale set for the test."""
    module = importlib.import_module(f"examples.{name}")
    monkeypatch.setattr(module, "SCALE", float(TIME_SCALE))
    return module


def worker_counts(results: list[TaskResult]) -> Counter[str]:
    return Counter(r.output["worker"] for r in results)


async def test_skill_levels(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("skill_levels", monkeypatch)
    skills = {w.name: w.skill_level for w in example.workers}
    assert skills == {"Junior": 3, "Intermediate": 6, "Senior": 9}

    results = await example.main()

    assert [r.output["difficulty"] for r in results] == [2, 5, 8, 3, 9, 6, 1, 7]
    for r in results:
        worker, difficulty = r.output["worker"], r.output["difficulty"]
        assert r.success == (skills[worker] >= difficulty), (worker, difficulty, r)
        assert r.status is (TaskStatus.COMPLETED if r.success else TaskStatus.FAILED)
        if not r.success:
            assert r.error == "processor reported failure"
    # difficulty 9 only the Senior can do; 1 and 2 everyone can
    assert [r.success for r in results if r.output["difficulty"] <= 3] == [True, True, True]


async def test_dependencies(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("dependencies", monkeypatch)

    out = await example.main()

    ids, r1, r2, r3 = out["ids"], out["task1"], out["task2"], out["task3"]
    assert r1.success and r2.success
    assert r1.output["value"] == 10 and r2.output["value"] == 20
    assert r3.success, r3.error
    # The aggregator saw each prerequisite's output under its id, and summed them.
    assert r3.output["inputs"] == {ids["task1"]: r1.output, ids["task2"]: r2.output}
    assert r3.output["sum"] == 30
    assert r3.output["worker"] == "Aggregator"
    assert {r1.output["worker"], r2.output["worker"]} <= {"Worker-1", "Worker-2"}


async def test_error_handling(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("error_handling", monkeypatch)

    results = await example.main()

    assert results["ok"].success and results["ok"].output == {"value": 25.0}
    expected_errors = {
        "zero": "ZeroDivisionError: division by zero",
        "negative": "ValueError: negative input: -3",
        "text": "TypeError: expected a number, got 'ten'",
    }
    for name, text in expected_errors.items():
        result = results[name]
        assert result.success is False, name
        assert result.status is TaskStatus.FAILED
        assert result.error.startswith(text), result.error
        assert "error_handling.py" in result.error  # where it was raised
    # returning (False, output) fails without an exception and keeps the output
    assert results["too-large"].success is False
    assert results["too-large"].error == "processor reported failure"
    assert results["too-large"].output == {"reason": "too large", "input": 5000}
    # retried after two exceptions, succeeded on the third attempt
    assert results["flaky"].success, results["flaky"].error
    assert results["flaky"].output == {"value": "recovered", "attempt": 3}
    # a bad submission raises from add_and_execute_task: the tutorial's except branch
    assert isinstance(results["bad role"], ValidationError)
    assert "no such role!" in str(results["bad role"])


async def test_pipeline(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("pipeline", monkeypatch)

    runs = await example.main()

    assert set(runs) == {"group", "group_reversed", "staged"}
    for name, (prep, process, aggregate) in runs.items():
        assert prep.success and process.success and aggregate.success, (name, runs[name])
        assert [prep.output["stage"], process.output["stage"], aggregate.output["stage"]] == [
            "prep", "process", "aggregate"]
        # each stage's output contains the previous one's ...
        assert process.output["previous"] == prep.output
        assert aggregate.output["previous"] == process.output
        # ... and it started only once the previous one had finished
        assert prep.output["finished"] <= process.output["started"], name
        assert process.output["finished"] <= aggregate.output["started"], name
        assert prep.output["records"] == ["alpha", "beta", "gamma", "delta"]
        assert aggregate.output["count"] == 4
        assert aggregate.output["total_length"] == 19


async def test_worker_pool(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("worker_pool", monkeypatch)

    out = await example.main()

    results = out["results"]
    assert out["workers"] == ["Worker-0", "Worker-1", "Worker-2", "Worker-3"]
    assert [r.output["difficulty"] for r in results] == out["difficulties"]
    assert len(results) == 16
    for r in results:
        assert r.success == (r.output["difficulty"] <= 5)  # skill level 5
    used = worker_counts(results)
    assert set(used) <= set(out["workers"])
    assert len(used) > 1, used
    assert sum(used.values()) == 16


async def test_batching(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("batching", monkeypatch)

    out = await example.main()

    results = out["results"]
    assert len(results) == 10 and all(r.success for r in results)
    assert [r.output["batch_id"] for r in results] == list(range(10))
    assert all(r.output["data_was_none"] for r in results)
    assert out["per_worker"] == worker_counts(results)


async def test_batching_200_tasks_gathered(backend: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """200 concurrent add_and_execute_task calls all complete, spread over the workers.

    Fails with the installed redis-py (8.x): its connection pools allow 100 connections
    and raise MaxConnectionsError beyond, and the playground shares one such pool among
    all concurrent calls (see ceylon_redis/connection.py async_redis).
    """
    example = load("batching", monkeypatch)

    out = await example.main(batch_size=200)

    results = out["results"]
    assert len(results) == 200
    assert all(r.success for r in results), [r.error for r in results if not r.success][:3]
    assert sorted(r.output["batch_id"] for r in results) == list(range(200))
    assert all(r.output["data_was_none"] for r in results)
    assert len(out["per_worker"]) > 1, out["per_worker"]
    assert sum(out["per_worker"].values()) == 200


async def test_aggregation(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("aggregation", monkeypatch)

    out = await example.main()

    results, summary, skills = out["results"], out["summary"], out["skills"]
    assert out["agents"] == ["Junior", "Senior"]
    assert len(results) == len(example.DIFFICULTIES)
    successes = sum(1 for r in results if r.success)
    assert summary == {"success_rate": successes / len(results),
                       "total_tasks": len(results), "successful_tasks": successes}
    assert 1 <= successes <= len(results) - 3  # mixed: 7, 9 and -1 always fail
    for difficulty, r, status in zip(example.DIFFICULTIES, results, out["statuses"].values()):
        assert status is (TaskStatus.COMPLETED if r.success else TaskStatus.FAILED)
        if difficulty < 0:
            assert r.error.startswith("ValueError: invalid difficulty -1"), r.error
        else:
            assert r.success == (skills[r.output["worker"]] >= difficulty)
    bg = out["background"]
    assert bg["returned"] is None
    assert bg["status_at_submit"] is TaskStatus.PENDING
    assert bg["final_status"] is TaskStatus.COMPLETED
    assert bg["result"].success and bg["result"].output["difficulty"] == 2


def test_aggregate_results_counts() -> None:
    from examples.aggregation import aggregate_results

    results = [TaskResult(success=s) for s in (True, False, True, True)]
    assert aggregate_results(results) == {
        "success_rate": 0.75, "total_tasks": 4, "successful_tasks": 3}
    assert aggregate_results([])["total_tasks"] == 0


async def test_graphs(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("graphs", monkeypatch)
    monkeypatch.setattr(example, "BROKEN", {"shard-3"})

    out = await example.main()

    first, second = out["first"], out["second"]
    assert first["fetch-shard-3"].status is TaskStatus.FAILED
    assert first["summary"].output == {"rows": 700, "complete": False,
                                       "missing": ["fetch-shard-3"]}
    assert first["publish"].status is TaskStatus.FAILED
    assert "missing fetch-shard-3" in first["publish"].error
    assert (out["night1"].status, out["night1"].failed) == ("failed", 2)
    assert out["retried"] == 3  # the shard, the summary that ran without it, publish
    assert second["publish"].output == "published 1000 rows"
    assert out["night2"].status == "completed"
    overall = out["stats"].overall
    assert (overall.completed, overall.failed) == (7, 2)  # each final outcome counted once


@pytest.mark.redis
async def test_the_dashboard_tour_keeps_every_page_busy(
        redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = importlib.import_module("examples.dashboard_tour")
    monkeypatch.setattr(example, "URL", redis_url)
    monkeypatch.setattr(example, "PREFIX", prefix)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(example.main(), 6)
    async with AsyncClient(redis_url, prefix) as client:
        roles = {q.role for q in await client.queues()}
        assert {"reports", "imports", "etl"} <= roles
        assert await client.dead_letter_count() >= 1  # import 10 fails for good
        assert [s.id for s in await client.schedules()] == ["hourly-digest"]
        assert (await client.limit("imports")).role_limit.rate == 20
        assert (await client.graph("night-1").info()).total == 6
