"""The playground registers its workers while playing and removes them on exit."""

from __future__ import annotations

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
