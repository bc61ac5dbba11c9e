"""The sensors area: what it contributes to the code location."""

import dagster as dg

from sensors.tenant_partitions import tenant_partition_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[tenant_partition_sensor])
