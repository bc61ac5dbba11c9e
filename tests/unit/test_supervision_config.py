"""The supervision resource hands its timings to the wave supervisor's settings."""

from resources.supervision_config import SupervisionConfig


def test_the_starts_in_flight_per_agent_reach_the_supervisor_settings() -> None:
    assert SupervisionConfig(starts_per_agent=24).settings().starts_per_agent == 24


def test_by_default_each_session_without_a_repository_gets_a_workspace_of_its_own() -> None:
    assert SupervisionConfig().settings().session_workspaces is True
    assert SupervisionConfig(session_workspaces=False).settings().session_workspaces is False
