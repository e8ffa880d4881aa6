"""Checking a set of tasks with dependencies before it is enqueued in one call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from .errors import DependencyError


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle among ``edges`` (task -> prerequisites), as a path, or None.

    Iterative depth-first search, linear in tasks plus edges (a 10,000-wide fan-in
    is 10,000 steps), so deep chains do not hit the recursion limit.
    """
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []  # empty again after each root
    stack: list[tuple[str, Iterator[str]]] = []

    def enter(node: str) -> None:
        state[node] = 1
        path.append(node)
        stack.append((node, iter([p for p in edges.get(node, ()) if p in edges])))

    for root in edges:
        if state.get(root):
            continue
        enter(root)
        while stack:
            node, prereqs = stack[-1]
            nxt = next(prereqs, None)
            if nxt is None:
                stack.pop()
                state[node] = 2
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                enter(nxt)
    return None


def check_acyclic(edges: Mapping[str, Sequence[str]]) -> None:
    """Raise DependencyError naming the cycle if ``edges`` has one."""
    cycle = find_cycle(edges)
    if cycle:
        raise DependencyError("dependency cycle: " + " -> ".join(cycle))
