"""Which `tenants` partitions a tick adds and removes, from the registry and the partitions."""

import pytest

from sensors.tenant_partitions import PartitionChanges, partition_changes


@pytest.mark.parametrize(
    ("active", "registered", "partitioned", "expected"),
    [
        # first tick: every active tenant gets a partition, the inactive one none
        ({"a", "b"}, {"a", "b", "c"}, set(), PartitionChanges(add=["a", "b"], remove=[])),
        # in step: nothing to do
        ({"a"}, {"a"}, {"a"}, PartitionChanges(add=[], remove=[])),
        # deactivated tenant keeps its partition
        (set(), {"a"}, {"a"}, PartitionChanges(add=[], remove=[])),
        # deleted tenant (no longer registered) loses its partition
        ({"a"}, {"a"}, {"a", "b"}, PartitionChanges(add=[], remove=["b"])),
        # both at once, each list sorted
        ({"c", "a"}, {"a", "c"}, {"z", "y"}, PartitionChanges(add=["a", "c"], remove=["y", "z"])),
    ],
)
def test_partition_changes(active, registered, partitioned, expected) -> None:
    assert partition_changes(active, registered, partitioned) == expected
