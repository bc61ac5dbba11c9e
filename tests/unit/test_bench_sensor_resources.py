"""The bench's daemon stand-in builds for a sensor's tick only the resources that sensor asks
for, as the daemon does: each is built anew per tick, and the OpenCode resource on the dispatch
and retry ticks was CPU the daemon does not spend."""

from bench.worker import resources_for
from sensors.agent_health import agent_health_sensor
from sensors.dispatch import dispatch_sensor
from sensors.retry import retry_sensor

EVERY = {"database": "db", "opencode": "oc", "supervision": "sup", "redis": "r"}


def test_each_tick_gets_only_the_resources_its_sensor_asks_for() -> None:
    assert set(resources_for(dispatch_sensor, EVERY)) == {"database", "supervision", "redis"}
    assert set(resources_for(retry_sensor, EVERY)) == {"database", "supervision", "redis"}
    assert set(resources_for(agent_health_sensor, EVERY)) == set(EVERY)
