"""``ceylon-redis demo``: the skill-level example of Ceylon's tutorial, on Redis."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .playground import Task, TaskProcessingPlayground
from .process import ProcessRequest, ProcessWorker


@dataclass
class WorkTask:
    id: int
    description: str
    difficulty: int


class SkillWorker(ProcessWorker):
    """Succeeds at tasks no harder than its skill level; sleeps ``difficulty * scale`` s."""

    def __init__(self, name: str, skill_level: int, scale: float = 1.0) -> None:
        super().__init__(name=name, role="worker")
        self.skill_level = skill_level
        self.scale = scale

    async def _processor(self, request: ProcessRequest, time: int) -> tuple[bool, dict[str, Any]]:
        task = request.data
        await asyncio.sleep(task.difficulty * self.scale)
        success = self.skill_level >= task.difficulty
        return success, {"task_id": task.id, "worker": self.name, "difficulty": task.difficulty}


DIFFICULTIES = (2, 5, 8, 3, 9, 6, 1, 7)


async def run_demo(scale: float = 0.2, url: str | None = None) -> bool:
    """Run the example; print each result and the success rate. True when every task ended."""
    playground = TaskProcessingPlayground(name="task_playground", port=8000, url=url,
                                          prefix="ceylon-demo")
    workers = [SkillWorker("Junior", 3, scale), SkillWorker("Intermediate", 6, scale),
               SkillWorker("Senior", 9, scale)]
    tasks = [WorkTask(i, f"Task {i}", d) for i, d in enumerate(DIFFICULTIES, 1)]
    results = []
    async with playground.play(workers=workers) as active:
        for work in tasks:
            result = await active.add_and_execute_task(
                task=Task(name=f"Task {work.id}", processor="worker", input_data={"data": work}),
                wait_for_completion=True)
            assert result is not None
            results.append(result)
            out = result.output or {}
            verdict = "succeeded" if result.success else "failed"
            print(f"Task {work.id} (difficulty {work.difficulty}) {verdict} on "
                  f"{out.get('worker', '?')}")
    done = sum(1 for r in results if r.success)
    print(f"Success rate: {done}/{len(results)} = {done / len(results):.0%}")
    return len(results) == len(tasks)
