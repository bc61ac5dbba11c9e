"""The end of one supervised session, as the wave reports it (and Dagster materializes it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from domain.session import Session


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    tenant_id: str
    status: str
    agent_id: str | None
    attempts: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    files_changed: int
    duration_seconds: float | None
    reason: str

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


def outcome_of(session: Session, reason: str) -> SessionOutcome:
    result = session.result or {}
    return SessionOutcome(
        session_id=session.id,
        tenant_id=session.tenant_id,
        status=session.status.value,
        agent_id=session.agent_id,
        attempts=session.retry_count + 1,
        tokens_in=session.metrics.tokens_in,
        tokens_out=session.metrics.tokens_out,
        cost_usd=session.metrics.cost_usd,
        files_changed=int(result.get("files_changed", 0)),
        duration_seconds=session.metrics.duration_seconds,
        reason=reason,
    )
