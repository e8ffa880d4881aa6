"""A three-stage pipeline, from Ceylon's task-processing tutorial, on ceylon-redis.

prep_worker -> process_worker -> aggregator: each stage is a task for its own
role and depends on the stage before, whose output it finds in
``request.dependency_data``. The pipeline runs twice: as one group
(``execute_task_group``, which takes the tasks in any order: the dependencies
decide when each runs) and stage by stage, waiting for each.

    python examples/pipeline.py
"""

import asyncio
import os
import time as clock

from ceylon_redis import ProcessRequest, ProcessWorker, Task, TaskProcessingPlayground

SCALE = float(os.environ.get("CEYLON_EXAMPLE_TIME_SCALE", "1"))


def previous_output(request: ProcessRequest):
    """The output of the one stage this stage depends on (None for the first stage)."""
    results = list((request.dependency_data or {}).values())  # TaskResults, as in Ceylon
    return results[0].output if results else None


class PrepStage(ProcessWorker):
    """Stage 1: clean the raw records (drop empty ones, strip and lower-case)."""

    def __init__(self, name: str):
        super().__init__(name=name, role="prep_worker")

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        started = clock.time()
        await asyncio.sleep(0.3 * SCALE)  # Simulate work
        records = [r.strip().lower() for r in request.data if r.strip()]
        return True, {"stage": "prep", "records": records,
                      "started": started, "finished": clock.time()}


class ProcessStage(ProcessWorker):
    """Stage 2: turn each prepared record into a (word, length) pair."""

    def __init__(self, name: str):
        super().__init__(name=name, role="process_worker")

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        started = clock.time()
        prep = previous_output(request)
        await asyncio.sleep(0.3 * SCALE)  # Simulate work
        lengths = {record: len(record) for record in prep["records"]}
        return True, {"stage": "process", "lengths": lengths, "previous": prep,
                      "started": started, "finished": clock.time()}


class AggregateStage(ProcessWorker):
    """Stage 3: summarise the processed records."""

    def __init__(self, name: str):
        super().__init__(name=name, role="aggregator")

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict]:
        started = clock.time()
        processed = previous_output(request)
        await asyncio.sleep(0.3 * SCALE)  # Simulate work
        lengths = processed["lengths"]
        return True, {"stage": "aggregate", "count": len(lengths),
                      "total_length": sum(lengths.values()), "previous": processed,
                      "started": started, "finished": clock.time()}


def make_pipeline(raw: list[str]) -> tuple[Task, Task, Task]:
    prep = Task(name="prep", processor="prep_worker", input_data={"data": raw})
    process = Task(name="process", processor="process_worker", dependencies={prep.id})
    aggregate = Task(name="aggregate", processor="aggregator", dependencies={process.id})
    return prep, process, aggregate


RAW = ["  Alpha", "", "BETA ", "gamma", "   ", "Delta"]


async def main() -> dict:
    playground = TaskProcessingPlayground(name="pipeline_playground", port=8000)
    workers = [PrepStage("Prep"), ProcessStage("Processor"),
               AggregateStage("Aggregator")]
    runs = {}
    async with playground.play(workers=workers) as active_playground:
        # As one group, listed in order ...
        prep, process, aggregate = make_pipeline(RAW)
        results = await active_playground.execute_task_group([prep, process, aggregate])
        runs["group"] = [results[t.id] for t in (prep, process, aggregate)]

        # ... and listed backwards: the dependencies still decide the order.
        prep, process, aggregate = make_pipeline(RAW)
        results = await active_playground.execute_task_group([aggregate, process, prep])
        runs["group_reversed"] = [results[t.id] for t in (prep, process, aggregate)]

        # Stage by stage, waiting for each.
        prep, process, aggregate = make_pipeline(RAW)
        runs["staged"] = []
        for task in (prep, process, aggregate):
            result = await active_playground.add_and_execute_task(task)
            runs["staged"].append(result)
            if not result.success:
                print(f"Task failed: {result.error}")
                break

    for name, stages in runs.items():
        final = stages[-1]
        if final.success:
            print(f"{name}: {final.output['count']} records, "
                  f"total length {final.output['total_length']}")
        else:
            print(f"{name}: failed: {final.error}")
    return runs


if __name__ == "__main__":
    asyncio.run(main())
