"""`model_promotion` (partition = tenant): the tenant's sessions are prompted with its tuned model
from now on. Runs only after `model_evaluation`'s blocking check passed, and the service refuses
any evaluation that did not decide PROMOTE in any case. The model is pushed to the tenant's agent
servers with the tenant's own restricted inference key (its tenant secret `provider-inference-key`:
the agent can read its server's configuration, so never the platform's key; without it the
promotion is refused before anything is recorded); `indorch model rollback` undoes it.
"""

import asyncio

import dagster as dg

from assets.model_evaluation import model_evaluation
from domain.caller import Caller
from resources.dagster_materializations import latest_metadata
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from resources.training_provider.resource import TrainingProviderResource
from services.model_promotion import ModelPromotionService
from services.tenant_secrets import TenantSecrets
from services.tuned_model_config import INFERENCE_KEY_SECRET, publish_to_agents


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[model_evaluation],
    group_name="models",
    kinds={"opencode"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The model the tenant's new sessions are prompted with.",
)
def model_promotion(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    training_provider: TrainingProviderResource,
) -> dg.MaterializeResult:
    tenant = context.partition_key
    evaluation = latest_metadata(context.instance, "model_evaluation", tenant)
    db = database.get_database()
    key = TenantSecrets(db).reveal(tenant, INFERENCE_KEY_SECRET)  # NotFound: nothing promoted
    promotion = ModelPromotionService(db).promote(
        Caller.operator(), tenant, str(evaluation["evaluation_id"])
    )
    pushes = asyncio.run(publish_to_agents(db, promotion, training_provider.api_url(), key))
    for push in pushes:
        if push.error:
            context.log.warning(
                "tenant %s: agent %s does not have the model yet: %s",
                tenant,
                push.agent_id,
                push.error,
            )
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant,
            "promotion_id": promotion.id,
            "model": promotion.opencode_model,
            "evaluation_id": str(evaluation["evaluation_id"]),
            "agents_updated": sum(1 for push in pushes if push.error is None),
            "agents_failed": sum(1 for push in pushes if push.error is not None),
        }
    )
