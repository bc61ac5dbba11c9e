"""The current tenant, carried in a context variable so repositories filter without being told.

A tenant-scoped query with no tenant set raises `TenantNotSet`: never a silent "all tenants".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from domain.errors import TenantNotSet

_current_tenant: ContextVar[str | None] = ContextVar("indorch_current_tenant", default=None)


def current_tenant_id(operation: str = "tenant-scoped query") -> str:
    tenant = _current_tenant.get()
    if tenant is None:
        raise TenantNotSet(operation)
    return tenant


def current_tenant_or_none() -> str | None:
    return _current_tenant.get()


@contextmanager
def tenant_scope(tenant_id: str) -> Iterator[str]:
    """Run the block as `tenant_id`; the previous tenant (if any) is restored afterwards."""
    if not tenant_id:
        raise TenantNotSet("tenant_scope with an empty tenant id")
    token = _current_tenant.set(tenant_id)
    try:
        yield tenant_id
    finally:
        _current_tenant.reset(token)
