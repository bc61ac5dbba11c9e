"""A decomposition's dependencies form a DAG of known tasks, at most 10 edges deep.

`check_dependency_graph` returns the order to run the tasks in (ties broken by input order) or
refuses the graph with `InvalidInput("dependencies", ...)` that names the cycle, the unknown task
or the too-deep chain.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.dag import check_dependency_graph
from domain.errors import InvalidInput
from domain.task import MAX_DECOMPOSITION_DEPTH, DependencyType, TaskDependency


def dep(
    task: str, on: str, kind: DependencyType = DependencyType.FINISH_TO_START
) -> TaskDependency:
    return TaskDependency(task_id=task, depends_on_id=on, dependency_type=kind)


def chain(length: int) -> tuple[list[str], list[TaskDependency]]:
    """`length` tasks T0..Tn-1, each depending on the one before (length - 1 edges)."""
    names = [f"T{i}" for i in range(length)]
    return names, [dep(later, earlier) for earlier, later in itertools.pairwise(names)]


@pytest.mark.parametrize(
    ("tasks", "dependencies", "order"),
    [
        # Nothing to run.
        ([], [], []),
        # Independent tasks keep their input order.
        (["c", "a", "b"], [], ["c", "a", "b"]),
        # A depends on B: B first.
        (["a", "b"], [dep("a", "b")], ["b", "a"]),
        # A chain given backwards comes out forwards.
        (["c", "b", "a"], [dep("c", "b"), dep("b", "a")], ["a", "b", "c"]),
        # A diamond: the two middle tasks keep their input order.
        (
            ["end", "left", "right", "start"],
            [dep("end", "left"), dep("end", "right"), dep("left", "start"), dep("right", "start")],
            ["start", "left", "right", "end"],
        ),
        # A ready task earlier in the input goes before a later one whatever came before it.
        (["x", "y", "z"], [dep("x", "z")], ["y", "z", "x"]),
        # Every dependency type orders its two tasks.
        (
            ["a", "b", "c", "d", "e"],
            [
                dep("a", "b", DependencyType.START_TO_START),
                dep("b", "c", DependencyType.FINISH_TO_FINISH),
                dep("c", "d", DependencyType.START_TO_FINISH),
                dep("d", "e", DependencyType.FINISH_TO_START),
            ],
            ["e", "d", "c", "b", "a"],
        ),
        # The same dependency twice (different types) is one edge.
        (
            ["a", "b"],
            [dep("a", "b"), dep("a", "b", DependencyType.START_TO_START)],
            ["b", "a"],
        ),
    ],
)
def test_order_respects_dependencies_and_input_order(
    tasks: list[str], dependencies: list[TaskDependency], order: list[str]
) -> None:
    assert check_dependency_graph(tasks, dependencies) == order


def test_a_two_task_cycle_is_named() -> None:
    with pytest.raises(InvalidInput, match="cycle: a -> b -> a") as refused:
        check_dependency_graph(["a", "b"], [dep("a", "b"), dep("b", "a")])
    assert refused.value.field == "dependencies"


def test_a_longer_cycle_is_named_in_dependency_order() -> None:
    tasks = ["free", "a", "b", "c"]
    dependencies = [dep("a", "b"), dep("b", "c"), dep("c", "a"), dep("a", "free")]
    with pytest.raises(InvalidInput) as refused:
        check_dependency_graph(tasks, dependencies)
    cycle = refused.value.reason.split("cycle: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    # Each arrow reads "depends on".
    edges = {(d.task_id, d.depends_on_id) for d in dependencies}
    assert all(pair in edges for pair in itertools.pairwise(cycle))


def test_a_task_cannot_depend_on_itself() -> None:
    with pytest.raises(InvalidInput, match="itself"):
        dep("a", "a")


@pytest.mark.parametrize(
    "dependency",
    [
        # Depends on a task that is not part of the decomposition.
        dep("a", "ghost"),
        # A dependency of a task that is not part of it.
        dep("ghost", "a"),
    ],
)
def test_a_dependency_on_an_unknown_task_is_refused(dependency: TaskDependency) -> None:
    with pytest.raises(InvalidInput, match="unknown task 'ghost'") as refused:
        check_dependency_graph(["a", "b"], [dependency])
    assert refused.value.field == "dependencies"


def test_duplicate_task_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="'a'") as refused:
        check_dependency_graph(["a", "b", "a"], [])
    assert refused.value.field == "task_ids"


def test_a_chain_of_eleven_tasks_is_the_deepest_allowed() -> None:
    assert MAX_DECOMPOSITION_DEPTH == 10
    names, dependencies = chain(11)  # 10 edges
    assert check_dependency_graph(list(reversed(names)), dependencies) == names


def test_a_chain_of_twelve_tasks_is_too_deep() -> None:
    names, dependencies = chain(12)  # 11 edges
    with pytest.raises(
        InvalidInput, match=r"depth 11 \(at most 10 allowed\): T11 -> T10 -> .* -> T0$"
    ) as refused:
        check_dependency_graph(names, dependencies)
    assert refused.value.field == "dependencies"


def test_the_depth_limit_can_be_lowered() -> None:
    names, dependencies = chain(3)
    assert check_dependency_graph(names, dependencies, max_depth=2) == names
    with pytest.raises(InvalidInput, match=r"depth 2 .*: T2 -> T1 -> T0"):
        check_dependency_graph(names, dependencies, max_depth=1)


def test_depth_counts_the_longest_path_not_the_number_of_edges() -> None:
    # A wide fan-in of 30 tasks onto one is only one edge deep.
    leaves = [f"leaf{i}" for i in range(30)]
    order = check_dependency_graph(["root", *leaves], [dep("root", leaf) for leaf in leaves])
    assert order == [*leaves, "root"]


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[TaskDependency]]:
    """A random DAG: edges only point from a later task to an earlier one of a hidden order."""
    size = draw(st.integers(min_value=0, max_value=12))
    hidden = [f"t{i}" for i in range(size)]
    pairs = [(hidden[j], hidden[i]) for i in range(size) for j in range(i + 1, size)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    return draw(st.permutations(hidden)), [dep(task, on) for task, on in chosen]


@settings(max_examples=200, deadline=None)
@given(graph=dags())
def test_any_dag_comes_out_in_an_order_that_respects_every_dependency(
    graph: tuple[list[str], list[TaskDependency]],
) -> None:
    tasks, dependencies = graph
    order = check_dependency_graph(tasks, dependencies, max_depth=len(tasks))
    assert sorted(order) == sorted(tasks)
    position = {task: index for index, task in enumerate(order)}
    assert all(position[d.depends_on_id] < position[d.task_id] for d in dependencies)
    # Stable: an input already in a valid order comes back unchanged.
    assert check_dependency_graph(order, dependencies, max_depth=len(tasks)) == order
