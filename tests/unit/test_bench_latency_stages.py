"""The bench splits submit -> prompt into the stages a session passes through."""

from bench.analysis import Timeline, latency_stages


def test_each_stage_of_submit_to_prompt_has_its_own_percentiles() -> None:
    timelines = [
        Timeline(submitted=100.0, claimed=101.0, routed=104.0, running=105.0, prompted=107.0),
        Timeline(submitted=100.0, claimed=102.0, routed=104.0, running=108.0, prompted=109.0),
        Timeline(submitted=100.0, claimed=103.0),  # never prompted: in no stage
    ]
    stages = latency_stages(timelines)
    assert list(stages) == [
        "submit_to_claim",
        "claim_to_routed",
        "routed_to_running",
        "running_to_prompted",
    ]
    assert stages["submit_to_claim"] == {"p50": 1.5, "p95": 1.95}
    assert stages["claim_to_routed"] == {"p50": 2.5, "p95": 2.95}
    assert stages["routed_to_running"] == {"p50": 2.5, "p95": 3.85}
    assert stages["running_to_prompted"] == {"p50": 1.5, "p95": 1.95}
