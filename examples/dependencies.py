"""Task dependencies, from Ceylon's task-processing tutorial, on ceylon-redis.

Two "worker" tasks produce values; a third task, for the "aggregator" role,
depends on both. It is held back (WAITING) until both have completed, and its
processor then finds their results in ``request.dependency_data``, a dict from
each prerequisite's id to its TaskResult (``.output``), as in Ceylon.

    python examples/dependencies.py
"""

import asyncio
import os

from ceylon_redis import (
    ProcessRequest,
    ProcessWorker,
    Task,
    TaskProcessingPlayground,
)

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))


class DataWorker(ProcessWorker):
    """Produces a value from its task's data."""

    def __init__(self, name: str):
        super().__init__(name=name, role="worker")

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        await asyncio.sleep(0.5 * SCALE)  # Simulate work
        return True, {"value": request.data * 10, "worker": self.name}


class AggregatorWorker(ProcessWorker):
    """Sums the values its prerequisites produced."""

    def __init__(self, name: str):
        super().__init__(name=name, role="aggregator")

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        results = request.dependency_data or {}  # prerequisite id -> its TaskResult
        inputs = {tid: result.output for tid, result in results.items()}
        total = sum(output["value"] for output in inputs.values())
        return True, {"sum": total, "inputs": inputs, "worker": self.name}


async def main() -> dict:
    playground = TaskProcessingPlayground(name="dependency_playground", port=8000)
    workers = [DataWorker("Worker-1"), DataWorker("Worker-2"), AggregatorWorker("Aggregator")]
    async with playground.play(workers=workers) as active_playground:
        task1 = Task(name="Task 1", processor="worker", input_data={"data": 1})
        task2 = Task(name="Task 2", processor="worker", input_data={"data": 2})
        task3 = Task(
            name="Task 3",
            processor="aggregator",
            dependencies={task1.id, task2.id},
        )

        result1 = await active_playground.add_and_execute_task(task1)
        result2 = await active_playground.add_and_execute_task(task2)
        print(f"{task1.name}: {result1.output}")
        print(f"{task2.name}: {result2.output}")

        result3 = await active_playground.add_and_execute_task(task3)
        if not result3.success:
            print(f"Task failed: {result3.error}")
        else:
            print(f"{task3.name}: sum={result3.output['sum']} "
                  f"from {len(result3.output['inputs'])} prerequisites")
        return {"task1": result1, "task2": result2, "task3": result3,
                "ids": {"task1": task1.id, "task2": task2.id, "task3": task3.id}}


if __name__ == "__main__":
    asyncio.run(main())
