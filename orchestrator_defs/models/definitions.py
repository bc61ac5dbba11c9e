"""The models area: each tenant's learning loop, from its sessions to a promoted model."""

import dagster as dg

from assets.fine_tuned_model import fine_tuned_model
from assets.model_evaluation import model_evaluation
from assets.model_promotion import model_promotion
from assets.tenant_usage import tenant_usage, tenant_usage_job
from assets.training_dataset import training_dataset
from orchestrator_defs.models.usage_schedule import tenant_usage_schedule

# Declarative automation of the learning loop: the dataset on its cron, the fine-tune when the
# dataset changed (and grew enough: the asset decides), evaluation and promotion eagerly after.
# On by default; switched off and on in the UI (Automation tab) like any sensor.
learning_automation = dg.AutomationConditionSensorDefinition(
    "learning_automation",
    target=dg.AssetSelection.groups("models"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            training_dataset,
            fine_tuned_model,
            model_evaluation,
            model_promotion,
            tenant_usage,
        ],
        jobs=[tenant_usage_job],
        schedules=[tenant_usage_schedule],
        sensors=[learning_automation],
    )
