"""The dependency graph of a decomposition: known tasks, no cycles, at most 10 levels deep."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterable
from graphlib import CycleError, TopologicalSorter

from domain.errors import InvalidInput
from domain.task import MAX_DECOMPOSITION_DEPTH, TaskDependency


def check_dependency_graph(
    task_ids: Collection[str],
    dependencies: Iterable[TaskDependency],
    max_depth: int = MAX_DECOMPOSITION_DEPTH,
) -> list[str]:
    """The order to run `task_ids` in, or `InvalidInput` saying why the graph is refused.

    Every dependency type (FS, SS, FF, SF) orders its two tasks, so all of them count for cycles
    and depth. Among tasks that are ready together, the one earlier in `task_ids` goes first.
    Depth is the number of edges on the longest dependency path: a chain of 11 tasks has depth 10,
    the most `max_depth` allows by default. A cycle is named with arrows reading "depends on".
    """
    tasks = list(task_ids)
    index = {task: position for position, task in enumerate(tasks)}
    if len(index) != len(tasks):
        duplicates = sorted(task for task, count in Counter(tasks).items() if count > 1)
        raise InvalidInput("task_ids", f"duplicate task ids {duplicates}")
    prerequisites: dict[str, set[str]] = {task: set() for task in index}
    for dependency in dependencies:
        for task in (dependency.task_id, dependency.depends_on_id):
            if task not in index:
                raise InvalidInput("dependencies", f"unknown task {task!r}")
        prerequisites[dependency.task_id].add(dependency.depends_on_id)

    try:
        TopologicalSorter(prerequisites).prepare()
    except CycleError as error:
        cycle = reversed(error.args[1])  # graphlib lists it in run order
        raise InvalidInput("dependencies", f"cycle: {' -> '.join(cycle)}") from None

    dependents: dict[str, list[str]] = {task: [] for task in index}
    for task, before in prerequisites.items():
        for prerequisite in before:
            dependents[prerequisite].append(task)
    waiting = {task: len(before) for task, before in prerequisites.items()}
    depth = dict.fromkeys(index, 0)
    deepest_prerequisite: dict[str, str] = {}
    ready = [index[task] for task, count in waiting.items() if count == 0]  # ascending: a heap
    order: list[str] = []
    while ready:
        task = tasks[heapq.heappop(ready)]
        order.append(task)
        for dependent in dependents[task]:
            if depth[task] + 1 > depth[dependent]:
                depth[dependent] = depth[task] + 1
                deepest_prerequisite[dependent] = task
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, index[dependent])

    deepest = max(order, key=depth.__getitem__, default=None)
    if deepest is not None and depth[deepest] > max_depth:
        path = [deepest]
        while path[-1] in deepest_prerequisite:
            path.append(deepest_prerequisite[path[-1]])
        raise InvalidInput(
            "dependencies",
            f"chain of depth {depth[deepest]} (at most {max_depth} allowed): {' -> '.join(path)}",
        )
    return order
