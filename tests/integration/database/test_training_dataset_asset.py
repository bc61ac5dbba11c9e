"""`training_dataset` materialized by Dagster for one tenant partition, its checks reported."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.training_dataset import training_dataset
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from resources.dataset_store import DatasetStoreResource
from tests.integration.database.support import BACKENDS, new_tenant
from tests.integration.database.test_training_data import completed_session

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)


def materialize(instance, database, tenant: str, tmp_path):
    instance.add_dynamic_partitions(tenant_partitions.name, [tenant])
    return dg.materialize(
        [training_dataset],
        partition_key=tenant,
        instance=instance,
        resources={
            "database": DatabaseResource(url=database.url.render_as_string(hide_password=False)),
            "datasets": DatasetStoreResource(root=str(tmp_path)),
        },
        raise_on_error=False,
    )


def checks(result) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def test_a_tenant_with_enough_sessions_passes_every_check(database, tmp_path):
    acme = new_tenant(database, "acme")
    for n in range(20):
        completed_session(database, acme, n, [["write"]])
    with dg.instance_for_test() as instance:  # the result reads its events from the instance
        result = materialize(instance, database, acme, tmp_path)
        assert_good(result, acme)


def assert_good(result, acme: str) -> None:
    assert result.success
    assert checks(result) == dict.fromkeys(
        ("minimum_examples", "no_duplicates", "no_secrets", "eval_held_out"), True
    )
    (materialization,) = result.asset_materializations_for_node("training_dataset")
    metadata = materialization.metadata
    assert metadata["train_examples"].value + metadata["eval_examples"].value == 20
    assert metadata["tenant"].value == acme


def test_an_empty_tenant_fails_the_minimum_check(database, tmp_path):
    empty = new_tenant(database, "empty")
    with dg.instance_for_test() as instance:
        result = materialize(instance, database, empty, tmp_path)
        assert checks(result)["minimum_examples"] is False
