"""A tenant's workspace on an agent server: the git worktree its sessions run in there.

One per tenant and server, recorded in the database so that waves in different processes (and
on different machines) agree on it; `version` grows with every replacement, so a replacement can
be made conditional on the record as it was read.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import ValueObject


class TenantWorkspace(ValueObject):
    tenant_id: str
    server_url: str = Field(min_length=1, max_length=2000)
    directory: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)
