"""Benchmarks: scripts that measure speed and memory (never timed assertions in tests).

`python -m bench.sessions` runs coding sessions through the orchestrator and without it, and
prints and stores (`bench/results/`) the comparison; see that module's documentation.
"""
