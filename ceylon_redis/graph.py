"""Checking a set of tasks with dependencies before it is enqueued in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import DependencyError


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle among ``edges`` (task -> prerequisites), as a path, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in edges:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            prereqs = [p for p in edges.get(node, ()) if p in edges]
            if i < len(prereqs):
                stack.append((node, i + 1))
                nxt = prereqs[i]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt):], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def check_acyclic(edges: Mapping[str, Sequence[str]]) -> None:
    """Raise DependencyError naming the cycle if ``edges`` has one."""
    cycle = find_cycle(edges)
    if cycle:
        raise DependencyError("dependency cycle: " + " -> ".join(cycle))
