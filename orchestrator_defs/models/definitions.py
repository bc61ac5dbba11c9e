"""The models area: each tenant's learning loop, from its sessions to a promoted model."""

import dagster as dg

from assets.fine_tuned_model import fine_tuned_model
from assets.model_evaluation import model_evaluation
from assets.tenant_usage import tenant_usage, tenant_usage_job
from assets.training_dataset import training_dataset
from orchestrator_defs.models.usage_schedule import tenant_usage_schedule


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[training_dataset, fine_tuned_model, model_evaluation, tenant_usage],
        jobs=[tenant_usage_job],
        schedules=[tenant_usage_schedule],
    )
