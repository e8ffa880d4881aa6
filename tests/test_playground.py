"""The playground registers its workers while playing and removes them on exit."""

from __future__ import annotations

import asyncio

import pytest

from ceylon_redis import (
    AsyncClient,
    ProcessRequest,
    ProcessWorker,
    Settings,
    Task,
    TaskProcessingPlayground,
    TaskStatus,
    TaskTimeoutError,
    UnknownTaskError,
    ValidationError,
    Worker,
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


# --- a processor no worker serves (issue 27, item 2) ----------------------------------------


async def test_a_processor_no_worker_serves_is_refused_with_nothing_written(
        prefix: str) -> None:
    """It waited forever: no timeout, no warning, though the playground knows its roles."""
    playground = TaskProcessingPlayground(url="embedded://", prefix=prefix)
    async with playground.play(workers=[Echo("a", role="echo")]) as active:
        for typo, hint in [("ecoh", " (did you mean 'echo'?)"),
                           ("Echo", " (did you mean 'echo'? roles are case-sensitive)"),
                           ("other", "")]:
            task = Task(name="t", processor=typo, input_data={"x": 1})
            with pytest.raises(ValidationError) as info:
                await asyncio.wait_for(active.add_and_execute_task(task), 5)
            assert str(info.value) == (
                f"no worker serves role {typo!r} (Task.processor): this playground's workers "
                f"serve 'echo', and no live worker daemon serves it{hint}; nothing was "
                "enqueued")
            with pytest.raises(UnknownTaskError):
                await active.client.get(task.id)  # type: ignore[union-attr]
        with pytest.raises(ValidationError, match="no worker serves role 'ecoh'"):
            await active.execute_task_group([Task(name="a", processor="echo"),
                                             Task(name="b", processor="ecoh")])
        assert active.task_manager.tasks == {}
        assert [q.role for q in await active.client.queues()] == ["echo"]  # type: ignore[union-attr]


async def test_a_role_an_outside_worker_serves_is_accepted(prefix: str) -> None:
    outside = Worker([Echo("d", role="elsewhere")], settings=Settings(url="embedded://",
                                                                     prefix=prefix))
    running = asyncio.create_task(outside.run())
    await outside.ready.wait()
    try:
        playground = TaskProcessingPlayground(url="embedded://", prefix=prefix)
        async with playground.play(workers=[Echo("a", role="echo")]) as active:
            result = await active.add_and_execute_task(
                Task(name="t", processor="elsewhere", input_data={"x": 2}), timeout=5)
            assert result is not None and result.output == {"x": 2}
    finally:
        outside.stop()
        await running


async def test_without_workers_of_its_own_it_warns_and_the_timeout_ends_the_wait(
        prefix: str) -> None:
    playground = TaskProcessingPlayground(url="embedded://", prefix=prefix)
    async with playground.play() as active:
        task = Task(name="t", processor="later", input_data={"x": 1})
        with pytest.warns(RuntimeWarning, match="no live worker serves role 'later' yet: the "
                                                "task waits until one starts"), \
                pytest.raises(TaskTimeoutError):
            await active.add_and_execute_task(task, timeout=0.2)
        info = await active.client.get(task.id)  # type: ignore[union-attr]
        assert info.status is TaskStatus.QUEUED               # still there for a daemon
        with pytest.warns(RuntimeWarning), pytest.raises(TaskTimeoutError):
            await active.execute_task_group([Task(name="g", processor="later")], timeout=0.2)


class TextProcessor(ProcessWorker):
    """Ceylon's tutorial, as it is written there ("Worker with Dependencies")."""

    async def _processor(self, request: ProcessRequest, time: int) -> object:
        data = request.data
        return data * 5


class AggregateProcessor(ProcessWorker):
    async def _processor(self, request: ProcessRequest, time: int) -> object:
        data = request.data or 0
        for d in request.dependency_data.values():  # type: ignore[union-attr]
            data += d.output
        return data


async def test_ceylons_tutorial_reads_dependency_data_as_task_results(prefix: str) -> None:
    """Ceylon's dependency_data maps ids to TaskResult (its tutorial adds up d.output); ours
    mapped them to the bare output, so the tutorial's code failed (AttributeError)."""
    playground = TaskProcessingPlayground(url="embedded://", prefix=prefix)
    workers = [TextProcessor("text_worker", role="multiply"),
               AggregateProcessor("aggregate_worker", role="aggregate")]
    async with playground.play(workers=workers) as active:
        task1 = Task(name="Process Data 1", processor="multiply", input_data={"data": 5})
        task2 = Task(name="Process Data 2", processor="multiply", input_data={"data": 10})
        task3 = Task(name="Process Data 3", processor="aggregate",
                     dependencies={task1.id, task2.id})
        results = await active.execute_task_group([task1, task2, task3], timeout=10)
    assert results[task3.id].error is None
    assert (results[task1.id].output, results[task2.id].output) == (25, 50)
    assert results[task3.id].output == 75
