"""`dagster asset materialize` of the learning loop from the command line, as the README shows:
a real `dagster` process on a fresh DAGSTER_HOME and a fresh SQLite application database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from domain.session import Session, SessionStatus
from domain.tenant import Tenant
from resources.dagster_partitions import tenant_partitions
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from resources.settings import PROJECT_ROOT

pytestmark = pytest.mark.timeout(300)
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def materializing(env: dict[str, str], partition: str) -> subprocess.Popen[str]:
    """`dagster asset materialize` of the dataset's `partition`, started (see `finished`)."""
    return subprocess.Popen(
        [
            *(DAGSTER, "asset", "materialize", "-m", "orchestrator_defs.definitions"),
            *("--select", "training_dataset", "--partition", partition),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=240)  # the caller kills it on a time out
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_the_dataset_is_materialized_for_a_tenant_and_an_unknown_one_is_refused(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_instance" / "dagster.yaml", home / "dagster.yaml")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug="acme", name="Acme"))
    with tenant_scope("acme"), unit_of_work(database) as uow:
        for n in range(20):
            uow.sessions.add(
                Session(
                    tenant_id="acme",
                    title=f"t{n}",
                    initial_prompt=f"write module {n}",
                    status=SessionStatus.COMPLETED,
                    result={"text": f"wrote module {n}"},
                )
            )
    database.dispose()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DATABASE_URL": url,
        "INDORCH_STATE_DIR": str(tmp_path / "state"),
        "INDORCH_DATASET_DIR": str(tmp_path / "datasets"),
    }
    env.pop("REDIS_URL", None)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, ["acme"])

    # Both commands at once (each loads the code location for seconds): the unknown partition is
    # refused before a run is made, so it does not touch what the other one writes.
    acme, nobody = materializing(env, "acme"), materializing(env, "nobody")
    try:
        done, unknown = finished(acme), finished(nobody)
    finally:
        for process in (acme, nobody):
            if process.poll() is None:
                process.kill()
                process.wait()

    assert done.returncode == 0, done.stderr[-3000:]
    (train,) = (tmp_path / "datasets" / "acme").glob("*/train.jsonl")
    (held_out,) = (tmp_path / "datasets" / "acme").glob("*/eval.jsonl")
    assert len(train.read_text().splitlines()) + len(held_out.read_text().splitlines()) == 20

    assert unknown.returncode != 0
    assert "nobody" in unknown.stderr
