"""Launch on submit: a tenant's new work launches its wave at once, one wave for a burst.

Contract: the first submit of a tenant with no live wave launches one `session_wave` run in the
tenant's partition, tagged like the dispatch sensor's runs (tenant, wave, max runtime) and with
the trigger's own tag, its wave starting with no session (its top-up claims them); a burst of
submits launches one; a tenant with a live (queued or running) wave gets none; another tenant
gets its own; once the debounce has passed and no wave is live, the next submit launches again;
a launch that fails never reaches the submitter. `SessionService` tells the trigger after its
transaction, for every new session (submit, decomposition, follow-up, retry), and a trigger that
fails does not fail the submit.
"""

from __future__ import annotations

import threading

import pytest

from domain.caller import Caller
from domain.session import SessionStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.debounce import InProcessDebounce
from services.session_service import SessionService, SubmitSession
from services.wave_trigger import (
    LAUNCHED_BY_TAG,
    LAUNCHED_ON_SUBMIT,
    LaunchOnSubmit,
)
from services.waves import JOB_NAME, MAX_RUNTIME_TAG, PARTITION_TAG, TENANT_TAG, WAVE_OP

DEBOUNCE_SECONDS = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeWaveRuns:
    """Dagster's runs as the webserver shows them: launched runs stay live until ended."""

    def __init__(self, failing: bool = False) -> None:
        self.launched: list[tuple[str, dict[str, object], dict[str, str]]] = []
        self.ended: set[int] = set()
        self.failing = failing

    def has_live_run(self, job_name: str, tags: dict[str, str]) -> bool:
        return any(
            job == job_name and tags.items() <= run_tags.items() and n not in self.ended
            for n, (job, _, run_tags) in enumerate(self.launched)
        )

    def launch_run(self, job_name: str, run_config: dict[str, object], tags: dict[str, str]) -> str:
        if self.failing:
            raise ConnectionError("webserver down")
        self.launched.append((job_name, run_config, tags))
        return f"run-{len(self.launched)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def trigger_on(runs: FakeWaveRuns, clock: FakeClock) -> LaunchOnSubmit:
    return LaunchOnSubmit(runs, InProcessDebounce(clock), debounce_seconds=DEBOUNCE_SECONDS)


def test_the_first_submit_of_an_idle_tenant_launches_its_wave_in_its_partition(
    clock: FakeClock,
) -> None:
    runs = FakeWaveRuns()
    run_id = trigger_on(runs, clock).launch_if_needed("acme", longest_session_seconds=3600)
    assert run_id == "run-1"
    [(job, config, tags)] = runs.launched
    assert job == JOB_NAME
    op_config = config["ops"][WAVE_OP]["config"]  # type: ignore[index]
    # No session ids: the wave's top-up claims the tenant's sessions as it starts.
    assert op_config["tenant"] == "acme" and op_config["session_ids"] == []
    assert op_config["wave_id"].startswith("wave-acme-")
    assert tags[TENANT_TAG] == "acme"  # the run queue's per-tenant limit applies
    assert tags[PARTITION_TAG] == "acme"
    assert tags[LAUNCHED_BY_TAG] == LAUNCHED_ON_SUBMIT
    # Room for the session's time and the top-up's, as the sensor sizes its waves.
    assert int(tags[MAX_RUNTIME_TAG]) > 3600


def test_a_burst_of_submits_launches_one_wave(clock: FakeClock) -> None:
    runs = FakeWaveRuns()
    trigger = trigger_on(runs, clock)
    for _ in range(100):
        trigger.launch_if_needed("acme", longest_session_seconds=3600)
        clock.now += 0.01
    assert len(runs.launched) == 1


def test_a_tenant_with_a_live_wave_gets_no_second_one(clock: FakeClock) -> None:
    runs = FakeWaveRuns()
    trigger = trigger_on(runs, clock)
    trigger.launch_if_needed("acme", 3600)
    clock.now += DEBOUNCE_SECONDS + 1  # past the debounce: the live run decides
    assert trigger.launch_if_needed("acme", 3600) is None
    assert len(runs.launched) == 1


