"""Batch processing, from Ceylon's task-processing tutorial, on ceylon-redis.

A batch of tasks is submitted at once with ``asyncio.gather`` and spread over
the role's workers. The tasks carry ``{'batch_id': i}`` and no ``'data'`` key,
so ``request.data`` is None and the processor reads ``request.input_data``.

    python examples/batching.py
"""

import asyncio
import os
from collections import Counter

from ceylon_redis import ProcessRequest, ProcessWorker, Task, TaskProcessingPlayground

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))


class BatchWorker(ProcessWorker):
    def __init__(self, name: str):
        super().__init__(name=name, role="worker")

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        batch_id = request.input_data["batch_id"]  # the whole input_data dict
        await asyncio.sleep(0.1 * SCALE)  # Simulate work
        return True, {"batch_id": batch_id, "worker": self.name,
                      "data_was_none": request.data is None}


async def main(batch_size: int = 10, num_workers: int = 3) -> dict:
    workers = [BatchWorker(f"Worker-{i}") for i in range(num_workers)]
    playground = TaskProcessingPlayground(name="batch_playground", port=8000)
    async with playground.play(workers=workers) as active_playground:
        task_batch = [
            Task(name=f"Batch-{i}", processor="worker", input_data={"batch_id": i})
            for i in range(batch_size)
        ]
        results = await asyncio.gather(
            *[active_playground.add_and_execute_task(task) for task in task_batch])

    per_worker = Counter(r.output["worker"] for r in results if r.success)
    done = sum(1 for r in results if r.success)
    print(f"{done}/{len(results)} batch tasks completed")
    for worker, count in sorted(per_worker.items()):
        print(f"  {worker}: {count} tasks")
    return {"results": results, "per_worker": per_worker}


if __name__ == "__main__":
    asyncio.run(main())
