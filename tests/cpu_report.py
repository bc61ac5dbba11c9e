"""Where the suite's CPU goes: a pytest plugin that writes each test's wall and CPU seconds.

    INDORCH_TEST_CPU_REPORT=.state/test-cpu.jsonl make test   (tests/conftest.py registers it)

CPU is the test process's own plus that of the child processes it reaped during the test (a
server a fixture started and stopped, a CLI run): on two cores the suite is bound by it, so its
largest consumers are where a faster suite starts. One JSON line per test phase goes to
``$INDORCH_TEST_CPU_REPORT``, suffixed with the xdist worker (``test-cpu-gw0.jsonl``...).
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _report_path() -> Path:
    path = Path(os.environ["INDORCH_TEST_CPU_REPORT"])
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return path.with_name(f"{path.stem}-{worker}{path.suffix}") if worker else path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    wall, own, children = (
        time.monotonic(),
        _cpu(resource.RUSAGE_SELF),
        _cpu(resource.RUSAGE_CHILDREN),
    )
    yield
    line = {
        "test": item.nodeid,
        "wall": round(time.monotonic() - wall, 3),
        "cpu_self": round(_cpu(resource.RUSAGE_SELF) - own, 3),
        "cpu_children": round(_cpu(resource.RUSAGE_CHILDREN) - children, 3),
    }
    path = _report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as report:
        report.write(json.dumps(line) + "\n")


def summarize(paths: list[Path], top: int = 25) -> str:
    """The test files that cost the most CPU, with their wall time, from reports written here."""
    files: dict[str, list[float]] = {}
    for path in paths:
        for raw in path.read_text().splitlines():
            line = json.loads(raw)
            totals = files.setdefault(line["test"].split("::")[0], [0.0, 0.0, 0.0, 0])
            totals[0] += line["cpu_self"]
            totals[1] += line["cpu_children"]
            totals[2] += line["wall"]
            totals[3] += 1
    rows = sorted(files.items(), key=lambda item: -(item[1][0] + item[1][1]))
    cpu = sum(own + children for own, children, _, _ in files.values())
    lines = [f"{'file':70} {'tests':>5} {'cpu s':>8} {'self':>8} {'children':>8} {'wall s':>8}"]
    for name, (own, children, wall, count) in rows[:top]:
        lines.append(
            f"{name[:70]:70} {count:5d} {own + children:8.1f} {own:8.1f} {children:8.1f} "
            f"{wall:8.1f}"
        )
    lines.append(f"{'all ' + str(len(files)) + ' files':70} {'':5} {cpu:8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summarize([Path(arg) for arg in sys.argv[1:]]))
