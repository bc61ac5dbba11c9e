"""`TENANT_TABLES` lists every table a tenant owns rows of: the row-level security and migration
tests loop over it, so a table missing from it goes unchecked."""

from resources.database.schema import TENANT_TABLES, Base


def test_every_table_with_a_tenant_column_is_a_tenant_table() -> None:
    with_tenant = {t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.columns}
    assert "runtimes" in with_tenant
    assert set(TENANT_TABLES) == with_tenant
