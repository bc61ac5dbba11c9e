"""Every private Dagster name we rely on is still where `instance_plugins.dagster_internals` looks.

A Dagster upgrade that moved one fails here, naming it, rather than at a run's launch.
"""

import importlib

import pytest

from instance_plugins import dagster_internals


@pytest.mark.parametrize("name", [*dagster_internals.__all__, *dagster_internals.LAZY_NAMES])
def test_each_private_dagster_name_still_resolves(name: str) -> None:
    assert getattr(dagster_internals, name) is not None


def test_no_other_module_of_ours_imports_private_dagster() -> None:
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    private = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)
    offenders = [
        str(path.relative_to(root))
        for folder in (
            "domain",
            "resources",
            "services",
            "sensors",
            "assets",
            "orchestrator_defs",
            "instance_plugins",
            "indorch",
            "standins",
            "bench",
            "tests",
        )
        for path in (root / folder).rglob("*.py")
        if path.name != "dagster_internals.py" and private.search(path.read_text())
    ]
    assert offenders == []


def test_the_module_reimports_cleanly() -> None:
    assert importlib.reload(dagster_internals).__all__
