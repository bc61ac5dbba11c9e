"""What a submitted session may ask of its workspace: which repository and ref it checks out,
and no wider permissions than the platform's rules (`domain.session_permissions`)."""

from __future__ import annotations

from typing import Any

from domain.code_repository import checked_ref
from domain.errors import InvalidInput
from domain.session_permissions import SUBMITTER_POLICIES
from resources.database import UnitOfWork


def resolve_checkout(
    uow: UnitOfWork, repository: str | None, ref: str | None
) -> tuple[str | None, str | None]:
    """The repository (of the current tenant: `NotFound` otherwise) and the ref to start from,
    the repository's default when none is given; (None, None) for a scratch workspace."""
    if repository is None:
        if ref is not None:
            raise InvalidInput("ref", "a ref needs a repository (--repository)")
        return None, None
    found = uow.code_repositories.get(repository)
    if ref is None:
        return found.name, found.default_ref
    try:
        return found.name, checked_ref(ref)
    except ValueError as error:
        raise InvalidInput("ref", str(error)) from None


def check_submitted_permission(agent_config: dict[str, Any]) -> None:
    """A submitter may have permission requests waited on or rejected, never allowed: only an
    operator's agent profile widens what a session may do."""
    policy = agent_config.get("permission")
    if policy is not None and policy not in SUBMITTER_POLICIES:
        raise InvalidInput(
            "agent_config.permission",
            f"{policy!r} is not for a submitter to choose: one of "
            f"{', '.join(sorted(SUBMITTER_POLICIES))} (allowing is an operator's agent profile's)",
        )
