"""`tenant_usage` (partition = day x tenant): a tenant's metered usage of one day, for billing.

Each materialization reconciles the day's row from the sessions' and fine-tuning jobs' histories
(sessions that ran, agent time, fine-tuning tokens) beside the live token and cost counters; the
monthly token budget is checked against these rows (the closed days) plus today's counters.
"""

from datetime import date

import dagster as dg

from assets.coding_sessions import CODING_SESSIONS
from domain.caller import Caller
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from services.usage_metering import UsageMetering

USAGE_START_DATE = "2026-01-01"
usage_partitions = dg.MultiPartitionsDefinition(
    {"day": dg.DailyPartitionsDefinition(start_date=USAGE_START_DATE), "tenant": tenant_partitions}
)


@dg.asset(
    partitions_def=usage_partitions,
    deps=[
        dg.AssetDep(
            CODING_SESSIONS,
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                partition_dimension_name="tenant"
            ),
        )
    ],
    group_name="billing",
    kinds={"sql"},
    description="A tenant's sessions, tokens, cost, agent minutes and fine-tuning tokens of a day.",
)
def tenant_usage(
    context: dg.AssetExecutionContext, database: DatabaseResource
) -> dg.MaterializeResult:
    keys = context.partition_key.keys_by_dimension
    tenant, day = keys["tenant"], date.fromisoformat(keys["day"])
    usage = UsageMetering(database.get_database()).reconcile_day(Caller.operator(), tenant, day)
    context.log.info("tenant %s, %s: %d sessions", tenant, day, usage.sessions)
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant,
            "day": day.isoformat(),
            "sessions": usage.sessions,
            "tokens_in": usage.tokens_in,
            "tokens_out": usage.tokens_out,
            "fine_tuning_tokens": usage.fine_tuning_tokens,
            "cost_usd": float(usage.cost_usd),
            "agent_minutes": round(usage.agent_minutes, 2),
        }
    )


tenant_usage_job = dg.define_asset_job("tenant_usage_job", selection=[tenant_usage])
