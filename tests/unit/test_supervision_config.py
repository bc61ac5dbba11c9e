"""The supervision resource hands its timings to the wave supervisor's settings."""

from resources.supervision_config import SupervisionConfig


def test_the_starts_in_flight_per_agent_reach_the_supervisor_settings() -> None:
    assert SupervisionConfig(starts_per_agent=24).settings().starts_per_agent == 24
