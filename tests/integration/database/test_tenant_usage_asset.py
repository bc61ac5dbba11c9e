"""`tenant_usage` per day x tenant, and the daily schedule that catches up on missing days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pytest

from assets.tenant_usage import tenant_usage
from orchestrator_defs.models.usage_schedule import tenant_usage_schedule
from resources.dagster_partitions import tenant_partitions
from resources.database import tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from tests.integration.database.support import BACKENDS, new_tenant

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)


def test_a_day_of_a_tenant_is_materialized_and_the_schedule_then_skips_it(database):
    acme, globex = new_tenant(database, "acme"), new_tenant(database, "globex")
    with tenant_scope(acme), unit_of_work(database) as uow:
        uow.usage.record(date(2026, 11, 30), sessions=1, tokens_in=7, cost_usd=Decimal("0.01"))
    with dg.instance_for_test() as instance:  # persistent: a schedule needs one
        instance.add_dynamic_partitions(tenant_partitions.name, [acme, globex])
        key = dg.MultiPartitionKey({"day": "2026-11-30", "tenant": acme})

        result = dg.materialize(
            [tenant_usage],
            partition_key=key,
            instance=instance,
            resources={
                "database": DatabaseResource(url=database.url.render_as_string(hide_password=False))
            },
        )

        (materialization,) = result.asset_materializations_for_node("tenant_usage")
        assert materialization.metadata["tokens_in"].value == 7
        assert materialization.metadata["tenant"].value == acme
        # Closed when done: left open, it left Dagster's current definitions-state storage set
        # to this instance's, dead once the instance was, for every later test of the process.
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 12, 1, 0, 15, tzinfo=UTC)
        ) as context:
            requests = tenant_usage_schedule(context)
        wanted = {request.partition_key for request in requests}
        assert key not in wanted  # done already
        assert dg.MultiPartitionKey({"day": "2026-11-30", "tenant": globex}) in wanted
        assert dg.MultiPartitionKey({"day": "2026-10-31", "tenant": acme}) in wanted  # 31 days back
        assert dg.MultiPartitionKey({"day": "2026-12-01", "tenant": acme}) not in wanted  # today
        assert len(wanted) == 31 * 2 - 1
