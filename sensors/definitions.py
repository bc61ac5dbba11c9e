"""The sensors area: what it contributes to the code location."""

import dagster as dg

from sensors.agent_health import agent_health_sensor
from sensors.dispatch import dispatch_sensor
from sensors.fine_tuning import fine_tuning_sensor
from sensors.lost_starts import lost_start_sensor
from sensors.retry import retry_sensor
from sensors.run_failure import wave_failure_sensor
from sensors.runtimes import runtime_sensor
from sensors.settlement import settlement_sensor
from sensors.tenant_partitions import tenant_partition_sensor
from sensors.webhooks import webhook_delivery_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(
        sensors=[
            tenant_partition_sensor,
            dispatch_sensor,
            retry_sensor,
            settlement_sensor,
            wave_failure_sensor,
            lost_start_sensor,
            agent_health_sensor,
            fine_tuning_sensor,
            runtime_sensor,
            webhook_delivery_sensor,
        ]
    )
