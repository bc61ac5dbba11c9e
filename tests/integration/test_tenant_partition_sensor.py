"""The tenant-partition sensor keeps the `tenants` partitions in step with the tenant registry.

Contract: every active tenant gets a partition; a deleted tenant (or a key with no tenant at all)
loses its partition; a deactivated tenant keeps the partition it has but never gets a new one;
when nothing changes the tick skips and says why. Real migrated databases (SQLite, and one
scenario on PostgreSQL) and a real Dagster test instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import dagster as dg
import pytest

from domain.tenant import Tenant
from resources.dagster_partitions import tenant_partitions
from resources.database.migrate import upgrade
from resources.database.schema_version import SchemaNotCurrent
from resources.database_resource import DatabaseResource
from sensors.tenant_partitions import tenant_partition_sensor

PartitionRequest = dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest


@pytest.fixture
def database(migrated_sqlite_url: str) -> Iterator[DatabaseResource]:
    resource = DatabaseResource(url=migrated_sqlite_url)
    yield resource
    resource.dispose()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def add_tenants(database: DatabaseResource, *slugs: str, active: bool = True) -> None:
    with database.unit_of_work() as uow:
        for slug in slugs:
            uow.tenants.add(Tenant(slug=slug, name=slug.title(), active=active))


def deactivate(database: DatabaseResource, slug: str) -> None:
    with database.unit_of_work() as uow:
        tenant = uow.tenants.get(slug)
        tenant.active = False
        uow.tenants.update(tenant)


def delete(database: DatabaseResource, slug: str) -> None:
    with database.unit_of_work() as uow:
        uow.tenants.delete(slug)


def apply(instance: dg.DagsterInstance, requests: Sequence[PartitionRequest]) -> None:
    """What the sensor daemon does with a tick's partition requests."""
    for request in requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def tick(instance: dg.DagsterInstance, database: DatabaseResource):
    """Evaluate one tick, apply its requests to the instance, return the tick's result."""
    with dg.build_sensor_context(instance=instance, resources={"database": database}) as context:
        result = tenant_partition_sensor.evaluate_tick(context)
    apply(instance, result.dynamic_partitions_requests or [])
    return result


def requested(result, kind: type[PartitionRequest]) -> list[str]:
    return [
        key
        for request in result.dynamic_partitions_requests or []
        if isinstance(request, kind)
        for key in request.partition_keys
    ]


def partitions(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(tenant_partitions.name))


def test_first_tick_adds_every_active_tenant(instance, database) -> None:
    add_tenants(database, "acme", "globex")
    add_tenants(database, "initech", active=False)

    result = tick(instance, database)

    assert requested(result, dg.AddDynamicPartitionsRequest) == ["acme", "globex"]
    assert requested(result, dg.DeleteDynamicPartitionsRequest) == []
    assert result.skip_message == "Adding 2 tenant partitions: acme, globex"
    assert partitions(instance) == {"acme", "globex"}


def test_nothing_new_skips_with_reason(instance, database) -> None:
    add_tenants(database, "acme", "globex", "initech")
    tick(instance, database)

    result = tick(instance, database)

    assert not result.dynamic_partitions_requests
    assert result.skip_message == "3 tenants (3 active, 0 inactive), partitions up to date"
    assert partitions(instance) == {"acme", "globex", "initech"}


def test_empty_registry_skips_with_reason(instance, database) -> None:
    result = tick(instance, database)

    assert result.skip_message == "0 tenants (0 active, 0 inactive), partitions up to date"
    assert partitions(instance) == set()


def test_deleted_tenant_is_removed(instance, database) -> None:
    add_tenants(database, "acme", "globex")
    tick(instance, database)
    delete(database, "globex")

    result = tick(instance, database)

    assert requested(result, dg.DeleteDynamicPartitionsRequest) == ["globex"]
    assert requested(result, dg.AddDynamicPartitionsRequest) == []
    assert result.skip_message == "Removing 1 partition of deleted tenants: globex"
    assert partitions(instance) == {"acme"}


def test_partition_without_any_tenant_is_removed(instance, database) -> None:
    add_tenants(database, "acme")
    instance.add_dynamic_partitions(tenant_partitions.name, ["ghost"])

    result = tick(instance, database)

    assert requested(result, dg.DeleteDynamicPartitionsRequest) == ["ghost"]
    assert partitions(instance) == {"acme"}


def test_inactive_tenant_is_not_added_but_keeps_its_partition(instance, database) -> None:
    add_tenants(database, "acme")
    tick(instance, database)
    deactivate(database, "acme")
    add_tenants(database, "initech", active=False)

    result = tick(instance, database)

    assert result.skip_message == "2 tenants (0 active, 2 inactive), partitions up to date"
    assert partitions(instance) == {"acme"}


def test_new_tenant_added_on_next_tick(instance, database) -> None:
    add_tenants(database, "acme")
    tick(instance, database)
    add_tenants(database, "globex")

    result = tick(instance, database)

    assert requested(result, dg.AddDynamicPartitionsRequest) == ["globex"]
    assert partitions(instance) == {"acme", "globex"}


def test_unmigrated_database_fails_the_tick_and_says_what_to_run(instance, sqlite_url) -> None:
    with pytest.raises(SchemaNotCurrent, match=r"at nothing, .*run `indorch db upgrade`"):
        tick(instance, DatabaseResource(url=sqlite_url))
    assert partitions(instance) == set()


def test_on_postgres_new_tenants_are_added_and_deleted_ones_removed(
    instance, postgres_url: str
) -> None:
    # The per-run database is shared with other tests: unique slugs, and only ours asserted on.
    upgrade(postgres_url)
    database = DatabaseResource(url=postgres_url)
    suffix = uuid.uuid4().hex[:8]
    kept, removed, dormant = f"pg-kept-{suffix}", f"pg-removed-{suffix}", f"pg-dormant-{suffix}"
    try:
        add_tenants(database, kept, removed)
        add_tenants(database, dormant, active=False)
        tick(instance, database)
        assert {kept, removed} <= partitions(instance)
        assert dormant not in partitions(instance)

        delete(database, removed)
        result = tick(instance, database)

        assert requested(result, dg.DeleteDynamicPartitionsRequest) == [removed]
        assert kept in partitions(instance)
        assert removed not in partitions(instance)
    finally:
        for slug in (kept, dormant):
            delete(database, slug)
        database.dispose()
