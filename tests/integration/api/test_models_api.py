"""Fine-tuning jobs, evaluations and promotions through the API: read by any caller of the
tenant, a job cancelled at the stand-in provider by a LEAD, a model promoted on an evaluation
that decided PROMOTE and rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from domain.caller import Caller
from domain.evaluation import Evaluation, EvaluationDecision
from domain.fine_tuning import TrainingParameters
from domain.tenant import Role
from domain.training_examples import DatasetPolicy, SessionTranscript, build_dataset
from resources.database import tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore
from resources.training_provider.resource import TrainingProviderResource
from standins.finetune_provider.server import FineTuneProviderServer
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused, seeded

JOBS, EVALUATIONS, PROMOTIONS = (
    "/api/v1/fine-tuning-jobs",
    "/api/v1/evaluations",
    "/api/v1/promotions",
)
PLATFORM_KEY = "sk-platform-0123456789"


def _provider_never_asked():
    raise AssertionError("the provider was asked for a job it never held")


@pytest.fixture
def provider_server(tmp_path: Path) -> Iterator[FineTuneProviderServer]:
    with FineTuneProviderServer(tmp_path / "provider", step_seconds=0.1) as server:
        yield server


def test_jobs_are_listed_and_shown_and_a_queued_one_cancelled_without_the_provider(
    wiring: Services, tenant_a: ApiTenant
) -> None:
    a = seeded(wiring, tenant_a)
    app = create_app(
        Services(wiring.database, wiring.factory, training_provider=_provider_never_asked)
    )
    with TestClient(app) as client:
        viewer = tenant_a.headers(Role.VIEWER)
        (job,) = client.get(JOBS, headers=viewer).json()
        assert (job["id"], job["status"], job["base_model"]) == (a.job.id, "QUEUED", "qwen/coder")
        assert job["parameters"]["epochs"] == 3
        assert client.get(f"{JOBS}/{a.job.id}", headers=viewer).json() == job
        cancelled = client.post(f"{JOBS}/{a.job.id}/cancel", headers=tenant_a.headers(Role.LEAD))
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        again = client.post(f"{JOBS}/{a.job.id}/cancel", headers=tenant_a.headers(Role.LEAD))
        refused(again, 409, "invalid_transition")


def test_a_job_the_provider_holds_is_cancelled_there(
    wiring: Services, tenant_a: ApiTenant, provider_server: FineTuneProviderServer, tmp_path: Path
) -> None:
    provider = TrainingProviderResource(
        base_url=provider_server.api_url, api_key=PLATFORM_KEY
    ).client()
    sessions = [
        SessionTranscript(session_id=f"IND-{n}", title="t", prompt=f"q{n}?", answer=f"a{n}.")
        for n in range(40)
    ]
    stored = DatasetStore(tmp_path / "datasets").write(
        build_dataset(tenant_a.slug, sessions, DatasetPolicy(eval_fraction=0.0))
    )
    job = wiring.factory.fine_tuning().submit(
        Caller.operator(),
        tenant_a.slug,
        dataset=stored,
        base_model="base-coder",
        parameters=TrainingParameters(epochs=20),
        provider=provider,
    )
    assert job.provider_job_id
    app = create_app(Services(wiring.database, wiring.factory, training_provider=lambda: provider))
    with TestClient(app) as client:
        answer = client.post(f"{JOBS}/{job.id}/cancel", headers=tenant_a.headers(Role.ADMIN))
    assert answer.json()["status"] == "CANCELLED"
    assert provider.retrieve_job(job.provider_job_id).status.value == "cancelled"


def test_evaluations_are_read_by_job_and_one_by_one(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    a = seeded(wiring, tenant_a)
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        other = uow.evaluations.add(_evaluation(tenant_a.slug, EvaluationDecision.KEEP_BASE))
    viewer = tenant_a.headers(Role.VIEWER)
    assert {e["id"] for e in client.get(EVALUATIONS, headers=viewer).json()} == {
        a.evaluation.id,
        other.id,
    }
    by_job = client.get(EVALUATIONS, params={"job_id": a.job.id}, headers=viewer).json()
    assert [e["id"] for e in by_job] == [a.evaluation.id]
    shown = client.get(f"{EVALUATIONS}/{other.id}", headers=viewer).json()
    assert (shown["decision"], shown["items"], shown["details"]) == (
        "KEEP_BASE",
        40,
        {"reason": "no better"},
    )


def test_a_lead_promotes_on_a_promote_decision_only_and_rolls_back(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        better = uow.evaluations.add(_evaluation(tenant_a.slug, EvaluationDecision.PROMOTE))
        worse = uow.evaluations.add(_evaluation(tenant_a.slug, EvaluationDecision.KEEP_BASE))
    lead, viewer = tenant_a.headers(Role.LEAD), tenant_a.headers(Role.VIEWER)
    assert client.get(f"{PROMOTIONS}/current", headers=viewer).json() == {"current": None}
    refused(client.post(f"{PROMOTIONS}/rollback", headers=lead), 404, "not_found")
    answer = client.post(PROMOTIONS, json={"evaluation_id": worse.id}, headers=lead)
    refused(answer, 409, "promotion_refused")
    promoted = client.post(PROMOTIONS, json={"evaluation_id": better.id}, headers=lead)
    assert promoted.status_code == 201, promoted.text
    assert (promoted.json()["model"], promoted.json()["evaluation_id"]) == ("ft:m:1", better.id)
    current = client.get(f"{PROMOTIONS}/current", headers=viewer).json()["current"]
    assert current["id"] == promoted.json()["id"]
    assert client.post(f"{PROMOTIONS}/rollback", headers=lead).json() == {"current": None}
    (history,) = client.get(PROMOTIONS, headers=viewer).json()
    assert history["id"] == current["id"] and history["retired_at"] is not None
    refused(
        client.post(PROMOTIONS, json={"evaluation_id": "EVAL-nope"}, headers=lead), 404, "not_found"
    )


def _evaluation(tenant: str, decision: EvaluationDecision) -> Evaluation:
    return Evaluation(
        tenant_id=tenant,
        base_model="m",
        candidate_model="ft:m:1",
        items=40,
        base_score=0.5,
        candidate_score=0.6,
        decision=decision,
        details={"reason": "no better"},
    )
