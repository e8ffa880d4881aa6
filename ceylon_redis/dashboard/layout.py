"""A graph's tasks placed for drawing: layered by depth (a task one column right of its
deepest prerequisite), rows in order within a column. Plain coordinates: the template
draws them as SVG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..models import TaskInfo

COLUMN, ROW, NODE_W, NODE_H, MARGIN = 190, 56, 150, 36, 12
MAX_NODES = 400
"""A graph with more tasks is listed, not drawn (a drawing of thousands helps nobody)."""


@dataclass(frozen=True)
class Node:
    task: TaskInfo
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Drawing:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def depths(tasks: Sequence[TaskInfo]) -> dict[str, int]:
    """Each task's longest path from a task with no prerequisite in the graph."""
    by_id = {t.id: t for t in tasks}
    depth: dict[str, int] = {}
    opened: set[str] = set()
    for start in by_id:
        stack = [(start, False)]
        while stack:  # iterative DFS: a deep chain must not hit the recursion limit
            tid, ready = stack.pop()
            if tid in depth:
                continue
            deps = [d for d in by_id[tid].depends_on if d in by_id]
            if ready:
                depth[tid] = 1 + max((depth.get(d, 0) for d in deps), default=-1)
                continue
            if tid in opened:  # a cycle (graphs have none; a hand-edited hash might)
                continue
            opened.add(tid)
            stack.append((tid, True))
            stack.extend((d, False) for d in deps if d not in depth)
    return depth


def draw(tasks: Sequence[TaskInfo]) -> Drawing | None:
    """Coordinates of every task and edge; None when the graph is too large to draw."""
    if len(tasks) > MAX_NODES or not tasks:
        return None
    depth = depths(tasks)
    columns: dict[int, list[TaskInfo]] = {}
    for t in sorted(tasks, key=lambda t: (depth[t.id], t.name or t.id)):
        columns.setdefault(depth[t.id], []).append(t)
    where: dict[str, Node] = {}
    for col, members in columns.items():
        for row, t in enumerate(members):
            where[t.id] = Node(t, MARGIN + col * COLUMN, MARGIN + row * ROW)
    edges = [Edge(where[d].x + NODE_W, where[d].y + NODE_H // 2, n.x, n.y + NODE_H // 2)
             for n in where.values() for d in n.task.depends_on if d in where]
    width = MARGIN * 2 + (max(columns) + 1) * COLUMN
    height = MARGIN * 2 + max(len(m) for m in columns.values()) * ROW
    return Drawing(list(where.values()), edges, width, height)
