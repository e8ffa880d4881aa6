"""The skill-level example of Ceylon's task-processing tutorial, on ceylon-redis.

Only the imports differ from the tutorial (and the sleeps scale with
CEYLON_EXAMPLE_TIME_SCALE, default 1, so tests can run it quickly).

    python examples/skill_levels.py                      # playground, one process
    ceylon-redis worker examples.skill_levels:workers --role worker   # as a daemon
"""

import asyncio
import os
from dataclasses import dataclass

from ceylon_redis import (
    ProcessRequest,
    ProcessWorker,
    Task,
    TaskProcessingPlayground,
    TaskResult,
)

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))


@dataclass
class WorkTask:
    id: int
    description: str
    difficulty: int


class WorkerProcessor(ProcessWorker):
    def __init__(self, name: str, skill_level: int):
        super().__init__(name=name, role="worker")
        self.skill_level = skill_level

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        task = request.data
        await asyncio.sleep(task.difficulty * SCALE)  # Simulate work
        success = self.skill_level >= task.difficulty
        return success, {
            "task_id": task.id,
            "worker": self.name,
            "difficulty": task.difficulty,
        }


workers = [
    WorkerProcessor("Junior", skill_level=3),
    WorkerProcessor("Intermediate", skill_level=6),
    WorkerProcessor("Senior", skill_level=9),
]

tasks = [WorkTask(id=i, description=f"Task {i}", difficulty=d)
         for i, d in enumerate([2, 5, 8, 3, 9, 6, 1, 7], start=1)]


async def main() -> list[TaskResult]:
    playground = TaskProcessingPlayground(name="task_playground", port=8000)
    async with playground.play(workers=workers) as active_playground:
        ceylon_tasks = [
            Task(name=f"Task {task.id}", processor="worker", input_data={"data": task})
            for task in tasks
        ]
        results = []
        for task in ceylon_tasks:
            result = await active_playground.add_and_execute_task(
                task=task, wait_for_completion=True)
            results.append(result)
            if not result.success:
                print(f"Task failed: {result.error}")
            else:
                print(f"{task.name}: {result.output}")
        success_count = sum(1 for r in results if r.success)
        print(f"Success rate: {success_count / len(results):.0%}")
        return results


if __name__ == "__main__":
    asyncio.run(main())
