"""A tenant's model evaluations, read back: what each A/B comparison found and decided (the
evidence a promotion rests on). Any caller of the tenant from VIEWER up reads them; they are
written only by `services.model_evaluation`."""

from __future__ import annotations

from domain.caller import Caller
from domain.evaluation import Evaluation
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work

READ_ROLE = Role.VIEWER


class EvaluationRecords:
    def __init__(self, database: Database) -> None:
        self._database = database

    def list(self, caller: Caller, tenant: str, job_id: str | None = None) -> list[Evaluation]:
        """The tenant's evaluations (of one fine-tuning job's model when `job_id` is given)."""
        caller.require_tenant(tenant)
        caller.require(READ_ROLE, "list model evaluations")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.evaluations.list(job_id)

    def get(self, caller: Caller, tenant: str, evaluation_id: str) -> Evaluation:
        caller.require_tenant(tenant)
        caller.require(READ_ROLE, "show a model evaluation")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.evaluations.get(evaluation_id)
