"""Registering, reading and removing repositories, by role (`services.code_repositories`).

Contract: a tenant's LEAD or ADMIN (or the operator) registers and removes; a VIEWER reads, and is
refused a write (nothing written); another tenant's ADMIN is refused everything; names are per
tenant; a URL with credentials in it is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.errors import AlreadyExists, InvalidInput, PermissionDenied, TenantMismatch
from domain.tenant import Role
from resources.database import Database
from resources.settings import PROJECT_ROOT
from services.code_repositories import CodeRepositories
from tests.integration.repositories.conftest import TENANT


def repo(name: str = "app", tenant: str = TENANT) -> CodeRepository:
    return CodeRepository(tenant_id=tenant, name=name, url="https://git.example.com/a.git")


def test_a_lead_registers_and_removes_a_viewer_reads(database: Database) -> None:
    service = CodeRepositories(database)
    lead = Caller.for_tenant(TENANT, Role.LEAD)
    viewer = Caller.for_tenant(TENANT, Role.VIEWER)
    service.register(lead, repo())
    assert [r.name for r in service.list(viewer, TENANT)] == ["app"]
    assert service.get(viewer, TENANT, "app").url == "https://git.example.com/a.git"
    with pytest.raises(PermissionDenied):
        service.register(viewer, repo("other"))
    with pytest.raises(PermissionDenied):
        service.remove(Caller.for_tenant(TENANT, Role.MEMBER), TENANT, "app")
    assert [r.name for r in service.list(viewer, TENANT)] == ["app"]
    service.remove(lead, TENANT, "app")
    assert service.list(viewer, TENANT) == []


def test_another_tenants_admin_is_refused(database: Database) -> None:
    service = CodeRepositories(database)
    service.register(Caller.operator(), repo())
    intruder = Caller.for_tenant("globex", Role.ADMIN)
    with pytest.raises(TenantMismatch):
        service.list(intruder, TENANT)
    with pytest.raises(TenantMismatch):
        service.register(intruder, repo("mine"))
    with pytest.raises(TenantMismatch):
        service.remove(intruder, TENANT, "app")
    service.register(intruder, repo("app", tenant="globex"))  # names are per tenant
    with pytest.raises(AlreadyExists):
        service.register(Caller.operator(), repo())


@pytest.mark.parametrize(
    "url",
    [
        "https://ann:hunter2@git.example.com/a.git",
        "https://hunter2@git.example.com/a.git",
        "ftp://git.example.com/a.git",
        "https:///a.git",
    ],
)
def test_urls_holding_credentials_or_unusable_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        CodeRepository(tenant_id=TENANT, name="app", url=url)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    "inside",
    ["INDORCH_RUNTIME_ROOT", "INDORCH_WORKSPACES_DIR", "INDORCH_STATE_DIR", "the project"],
)
def test_a_file_remote_inside_the_platforms_directories_is_refused(
    database: Database,
    inside: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another tenant's HOME and worktrees (the runtime root), every tenant's mirrors (the
    control plane's workspaces), the platform's state and code: none is a tenant's remote,
    named directly or through a link; nothing is written."""
    for variable in ("INDORCH_RUNTIME_ROOT", "INDORCH_WORKSPACES_DIR", "INDORCH_STATE_DIR"):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    base = PROJECT_ROOT if inside == "the project" else tmp_path / inside
    target = base / "globex" / "workspaces" / "mirrors" / "app.git"
    (tmp_path / "innocent").mkdir()
    (tmp_path / "innocent" / "app.git").symlink_to(target)
    service = CodeRepositories(database)
    for path in (target, tmp_path / "innocent" / "app.git"):
        with pytest.raises(InvalidInput, match="inside the platform's own directories"):
            service.register(
                Caller.for_tenant(TENANT, Role.LEAD),
                CodeRepository(tenant_id=TENANT, name="stolen", url=f"file://{path}"),
            )
    assert service.list(Caller.operator(), TENANT) == []
    # A local path of the tenant's own is taken.
    own = tmp_path / "own" / "app.git"
    service.register(
        Caller.operator(), CodeRepository(tenant_id=TENANT, name="own", url=f"file://{own}")
    )
