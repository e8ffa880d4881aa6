"""Aggregating results, from Ceylon's task-processing tutorial, on ceylon-redis.

Runs tasks with mixed outcomes (some succeed, some fail by returning False,
one raises), then summarises them with ``aggregate_results``. Also shows the
playground's bookkeeping: ``playground.task_manager.get_task(task_id).status``
follows each task's result, ``playground.llm_agents`` lists the workers, and a
task submitted with ``wait_for_completion=False`` returns at once; its status
becomes COMPLETED when a worker has finished it.

    python examples/aggregation.py
"""

import asyncio
import os
import time as clock

from ceylon_redis import (
    ProcessRequest,
    ProcessWorker,
    Task,
    TaskProcessingPlayground,
    TaskStatus,
)

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))


class WorkerProcessor(ProcessWorker):
    def __init__(self, name: str, skill_level: int):
        super().__init__(name=name, role="worker")
        self.skill_level = skill_level

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        difficulty = request.data
        await asyncio.sleep(difficulty * 0.1 * SCALE)  # Simulate work
        if difficulty < 0:
            raise ValueError(f"invalid difficulty {difficulty}")
        success = self.skill_level >= difficulty
        return success, {"worker": self.name, "difficulty": difficulty}


def aggregate_results(results):
    successful = [r for r in results if r.success]
    return {
        "success_rate": len(successful) / len(results) if results else 0.0,
        "total_tasks": len(results),
        "successful_tasks": len(successful),
    }


DIFFICULTIES = [1, 3, 5, 7, 9, -1]


async def wait_for_status(playground, task_id, status, timeout=10.0):
    """Poll the playground's task manager until the task reaches ``status``."""
    deadline = clock.monotonic() + timeout
    while playground.task_manager.get_task(task_id).status != status:
        if clock.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} not {status.value} after {timeout} s")
        await asyncio.sleep(0.05 * SCALE)
    return playground.task_manager.get_task(task_id).status


async def main() -> dict:
    playground = TaskProcessingPlayground(name="aggregation_playground", port=8000)
    workers = [WorkerProcessor("Junior", skill_level=3), WorkerProcessor("Senior", skill_level=6)]
    async with playground.play(workers=workers) as active_playground:
        print("Workers:", [agent.name for agent in playground.llm_agents])
        tasks = [Task(name=f"Task {i}", processor="worker", input_data={"data": d})
                 for i, d in enumerate(DIFFICULTIES, start=1)]
        results = await asyncio.gather(
            *[active_playground.add_and_execute_task(task) for task in tasks])
        statuses = {}
        for task, result in zip(tasks, results):
            status = playground.task_manager.get_task(task.id).status
            statuses[task.name] = status
            detail = result.output if result.success else result.error
            print(f"{task.name}: {status.value} ({detail})")

        summary = aggregate_results(results)
        print(f"Success rate: {summary['success_rate']:.0%} "
              f"({summary['successful_tasks']}/{summary['total_tasks']})")

        # Fire and forget: the call returns None at once; the status follows the result.
        background = Task(name="Background", processor="worker", input_data={"data": 2})
        returned = await active_playground.add_and_execute_task(
            background, wait_for_completion=False)
        status_at_submit = playground.task_manager.get_task(background.id).status
        final_status = await wait_for_status(playground, background.id, TaskStatus.COMPLETED)
        print(f"{background.name}: {status_at_submit.value} at submission, "
              f"{final_status.value} later")

    return {
        "results": results,
        "summary": summary,
        "statuses": statuses,
        "agents": [agent.name for agent in playground.llm_agents],
        "skills": {w.name: w.skill_level for w in workers},
        "background": {"returned": returned, "status_at_submit": status_at_submit,
                       "final_status": final_status,
                       "result": playground.task_manager.get_task(background.id).result},
    }


if __name__ == "__main__":
    asyncio.run(main())
