"""The application database: engine, schema, migrations, tenant-scoped repositories."""

from resources.database.engine import Database
from resources.database.repositories.sessions import NewEvent
from resources.database.tenant_context import current_tenant_id, tenant_scope
from resources.database.unit_of_work import UnitOfWork, unit_of_work

__all__ = [
    "Database",
    "NewEvent",
    "UnitOfWork",
    "current_tenant_id",
    "tenant_scope",
    "unit_of_work",
]
