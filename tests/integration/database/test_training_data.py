"""A tenant's training data built from its sessions in the real database, on both backends:
only its own completed sessions, the last attempt's tool calls, files written whole."""

from __future__ import annotations

import json

import pytest

from domain.caller import Caller
from domain.errors import NotFound, PermissionDenied, TenantMismatch
from domain.session import Session, SessionStatus
from domain.tenant import Role
from domain.training_examples import DatasetPolicy
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore
from services.training_data import TrainingDataService
from tests.integration.database.support import BACKENDS, new_tenant

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)


def completed_session(db: Database, tenant: str, n: int, tools_per_attempt: list[list[str]]):
    session = Session(
        tenant_id=tenant,
        title=f"task {n}",
        initial_prompt=f"{tenant}: write the function number {n}",
        status=SessionStatus.COMPLETED,
        retry_count=len(tools_per_attempt) - 1,
        result={"text": f"Done {tenant} {n}", "files": [{"file": f"m{n}.py"}]},
    )
    with tenant_scope(tenant), unit_of_work(db) as uow:
        uow.sessions.add(session)
        for tools in tools_per_attempt:
            uow.sessions.append_event(session.id, "agent.prompted", {})
            for tool in tools:
                uow.sessions.append_event(
                    session.id, "agent.tool", {"tool": tool, "status": "completed"}
                )
    return session


def test_a_tenant_dataset_holds_only_its_own_completed_sessions(database, tmp_path):
    acme, globex = new_tenant(database, "acme"), new_tenant(database, "globex")
    for n in range(12):
        completed_session(database, acme, n, [["write"]])
    completed_session(database, globex, 99, [["bash"]])
    with tenant_scope(acme), unit_of_work(database) as uow:
        uow.sessions.add(Session(tenant_id=acme, title="open", initial_prompt="still running"))
    service = TrainingDataService(database, DatasetStore(tmp_path))

    built = service.build(Caller.operator(), acme, DatasetPolicy(eval_fraction=0.25), page=5)

    examples = built.dataset.train + built.dataset.eval
    assert len(examples) == 12
    text = built.stored.train_path.read_text() + built.stored.eval_path.read_text()
    assert globex not in text and "still running" not in text
    assert len(built.stored.train_path.read_text().splitlines()) == len(built.dataset.train)
    assert built.stored.train_path.parent.parent.name == acme


def test_the_last_attempts_tool_calls_are_kept(database, tmp_path):
    acme = new_tenant(database, "acme")
    completed_session(database, acme, 1, [["bash", "read"], ["write", "edit"]])
    service = TrainingDataService(database, DatasetStore(tmp_path))
    built = service.build(Caller.operator(), acme, DatasetPolicy(eval_fraction=0.0))
    line = json.loads(built.stored.train_path.read_text().splitlines()[0])
    calls = [c["function"]["name"] for c in line["messages"][2]["tool_calls"]]
    assert calls == ["write", "edit"]


def test_another_tenant_or_a_member_cannot_build_it(database, tmp_path):
    acme, globex = new_tenant(database, "acme"), new_tenant(database, "globex")
    service = TrainingDataService(database, DatasetStore(tmp_path))
    with pytest.raises(TenantMismatch):
        service.build(Caller.for_tenant(globex, Role.ADMIN), acme, DatasetPolicy())
    with pytest.raises(PermissionDenied):
        service.build(Caller.for_tenant(acme, Role.MEMBER), acme, DatasetPolicy())
    assert not any(tmp_path.iterdir())


def test_an_unknown_tenant_is_not_found_and_nothing_is_written(database, tmp_path):
    service = TrainingDataService(database, DatasetStore(tmp_path))
    with pytest.raises(NotFound, match="no-such-tenant"):
        service.build(Caller.operator(), "no-such-tenant", DatasetPolicy())
    assert not any(tmp_path.iterdir())
