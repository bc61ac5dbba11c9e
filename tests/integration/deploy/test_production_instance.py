"""deploy/dagster.yaml, loaded by Dagster itself (its config schema, its storage classes)
against the real PostgreSQL: storage from the environment, the run queue's per-tenant limit,
run monitoring with a default maximum runtime, tick retention."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.integration.deploy.support import dagster_home, psycopg2_url


@dg.op
def noop() -> None:
    return None


@dg.job
def plain() -> None:
    noop()


def test_the_production_instance_runs_on_postgres(
    fresh_postgres_url: str, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", psycopg2_url(fresh_postgres_url))
    home = dagster_home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        # Runs are processes of the code server, and a run lost with it is failed by monitoring.
        assert type(instance.run_launcher).__name__ == "CodeServerRunLauncher"
        assert instance.run_launcher.supports_check_run_worker_health
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 30
        # A new wave (one launched on submit too) waits for the daemon's next dequeue before it
        # supervises anything: Dagster's smallest interval, as in the embedded default.
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert [
            (limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits
        ] == [("tenant", {"applyLimitPerUniqueValue": True}, 2)]
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 7200
        retention = instance.get_settings("retention")  # validated by Dagster on load
        assert retention["sensor"]["purge_after_days"]["skipped"] == 7
        assert retention["schedule"]["purge_after_days"] == 90
        # The storage really is this database: a run written and read back, then deleted.
        run = plain.execute_in_process(instance=instance)
        assert run.success
        assert instance.get_run_by_id(run.run_id) is not None
        instance.delete_run(run.run_id)
        assert instance.get_run_by_id(run.run_id) is None


def test_without_its_database_url_the_instance_refuses_to_start(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    home = dagster_home(tmp_path)
    with pytest.raises(Exception, match="DAGSTER_PG_URL"):
        dg.DagsterInstance.from_config(str(home))
