"""Error handling, from Ceylon's task-processing tutorial, on ceylon-redis.

A processor that raises fails its task: ``result.success`` is False and
``result.error`` holds the exception's type and text (and where it was
raised). A processor that returns ``(False, output)`` fails it too, keeping the
output. Errors of the submission itself (a bad task) are raised by
``add_and_execute_task``, hence the tutorial's ``try``/``except`` around it.
A task with ``max_attempts`` above 1 is retried after an exception.

    python examples/error_handling.py
"""

import asyncio
import os

from ceylon_redis import ProcessRequest, ProcessWorker, Task, TaskProcessingPlayground

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))


class DivisionWorker(ProcessWorker):
    """Divides 100 by its input; raises for zero, negative and non-numeric inputs."""

    def __init__(self, name: str):
        super().__init__(name=name, role="divider")

    async def _processor(self, request: ProcessRequest, time: int):
        value = request.data
        await asyncio.sleep(0.2 * SCALE)  # Simulate work
        if value == "flaky" and request.attempt < 3:
            raise ConnectionError(f"upstream unavailable (attempt {request.attempt})")
        if value == "flaky":
            return {"value": "recovered", "attempt": request.attempt}
        if not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        if value < 0:
            raise ValueError(f"negative input: {value}")
        if value > 1000:
            return False, {"reason": "too large", "input": value}  # fails without raising
        return {"value": 100 / value}  # ZeroDivisionError for 0


async def main() -> dict:
    playground = TaskProcessingPlayground(name="error_playground", port=8000)
    tasks = [
        Task(name="ok", processor="divider", input_data={"data": 4}),
        Task(name="zero", processor="divider", input_data={"data": 0}),
        Task(name="negative", processor="divider", input_data={"data": -3}),
        Task(name="text", processor="divider", input_data={"data": "ten"}),
        Task(name="too-large", processor="divider", input_data={"data": 5000}),
        Task(name="flaky", processor="divider", input_data={"data": "flaky"}, max_attempts=3),
        Task(name="bad role", processor="no such role!", input_data={"data": 1}),
    ]
    results = {}
    async with playground.play(workers=[DivisionWorker("Divider")]) as active_playground:
        for task in tasks:
            try:
                result = await active_playground.add_and_execute_task(task)
                results[task.name] = result
                if not result.success:
                    print(f"Task failed: {result.error}")
                else:
                    print(f"Task {task.name} succeeded: {result.output}")
            except Exception as e:
                results[task.name] = e
                print(f"Error executing task {task.name}: {e}")
    return results


if __name__ == "__main__":
    asyncio.run(main())
