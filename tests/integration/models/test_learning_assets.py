"""The learning lineage as Dagster runs it for one tenant, in process on a real instance, against
the stand-in provider: training_dataset -> fine_tuned_model (submits and returns) -> the
fine-tuning sensor follows the job and materializes fine_tuned_model -> model_evaluation and its
blocking check."""

from __future__ import annotations

import time

import dagster as dg
import httpx
import pytest

from assets.fine_tuned_model import fine_tuned_model
from assets.model_evaluation import model_evaluation
from assets.model_promotion import model_promotion
from assets.training_dataset import training_dataset
from domain.caller import Caller
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from resources.dataset_store import DatasetStoreResource
from resources.training_provider.resource import TrainingProviderResource
from sensors.fine_tuning import fine_tuning_sensor
from services.fine_tuning import FineTuningService
from services.model_promotion import ModelPromotionService
from services.tenant_secrets import TenantSecrets
from services.tuned_model_config import INFERENCE_KEY_SECRET
from tests.integration.database.support import BACKENDS
from tests.integration.models.conftest import PLATFORM_KEY
from tests.integration.models.test_learning_lineage import tenant_with_history

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)
FOLLOW_SECONDS = 60


def learning_resources(database, provider_server, tmp_path) -> dict[str, object]:
    """The resources the learning assets and the fine-tuning sensor ask for, on this test's
    database, dataset directory and stand-in provider."""
    return {
        "database": DatabaseResource(url=database.url.render_as_string(hide_password=False)),
        "datasets": DatasetStoreResource(root=str(tmp_path / "datasets")),
        "training_provider": TrainingProviderResource(
            base_url=provider_server.api_url, api_key=PLATFORM_KEY
        ),
    }


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_the_lineage_runs_as_dagster_assets_and_a_sensor(database, provider_server, tmp_path):
    tenant = tenant_with_history(database)
    resources = learning_resources(database, provider_server, tmp_path)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [tenant])
        run_config = {"ops": {"training_dataset": {"config": {"eval_fraction": 0.3}}}}
        built = dg.materialize(
            [training_dataset],
            partition_key=tenant,
            instance=instance,
            resources=resources,
            run_config=run_config,
        )
        assert all(checks(built).values())

        submitted = dg.materialize(
            [fine_tuned_model, training_dataset.to_source_asset()],
            selection=[fine_tuned_model],
            partition_key=tenant,
            instance=instance,
            resources=resources,
        )
        assert submitted.success
        assert not submitted.asset_materializations_for_node("fine_tuned_model")

        events: list[dg.AssetMaterialization] = []
        deadline = time.monotonic() + FOLLOW_SECONDS
        cursor = None
        while not events and time.monotonic() < deadline:
            time.sleep(0.3)
            with dg.build_sensor_context(
                instance=instance, resources=resources, cursor=cursor
            ) as context:
                result = fine_tuning_sensor(context)
                cursor = context.cursor
            if isinstance(result, dg.SensorResult):
                events = list(result.asset_events)
        (event,) = events
        assert event.partition == tenant
        instance.report_runless_asset_event(event)  # as the daemon does with a sensor's events

        evaluated = dg.materialize(
            [model_evaluation, fine_tuned_model.to_source_asset()],
            selection=[model_evaluation],
            partition_key=tenant,
            instance=instance,
            resources=resources,
        )
        assert checks(evaluated) == {"tuned_model_is_better": True}
        (materialization,) = evaluated.asset_materializations_for_node("model_evaluation")
        metadata = materialization.metadata
        assert metadata["decision"].value == "PROMOTE"
        assert metadata["tuned_accuracy"].value > metadata["base_accuracy"].value

        def promote():
            return dg.materialize(
                [model_promotion, model_evaluation.to_source_asset()],
                selection=[model_promotion],
                partition_key=tenant,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )

        refused = promote()  # the tenant has no inference key of its own yet: nothing promoted
        assert not refused.success
        assert ModelPromotionService(database).current(Caller.operator(), tenant) is None
        key = httpx.post(
            f"{provider_server.api_url}/inference_keys",
            json={"suffix": tenant[:18]},
            headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
        ).json()["key"]
        TenantSecrets(database).set(Caller.operator(), tenant, INFERENCE_KEY_SECRET, key)
        assert TenantSecrets(database).reveal(tenant, INFERENCE_KEY_SECRET) == key
        promoted = promote()
        assert promoted.success
        (done,) = promoted.asset_materializations_for_node("model_promotion")
        current = ModelPromotionService(database).current(Caller.operator(), tenant)
        assert done.metadata["model"].value == current.opencode_model
        assert key not in str(done.metadata)


def test_an_empty_dataset_fails_its_check_and_no_job_is_submitted(
    database, provider_server, tmp_path
):
    from tests.integration.database.support import new_tenant

    tenant = new_tenant(database, "empty")
    resources = learning_resources(database, provider_server, tmp_path)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [tenant])
        built = dg.materialize(
            [training_dataset],
            partition_key=tenant,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        assert checks(built)["minimum_examples"] is False
        submitted = dg.materialize(
            [fine_tuned_model, training_dataset.to_source_asset()],
            selection=[fine_tuned_model],
            partition_key=tenant,
            instance=instance,
            resources=resources,
        )
        assert submitted.success
    assert FineTuningService(database).list(Caller.operator(), tenant) == []
    assert provider_server.requests() == []  # the provider was never asked
