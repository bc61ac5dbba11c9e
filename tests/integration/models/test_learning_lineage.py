"""The learning loop through the services for one tenant, against the stand-in provider over
HTTP, on both databases: its sessions -> dataset -> job -> tuned model -> evaluation ->
promotion -> its next session carries the tuned model; a rollback restores the default. The
verdict is measured (the stand-in really learns), never scripted."""

from __future__ import annotations

import time

import pytest

from domain.ab_comparison import PromotionRule
from domain.caller import Caller
from domain.errors import PromotionRefused
from domain.evaluation import EvaluationDecision
from domain.fine_tuning import FineTuningStatus, TrainingParameters
from domain.promotion import TUNED_PROVIDER_ID
from domain.training_examples import DatasetPolicy
from resources.dataset_store import DatasetStore
from services.fine_tuning import FineTuningService
from services.model_evaluation import ModelEvaluationService
from services.model_promotion import ModelPromotionService
from services.session_service import SessionService, SubmitSession
from services.training_data import TrainingDataService
from tests.integration.database.support import BACKENDS, new_tenant
from tests.integration.database.test_training_data import completed_session
from tests.integration.models.conftest import BASE_MODEL

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)
OPERATOR = Caller.operator()
FACTS = [(f"service-{n}", f"make check-{n * 7}") for n in range(24)]
WORDINGS = [
    "How do I run the tests of {name}?",
    "what command runs the {name} test suite",
    "Running {name}'s tests: which command?",
]


def tenant_with_history(database) -> str:
    """A tenant whose sessions answered the same questions in several wordings."""
    from domain.session import Session, SessionStatus
    from resources.database import tenant_scope, unit_of_work

    tenant = new_tenant(database, "acme")
    for name, command in FACTS:
        for wording in WORDINGS:
            with tenant_scope(tenant), unit_of_work(database) as uow:
                uow.sessions.add(
                    Session(
                        tenant_id=tenant,
                        title=name,
                        initial_prompt=wording.format(name=name),
                        status=SessionStatus.COMPLETED,
                        result={"text": f"Run `{command}` in the {name} directory."},
                    )
                )
    return tenant


def trained_model(database, tenant, provider, store):
    built = TrainingDataService(database, store).build(
        OPERATOR, tenant, DatasetPolicy(eval_fraction=0.3)
    )
    service = FineTuningService(database)
    job = service.submit(
        OPERATOR,
        tenant,
        dataset=built.stored,
        base_model=BASE_MODEL,
        parameters=TrainingParameters(epochs=2),
        provider=provider,
    )
    deadline = time.monotonic() + 30
    while job.status is not FineTuningStatus.COMPLETED and time.monotonic() < deadline:
        time.sleep(0.1)
        job = service.follow(tenant, job.id, provider, store.find)
    assert job.status is FineTuningStatus.COMPLETED, job.status_reason
    return built, job


def test_a_tuned_model_that_learned_is_promoted_and_used_by_the_next_session(
    database, provider, tmp_path
):
    tenant = tenant_with_history(database)
    store = DatasetStore(tmp_path / "datasets")
    built, job = trained_model(database, tenant, provider, store)
    assert len(built.dataset.eval) >= 10

    evaluation, comparison = ModelEvaluationService(database, store, provider).evaluate(
        OPERATOR,
        tenant,
        dataset_version=built.stored.version,
        base_model=BASE_MODEL,
        candidate_model=job.fine_tuned_model,
        job_id=job.id,
        rule=PromotionRule(margin=0.1),
        seed=42,
    )

    assert comparison.tuned_accuracy > comparison.base_accuracy
    assert evaluation.decision is EvaluationDecision.PROMOTE, evaluation.details["reason"]
    promotions = ModelPromotionService(database)
    promoted = promotions.promote(OPERATOR, tenant, evaluation.id)
    sessions = SessionService(database)
    session = sessions.submit(Caller.operator(), tenant, SubmitSession(title="next", prompt="go"))
    assert session.model == f"{TUNED_PROVIDER_ID}/{job.fine_tuned_model}"
    assert session.metadata["model_promotion"] == promoted.id
    chosen = sessions.submit(
        Caller.operator(), tenant, SubmitSession(title="mine", prompt="go", model="x/y")
    )
    assert chosen.model == "x/y"  # a submitter's own choice wins

    assert promotions.rollback(OPERATOR, tenant) is None
    assert (
        sessions.submit(Caller.operator(), tenant, SubmitSession(title="after", prompt="go")).model
        is None
    )


def test_the_base_model_against_itself_is_not_promoted(database, provider, tmp_path):
    tenant = tenant_with_history(database)
    store = DatasetStore(tmp_path / "datasets")
    built = TrainingDataService(database, store).build(
        OPERATOR, tenant, DatasetPolicy(eval_fraction=0.3)
    )
    evaluation, comparison = ModelEvaluationService(database, store, provider).evaluate(
        OPERATOR,
        tenant,
        dataset_version=built.stored.version,
        base_model=BASE_MODEL,
        candidate_model=BASE_MODEL,
        job_id=None,
        rule=PromotionRule(),
        seed=1,
    )
    assert comparison.difference == 0.0
    assert evaluation.decision is EvaluationDecision.KEEP_BASE
    with pytest.raises(PromotionRefused, match="KEEP_BASE"):
        ModelPromotionService(database).promote(OPERATOR, tenant, evaluation.id)


def test_two_tenants_datasets_never_mix(database, tmp_path):
    acme, globex = new_tenant(database, "acme"), new_tenant(database, "globex")
    for n in range(15):
        completed_session(database, acme, n, [["write"]])
        completed_session(database, globex, n, [["bash"]])
    store = DatasetStore(tmp_path)
    service = TrainingDataService(database, store)
    a = service.build(OPERATOR, acme, DatasetPolicy())
    b = service.build(OPERATOR, globex, DatasetPolicy())
    a_text = a.stored.train_path.read_text() + a.stored.eval_path.read_text()
    b_text = b.stored.train_path.read_text() + b.stored.eval_path.read_text()
    assert globex not in a_text and acme not in b_text
    assert a.stored.train_path.parent != b.stored.train_path.parent
