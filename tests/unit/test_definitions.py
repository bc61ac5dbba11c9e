"""The whole code location loads: every area's definitions, with their resources bound."""

import subprocess
import sys

import dagster as dg

from orchestrator_defs.definitions import defs
from resources.database_resource import DatabaseResource


def test_definitions_load_and_sensor_and_database_resolve(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("INDORCH_STATE_DIR", str(tmp_path))
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    assert definitions.get_repository_def().get_sensor_def("tenant_partition_sensor")
    assert definitions.get_repository_def().get_sensor_def("runtime_sensor")
    assert definitions.get_repository_def().get_sensor_def("lost_start_sensor")
    assert definitions.get_job_def("retention")
    schedule = definitions.get_schedule_def("retention_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert definitions.resources["database"] == DatabaseResource(
        url=f"sqlite:///{tmp_path}/indorch.db"
    )


def test_database_url_from_the_environment_is_bound_as_env_var(monkeypatch) -> None:
    # Resolved where it runs, never stored in the snapshot or shown in the UI (it may hold a
    # password).
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:secret@db/indorch")
    assert defs().resources["database"] == DatabaseResource(url=dg.EnvVar("DATABASE_URL"))


def test_retention_days_come_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("INDORCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("INDORCH_HISTORY_RETENTION_DAYS", "45")
    monkeypatch.setenv("INDORCH_RUN_RETENTION_DAYS", "14")
    policy = defs().resources["retention"]
    assert (policy.history_days, policy.run_days) == (45, 14)


def test_loading_the_code_location_leaves_the_learning_loops_libraries_for_when_it_runs() -> None:
    """Every Dagster process loads the code location (code server, daemon, webserver, each run
    worker): scipy and openai cost ~1.1 of its ~2.4 s of imports and are only needed by an
    evaluation's statistics and a fine-tuning call."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, orchestrator_defs.definitions; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'openai'}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
