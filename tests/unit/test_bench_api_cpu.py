"""The API bench's server CPU: its process tree counted once (the root is among its own
descendants, as `bench.procstat.descendants` lists them), so CPU per request is not doubled."""

from __future__ import annotations

import os
import time

from bench.api import _tree_cpu_seconds


def _burn(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_the_tree_cpu_of_a_lone_process_is_its_own_cpu_time() -> None:
    before_tree, before_own = _tree_cpu_seconds(os.getpid()), time.process_time()
    _burn(0.5)
    tree, own = _tree_cpu_seconds(os.getpid()) - before_tree, time.process_time() - before_own
    assert 0.7 * own <= tree <= 1.3 * own, (tree, own)
