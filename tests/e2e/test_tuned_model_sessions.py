"""The learning loop's last step end to end: a tenant's promoted model reaches its agent's real
OpenCode server (PATCH /global/config, with a restricted inference key of the tenant's own), and
the tenant's next session, run by a real wave, is prompted with it: the model OpenCode recorded
on the session's answer is the tuned one, and the answer is what it learned. A rollback sends
the next session back to the agent's own model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from domain.ab_comparison import PromotionRule
from domain.agent import Agent
from domain.caller import Caller
from domain.fine_tuning import FineTuningStatus, TrainingParameters
from domain.promotion import TUNED_PROVIDER_ID
from domain.tenant import Tenant
from domain.training_examples import DatasetPolicy, TrainingExample
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore
from resources.opencode.client import OpenCodeClient
from resources.training_provider.resource import TrainingProviderResource
from services.fine_tuning import FineTuningService
from services.model_evaluation import ModelEvaluationService
from services.model_promotion import ModelPromotionService
from services.session_service import SessionService
from services.training_data import TrainingDataService
from services.tuned_model_config import publish_to_agents
from standins.finetune_provider.server import FineTuneProviderServer
from standins.opencode_server import OpenCodeServer
from tests.e2e.test_session_waves import FINAL, TENANT, World, remove_worktrees, tick
from tests.integration.models.test_learning_lineage import FACTS, tenant_with_history

pytestmark = [pytest.mark.opencode, pytest.mark.timeout(420)]
PLATFORM_KEY = "sk-platform-e2e-0123456789"
OPERATOR = Caller.operator()


@pytest.fixture(scope="module")
def own_server(
    opencode_binary: Path, scripted_model_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenCodeServer]:
    """A server of its own HOME: the promotion writes its global configuration."""
    home = tmp_path_factory.mktemp("tuned-home")
    with OpenCodeServer(scripted_model_url, home=home, binary=opencode_binary) as server:
        yield server


def test_the_promoted_model_prompts_the_next_session_on_the_real_server(
    own_server: OpenCodeServer, tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Acme"))
    history_tenant = tenant_with_history(database)  # its sessions taught the model
    with tenant_scope(history_tenant), unit_of_work(database) as uow:
        agent = uow.agents.add(Agent(tenant_id=history_tenant, name="a", server_url=own_server.url))
    store = DatasetStore(tmp_path / "datasets")
    try:
        with (
            FineTuneProviderServer(tmp_path / "provider", step_seconds=0.1) as provider_server,
            dg.instance_for_test() as instance,
        ):
            provider = TrainingProviderResource(
                base_url=provider_server.api_url, api_key=PLATFORM_KEY
            ).client()
            built = TrainingDataService(database, store).build(
                OPERATOR, history_tenant, DatasetPolicy(eval_fraction=0.3)
            )
            fine_tuning = FineTuningService(database)
            job = fine_tuning.submit(
                OPERATOR,
                history_tenant,
                dataset=built.stored,
                base_model="base-coder",
                parameters=TrainingParameters(epochs=2),
                provider=provider,
            )
            deadline = time.monotonic() + 60
            while job.status is not FineTuningStatus.COMPLETED and time.monotonic() < deadline:
                time.sleep(0.2)
                job = fine_tuning.follow(history_tenant, job.id, provider, store.find)
            assert job.fine_tuned_model, job.status_reason
            evaluation, _ = ModelEvaluationService(database, store, provider).evaluate(
                OPERATOR,
                history_tenant,
                dataset_version=built.stored.version,
                base_model="base-coder",
                candidate_model=job.fine_tuned_model,
                job_id=job.id,
                rule=PromotionRule(),
            )
            promotions = ModelPromotionService(database)
            promotion = promotions.promote(OPERATOR, history_tenant, evaluation.id)
            inference_key = httpx.post(
                f"{provider_server.api_url}/inference_keys",
                json={"suffix": history_tenant[:18]},
                headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
            ).json()["key"]
            pushes = asyncio.run(
                publish_to_agents(database, promotion, provider_server.api_url, inference_key)
            )
            assert [(p.agent_id, p.error) for p in pushes] == [(agent.id, None)]

            world = World(url, database, SessionService(database), [agent], instance)
            instance.add_dynamic_partitions("tenants", [history_tenant])
            name, command = _a_trained_fact(built.dataset.train)
            session = world.service.submit(
                Caller.operator(),
                history_tenant,
                _request(f"How do I run the tests of {name}?"),
            )
            assert session.model == f"{TUNED_PROVIDER_ID}/{job.fine_tuned_model}"
            _run(world, history_tenant, session.id)
            done = world.service.get(Caller.operator(), history_tenant, session.id)
            assert done.status.value == "COMPLETED", done.status_reason
            assert command in done.result["text"]
            directory = done.metadata.get("agent_directory")
            models = asyncio.run(_answer_models(own_server.url, done.agent_session_id, directory))
            assert models == {(TUNED_PROVIDER_ID, job.fine_tuned_model)}

            promotions.rollback(OPERATOR, history_tenant)
            after = world.service.submit(
                Caller.operator(), history_tenant, _request("[script:reply text=ok] hi")
            )
            assert after.model is None
    finally:
        remove_worktrees(database)
        database.dispose()


def _a_trained_fact(train: list[TrainingExample]) -> tuple[str, str]:
    """A fact whose question the model was trained on in the asked wording: the split between
    training and held-out examples is random, so a fixed fact may have been held out."""
    prompts = {example.messages[1]["content"] for example in train}
    for name, command in FACTS:
        if f"How do I run the tests of {name}?" in prompts:
            return name, command
    raise AssertionError("no fact was trained in the asked wording")


def _request(prompt: str):
    from services.session_service import SubmitSession

    return SubmitSession(title=prompt[:60], prompt=prompt)


def _run(world: World, tenant: str, session_id: str, seconds: float = 120) -> None:
    """Sensor ticks and waves, as the daemon would, until the session is final."""
    deadline = time.monotonic() + seconds
    while world.service.get(Caller.operator(), tenant, session_id).status.value not in FINAL:
        assert time.monotonic() < deadline, world.service.events(
            Caller.operator(), tenant, session_id
        )
        if tick(world) == 0:
            time.sleep(0.3)


async def _answer_models(
    server_url: str, agent_session_id: str, directory: str | None
) -> set[tuple[str, str]]:
    async with OpenCodeClient(server_url) as client:
        messages = await client.messages(agent_session_id, directory=directory)
    return {
        (m.info.provider_id, m.info.model_id)
        for m in messages
        if m.info.role == "assistant" and m.info.model_id
    }