def test_each_tenant_gets_its_own_wave(clock: FakeClock) -> None:
    runs = FakeWaveRuns()
    trigger = trigger_on(runs, clock)
    trigger.launch_if_needed("acme", 3600)
    trigger.launch_if_needed("globex", 3600)
    assert [tags[TENANT_TAG] for _, _, tags in runs.launched] == ["acme", "globex"]


def test_after_the_wave_ended_and_the_debounce_passed_the_next_submit_launches_again(
    clock: FakeClock,
) -> None:
    runs = FakeWaveRuns()
    trigger = trigger_on(runs, clock)
    trigger.launch_if_needed("acme", 3600)
    runs.ended.add(0)
    assert trigger.launch_if_needed("acme", 3600) is None  # within the debounce
    clock.now += DEBOUNCE_SECONDS + 1
    assert trigger.launch_if_needed("acme", 3600) == "run-2"


def test_a_failed_launch_is_logged_with_the_tenant_and_never_raised(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = trigger_on(FakeWaveRuns(failing=True), clock)
    assert trigger.launch_if_needed("acme", 3600) is None
    assert "tenant acme" in caplog.text and "webserver down" in caplog.text


def test_new_work_returns_before_the_launch_and_launches_in_the_background(
    clock: FakeClock,
) -> None:
    release, launched = threading.Event(), threading.Event()

    class SlowRuns(FakeWaveRuns):
        def launch_run(self, job_name: str, run_config: dict[str, object], tags: dict[str, str]):
            release.wait(10)
            launched.set()
            return super().launch_run(job_name, run_config, tags)

    runs = SlowRuns()
    trigger = trigger_on(runs, clock)
    trigger.new_work("acme", 3600)  # returns while the launch waits
    assert not launched.is_set()
    release.set()
    trigger.wait_idle()
    assert len(runs.launched) == 1


# -- the session service tells the trigger --------------------------------------------------------


class RecordingTrigger:
    def __init__(self, failing: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failing = failing

    def new_work(self, tenant_id: str, longest_session_seconds: int) -> None:
        if self.failing:
            raise RuntimeError("trigger broken")
        self.calls.append((tenant_id, longest_session_seconds))


@pytest.fixture
def acme(database: Database) -> Database:
    """The supervision tests' migrated SQLite database, with the tenant acme."""
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug="acme", name="Acme"))
    return database


def test_a_submit_tells_the_trigger_once_its_session_is_committed(acme: Database) -> None:
    seen: list[SessionStatus] = []

    class CheckingTrigger(RecordingTrigger):
        def new_work(self, tenant_id: str, longest_session_seconds: int) -> None:
            with tenant_scope(tenant_id), unit_of_work(acme) as uow:
                seen.extend(s.status for s in uow.sessions.list())
            super().new_work(tenant_id, longest_session_seconds)

    trigger = CheckingTrigger()
    service = SessionService(acme, wave_trigger=trigger)
    request = SubmitSession(title="t", prompt="p", max_duration_seconds=1200)
    service.submit(Caller.operator(), "acme", request)
    assert trigger.calls == [("acme", 1200)]
    assert seen == [SessionStatus.PENDING]  # committed before the trigger was told


def test_a_replayed_idempotent_submit_does_not_tell_the_trigger_again(acme: Database) -> None:
    trigger = RecordingTrigger()
    service = SessionService(acme, wave_trigger=trigger)
    request = SubmitSession(title="t", prompt="p", idempotency_key="k-1")
    service.submit(Caller.operator(), "acme", request)
    service.submit(Caller.operator(), "acme", request)
    assert len(trigger.calls) == 1


def test_a_decomposed_request_tells_the_trigger_once(acme: Database) -> None:
    trigger = RecordingTrigger()
    service = SessionService(acme, wave_trigger=trigger)
    request = SubmitSession(
        title="t",
        prompt="p",
        subtasks=[{"title": "a", "prompt": "a"}, {"title": "b", "prompt": "b"}],
    )
    service.submit(Caller.operator(), "acme", request)
    assert [tenant for tenant, _ in trigger.calls] == ["acme"]


def test_a_trigger_that_fails_does_not_fail_the_submit(acme: Database) -> None:
    service = SessionService(acme, wave_trigger=RecordingTrigger(failing=True))
    session = service.submit(Caller.operator(), "acme", SubmitSession(title="t", prompt="p"))
    assert session.status is SessionStatus.PENDING
