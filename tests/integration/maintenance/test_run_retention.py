"""Retention of Dagster's runs (`orchestrator_defs/maintenance/run_retention.py`) on a real
instance: finished runs created before the cutoff are deleted with their event logs; runs still
in progress, recent ones and those holding an asset partition's latest materialization stay."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg

from orchestrator_defs.maintenance.run_retention import prune_finished_runs

partitions = dg.StaticPartitionsDefinition(["acme", "globex"])


@dg.asset(partitions_def=partitions)
def numbers() -> int:
    return 1


@dg.op
def noop() -> None:
    return None


@dg.job
def plain() -> None:
    noop()


def _materialize(instance: dg.DagsterInstance, partition: str) -> str:
    result = dg.materialize([numbers], instance=instance, partition_key=partition)
    return result.run_id


def _cutoff_after_last_run() -> float:
    time.sleep(0.05)
    cutoff = time.time()
    time.sleep(0.05)
    return cutoff


def test_old_finished_runs_go_with_their_logs_and_the_rest_stays() -> None:
    with dg.instance_for_test() as instance:
        superseded = _materialize(instance, "acme")
        latest_acme = _materialize(instance, "acme")
        only_globex = _materialize(instance, "globex")
        plain_old = plain.execute_in_process(instance=instance).run_id
        in_progress = instance.create_run_for_job(plain).run_id  # NOT_STARTED
        cutoff = _cutoff_after_last_run()
        recent = plain.execute_in_process(instance=instance).run_id

        pruned = prune_finished_runs(instance, datetime.fromtimestamp(cutoff, UTC), page_size=2)

        left = {record.dagster_run.run_id for record in instance.get_run_records()}
        assert left == {latest_acme, only_globex, in_progress, recent}
        assert pruned.deleted == 2
        assert pruned.kept_for_materializations == 2
        assert instance.all_logs(superseded) == []
        assert instance.all_logs(plain_old) == []
        # The partitions' materializations are still known (automation and the UI rely on them).
        materialized = instance.get_materialized_partitions(numbers.key)
        assert materialized == {"acme", "globex"}


def test_a_batch_limit_is_honoured_and_the_next_call_goes_on() -> None:
    with dg.instance_for_test() as instance:
        for _ in range(3):
            plain.execute_in_process(instance=instance)
        cutoff = _cutoff_after_last_run()
        first = prune_finished_runs(instance, datetime.fromtimestamp(cutoff, UTC), limit=2)
        assert first.deleted == 2
        second = prune_finished_runs(instance, datetime.fromtimestamp(cutoff, UTC), limit=2)
        assert second.deleted == 1
        assert instance.get_run_records() == []
