"""Launch on submit: a tenant's new work launches its wave at once, not at the next dispatch tick.

Dagster's sensor daemon evaluates the dispatch sensor at most every 5 s, so a burst to a tenant
with no live wave used to wait 0-5 s for a tick before its run was even requested. Told "tenant
T has new work" after a submit's transaction, `LaunchOnSubmit` launches the tenant's
`session_wave` run through Dagster's own way in from outside the daemon (the webserver's
`launchRun`, `resources.dagster_webserver`), with the job, partition, tags and config the
dispatch sensor's requests use, but no session ids: the wave's top-up claims the tenant's due
sessions as it starts (leased to the wave, within the quota, as the sensor claims them), and the
dispatcher leaves a tenant with a live wave its new sessions for `left_behind_seconds`.

One wave per burst: a per-tenant debounce (Redis `SET NX` with expiry across processes, else in
this process) lets one submit in `debounce_seconds` ask, and no run is launched while the tenant
has a live (queued or running) wave, which takes the new sessions itself. Never in the
submitter's way: the launch happens in a background thread with a bounded timeout, a failure is
logged with the tenant and dropped, and the dispatch sensor remains the safety net that claims
whatever is left PENDING.
"""

from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from domain.supervision_policy import DEFAULT_TOP_UP_SECONDS
from resources.debounce import InProcessDebounce
from services.waves import JOB_NAME, PARTITION_TAG, TENANT_TAG, Wave

logger = logging.getLogger(__name__)

LAUNCHED_BY_TAG = "indorch/launched-by"
LAUNCHED_ON_SUBMIT = "submit"
DEBOUNCE_NAME = "wave-trigger"
# Longer than a launch takes (its requests time out within it), so a burst's later submits find
# the launched run live rather than racing it.
DEBOUNCE_SECONDS = 5.0


class WaveTrigger(Protocol):
    """Told after a submit's transaction that the tenant has new work; returns at once."""

    def new_work(self, tenant_id: str, longest_session_seconds: int) -> None: ...


class WaveRuns(Protocol):
    """Dagster's runs, reached from outside the daemon (`resources.dagster_webserver`)."""

    def has_live_run(self, job_name: str, tags: dict[str, str]) -> bool: ...

    def launch_run(
        self, job_name: str, run_config: dict[str, object], tags: dict[str, str]
    ) -> str: ...


class Debounce(Protocol):
    """True for the first caller of the tenant's `name` in `seconds` (a Redis `SET NX` with
    expiry across processes, or this process)."""

    def first(self, tenant_id: str, name: str, seconds: float) -> bool: ...


class LaunchOnSubmit:
    """The `WaveTrigger` that launches the tenant's wave when it has none live."""

    def __init__(
        self,
        runs: WaveRuns,
        debounce: Debounce,
        *,
        debounce_seconds: float = DEBOUNCE_SECONDS,
        top_up_seconds: float = DEFAULT_TOP_UP_SECONDS,
    ) -> None:
        self._runs = runs
        self._debounce = debounce
        self._debounce_seconds = debounce_seconds
        self._top_up_seconds = top_up_seconds
        self._pending: list[Future[str | None]] = []
        self._lock = threading.Lock()
        # One thread: launches are rare (one per tenant and burst), and the submitter never
        # waits for it. Not a daemon thread: a CLI command's launch finishes before it exits.
        self._background = ThreadPoolExecutor(1, thread_name_prefix="wave-trigger")

    def new_work(self, tenant_id: str, longest_session_seconds: int) -> None:
        future = self._background.submit(self.launch_if_needed, tenant_id, longest_session_seconds)
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()] + [future]

    def wait_idle(self, timeout: float | None = None) -> None:
        """Until the launches asked for so far are done (tests, and a process about to exit)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout)

    def launch_if_needed(self, tenant_id: str, longest_session_seconds: int) -> str | None:
        """The launched run's id, or None: debounced, a wave already live, or the launch failed
        (logged; the dispatch sensor claims the sessions at its next tick)."""
        try:
            if not self._debounce.first(tenant_id, DEBOUNCE_NAME, self._debounce_seconds):
                return None
            if self._runs.has_live_run(JOB_NAME, {TENANT_TAG: tenant_id}):
                return None
            wave = Wave(
                tenant_id,
                (),
                f"wave-{tenant_id}-submit-{secrets.token_hex(10)}",
                longest_session_seconds,
                int(self._top_up_seconds),
            )
            tags = {
                **wave.tags(),
                PARTITION_TAG: tenant_id,
                LAUNCHED_BY_TAG: LAUNCHED_ON_SUBMIT,
            }
            run_id = self._runs.launch_run(JOB_NAME, wave.run_config(), tags)
        except Exception as error:
            logger.warning(
                "tenant %s: launching its wave on submit failed (the dispatch sensor takes its "
                "sessions at its next tick): %r",
                tenant_id,
                error,
            )
            return None
        logger.info(
            "tenant %s: wave %s launched on submit (run %s)", tenant_id, wave.wave_id, run_id
        )
        return run_id


def wave_trigger_from_environment() -> WaveTrigger | None:
    """The trigger the configuration asks for: launches through the Dagster webserver at
    ``INDORCH_DAGSTER_WEBSERVER_URL``, debounced in Redis when it is configured; None (the
    dispatch sensor alone) when no webserver is configured."""
    from resources.settings import dagster_webserver_url, redis_url

    url = dagster_webserver_url()
    if url is None:
        return None
    from resources.dagster_webserver import DagsterWebserver

    redis = redis_url()
    debounce: Debounce
    if redis:
        from resources.redis.debounce import RedisDebounce

        debounce = RedisDebounce(redis)
    else:
        debounce = InProcessDebounce()
    return LaunchOnSubmit(DagsterWebserver(url), debounce)
