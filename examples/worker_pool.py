"""A worker pool, from Ceylon's task-processing tutorial, on ceylon-redis.

Several workers of one role share its queue: each task goes to exactly one of
them, whichever is free. Tasks are submitted together and run in parallel.

    python examples/worker_pool.py
"""

import asyncio
import os
from collections import Counter
from dataclasses import dataclass

from ceylon_redis import ProcessRequest, ProcessWorker, Task, TaskProcessingPlayground

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
        await asyncio.sleep(task.difficulty * 0.1 * SCALE)  # Simulate work
        success = self.skill_level >= task.difficulty
        return success, {"task_id": task.id, "worker": self.name,
                         "difficulty": task.difficulty}


async def main(num_workers: int = 4, num_tasks: int = 16) -> dict:
    workers = [WorkerProcessor(f"Worker-{i}", skill_level=5) for i in range(num_workers)]
    work = [WorkTask(id=i, description=f"Task {i}", difficulty=i % 7 + 1)
            for i in range(num_tasks)]
    playground = TaskProcessingPlayground(name="pool_playground", port=8000)
    async with playground.play(workers=workers) as active_playground:
        tasks = [Task(name=f"Task {w.id}", processor="worker", input_data={"data": w})
                 for w in work]
        results = await asyncio.gather(
            *[active_playground.add_and_execute_task(task) for task in tasks])

    per_worker = Counter(r.output["worker"] for r in results)
    for task, result in zip(tasks, results):
        verdict = "succeeded" if result.success else "failed"
        print(f"{task.name} (difficulty {result.output['difficulty']}) {verdict} "
              f"on {result.output['worker']}")
    print("Tasks per worker:", dict(sorted(per_worker.items())))
    successes = sum(1 for r in results if r.success)
    print(f"Success rate: {successes / len(results):.0%}")
    return {"results": results, "per_worker": per_worker,
            "workers": [w.name for w in workers], "difficulties": [w.difficulty for w in work]}


if __name__ == "__main__":
    asyncio.run(main())
