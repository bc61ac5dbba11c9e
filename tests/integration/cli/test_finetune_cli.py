"""`indorch finetune` and `indorch model`: list, show, cancel refused when finished, rollback."""

from __future__ import annotations

from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.promotion import ModelPromotion
from resources.database import Database, tenant_scope, unit_of_work
from tests.integration.cli.support import ok, refused


def add_job(db_url: str, status: FineTuningStatus) -> str:
    database = Database(db_url)
    job = FineTuningJob(tenant_id="acme", base_model="base-coder", status=status)
    with tenant_scope("acme"), unit_of_work(database) as uow:
        uow.fine_tuning_jobs.add(job)
    database.dispose()
    return job.id


def test_jobs_are_listed_and_shown_and_a_finished_one_cannot_be_cancelled(db_url):
    done = add_job(db_url, FineTuningStatus.COMPLETED)
    assert done in ok(db_url, "finetune", "list", "--tenant", "acme")
    assert "COMPLETED" in ok(db_url, "finetune", "show", done, "--tenant", "acme")
    message = refused(db_url, "finetune", "cancel", done, "--tenant", "acme")
    assert "COMPLETED" in message and "cancelled" in message
    assert "not found" in refused(db_url, "finetune", "show", "FTJ-NOPE", "--tenant", "acme")


def test_a_promotion_is_shown_and_rolled_back_in_one_command(db_url):
    database = Database(db_url)
    with tenant_scope("acme"), unit_of_work(database) as uow:
        uow.promotions.add(ModelPromotion(tenant_id="acme", model="ft:base-coder:acme:1"))
    database.dispose()
    assert "ft:base-coder:acme:1" in ok(db_url, "model", "show", "--tenant", "acme")
    assert "agents' own model" in ok(db_url, "model", "rollback", "--tenant", "acme")
    assert "no promoted model" in ok(db_url, "model", "show", "--tenant", "acme")
    assert "model promotion 'acme' not found" in refused(
        db_url, "model", "rollback", "--tenant", "acme"
    )
