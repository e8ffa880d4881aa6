"""The playground registers its workers while playing and removes them on exit."""

from __future__ import annotations

import asyncio

import pytest

from ceylon_redis import (
    AsyncClient,
    ProcessRequest,
    ProcessWorker,
    Task,
    TaskProcessingPlayground,
    TaskStatus,
)


class Echo(ProcessWorker):
    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, object]:
        return True, request.input_data


async def test_play_registers_workers_and_deregisters_them_on_exit(prefix: str) -> None:
    playground = TaskProcessingPlayground(name="p", port=1234, url="embedded://", prefix=prefix)
    workers = [Echo("a", role="echo"), Echo("b", role="echo")]
    async with playground.play(workers=workers) as active:
        assert active.llm_agents == workers
        async with AsyncClient("embedded://", prefix) as client:
            assert sorted(w.id.split("-")[0] for w in await client.workers()) == ["a", "b"]
            task = Task(name="t", processor="echo", input_data={"x": 1})
            assert await active.add_and_execute_task(task, wait_for_completion=False) is None
            await client.wait(task.id, timeout=5)
    async with AsyncClient("embedded://", prefix) as client:
        assert await client.workers() == []
        assert all(q.consumers == 0 for q in await client.queues())
    assert playground.task_manager.get_task(task.id).status is TaskStatus.COMPLETED


async def test_playground_outside_play_says_how_to_use_it() -> None:
    with pytest.raises(RuntimeError, match=r"inside 'async with playground\.play"):
        await TaskProcessingPlayground().add_and_execute_task(Task(name="t", processor="r"))


class Picky(ProcessWorker):
    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, object]:
        return request.data > 0, request.data


async def test_playground_keeps_statistics_with_its_own_coordinator(prefix: str) -> None:
    playground = TaskProcessingPlayground(url="embedded://", prefix=prefix)
    async with playground.play(workers=[Picky("p", role="picky")]) as active:
        client = active.client
        assert client is not None and await client.coordinators_alive() == 1
        tasks = [Task(name=f"t{i}", processor="picky", input_data={"data": i - 1})
                 for i in range(4)]
        results = await active.execute_task_group(tasks)
        assert [r.success for r in results.values()] == [False, False, True, True]
        for _ in range(100):
            st = await client.stats()
            if st.overall.finished == 4:
                break
            await asyncio.sleep(0.05)
        (picky,) = st.roles
        assert (picky.completed, picky.failed, picky.success_rate) == (2, 2, 0.5)
    async with AsyncClient("embedded://", prefix) as client:
        assert await client.coordinators_alive() == 0


async def test_playground_without_coordinator(prefix: str) -> None:
    playground = TaskProcessingPlayground(url="embedded://", prefix=prefix, coordinator=False)
    async with playground.play(workers=[Picky("p", role="picky")]) as active:
        assert (await active.add_and_execute_task(
            Task(name="t", processor="picky", input_data={"data": 1}))).success  # type: ignore[union-attr]
        assert active.client is not None and await active.client.coordinators_alive() == 0
