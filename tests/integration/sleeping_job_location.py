"""A code location with one job that sleeps: a run that stays in progress while a test looks at
its process (tests/integration/test_code_server_launcher.py)."""

import time

import dagster as dg

SLEEP_SECONDS = 300


@dg.op
def sleep_a_while() -> None:
    time.sleep(SLEEP_SECONDS)


@dg.job
def sleeping() -> None:
    sleep_a_while()


defs = dg.Definitions(jobs=[sleeping])
