"""Prometheus metrics: the fleet's figures (read when scraped) and the API's own latency.

Each app has its own registry (no process-wide state), exposed by `GET /metrics`:

- read from the database at scrape time (at most every `SNAPSHOT_MAX_AGE_SECONDS`, however
  often it is scraped), per active tenant: ``indorch_sessions{tenant,status}``,
  ``indorch_queue_depth{tenant}``, ``indorch_tokens_total{tenant,direction}``,
  ``indorch_cost_usd_total{tenant}``, ``indorch_recent_session_duration_seconds{tenant,quantile}``
  and ``indorch_recent_sessions_ended{tenant}`` (the sessions that ended in the last hour),
  ``indorch_agent_active_sessions`` / ``indorch_agent_capacity`` / ``indorch_agent_load_ratio``
  / ``indorch_agent_breaker_state{state}`` / ``indorch_agent_status{status}`` per
  ``{tenant,agent}``, and ``indorch_fleet_snapshot_ok`` (0 when the database did not answer);
- measured here: ``indorch_api_request_duration_seconds{method,route,status}``, a histogram of
  the time to the response's start (an SSE stream counts until its headers), by route template
  (never the raw path: no ids in labels); ``indorch_live_event_subscribers``.
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import compile_path

from domain.agent import BreakerState
from services.platform_status import PlatformStatus, TenantFigures

logger = logging.getLogger(__name__)

SNAPSHOT_MAX_AGE_SECONDS = 5.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class FleetCollector(Collector):
    def __init__(
        self,
        status: Callable[[], PlatformStatus],
        subscribers: Callable[[], int],
        max_age: float = SNAPSHOT_MAX_AGE_SECONDS,
    ) -> None:
        self._status = status
        self._subscribers = subscribers
        self._max_age = max_age
        self._lock = threading.Lock()
        self._taken_at = -1e9
        self._figures: list[TenantFigures] | None = None

    def _snapshot(self) -> list[TenantFigures] | None:
        with self._lock:
            if time.monotonic() - self._taken_at >= self._max_age:
                try:
                    self._figures = self._status().snapshot()
                except Exception as error:  # the database down: say so, do not fail the scrape
                    logger.warning("metrics: the fleet snapshot failed: %s", type(error).__name__)
                    self._figures = None
                self._taken_at = time.monotonic()
            return self._figures

    def collect(self) -> Iterator[Metric]:
        figures = self._snapshot()
        ok = GaugeMetricFamily("indorch_fleet_snapshot_ok", "1 when the database answered")
        ok.add_metric([], 1 if figures is not None else 0)
        yield ok
        subscribers = GaugeMetricFamily(
            "indorch_live_event_subscribers", "SSE clients following live events now"
        )
        subscribers.add_metric([], self._subscribers())
        yield subscribers
        if figures is None:
            return
        yield from _fleet_metrics(figures)


def _fleet_metrics(figures: list[TenantFigures]) -> Iterator[Metric]:
    tenant = ["tenant"]
    agent = ["tenant", "agent"]
    sessions = GaugeMetricFamily(
        "indorch_sessions", "Sessions per status", labels=[*tenant, "status"]
    )
    queue = GaugeMetricFamily("indorch_queue_depth", "Sessions PENDING or QUEUED", labels=tenant)
    tokens = CounterMetricFamily(
        "indorch_tokens", "Tokens used (live counters)", labels=[*tenant, "direction"]
    )
    cost = CounterMetricFamily("indorch_cost_usd", "Cost in USD (live counters)", labels=tenant)
    durations = GaugeMetricFamily(
        "indorch_recent_session_duration_seconds",
        "Durations of the sessions that ended in the last hour",
        labels=[*tenant, "quantile"],
    )
    ended = GaugeMetricFamily(
        "indorch_recent_sessions_ended", "Sessions that ended in the last hour", labels=tenant
    )
    active = GaugeMetricFamily(
        "indorch_agent_active_sessions", "Sessions on the agent", labels=agent
    )
    capacity = GaugeMetricFamily("indorch_agent_capacity", "The agent's capacity", labels=agent)
    load = GaugeMetricFamily("indorch_agent_load_ratio", "Active sessions / capacity", labels=agent)
    breaker = GaugeMetricFamily(
        "indorch_agent_breaker_state", "1 for the breaker's state", labels=[*agent, "state"]
    )
    agent_status = GaugeMetricFamily(
        "indorch_agent_status", "1 for the agent's lifecycle status", labels=[*agent, "status"]
    )
    for tenant_figures in figures:
        slug = tenant_figures.tenant_id
        for status, count in sorted(tenant_figures.sessions_by_status.items()):
            sessions.add_metric([slug, status], count)
        queue.add_metric([slug], tenant_figures.queue_depth)
        tokens.add_metric([slug, "in"], tenant_figures.tokens_in)
        tokens.add_metric([slug, "out"], tenant_figures.tokens_out)
        cost.add_metric([slug], tenant_figures.cost_usd)
        recent = sorted(tenant_figures.recent_durations)
        ended.add_metric([slug], len(recent))
        if recent:
            for name, value in _quantiles(recent).items():
                durations.add_metric([slug, name], value)
        for figures_of_agent in tenant_figures.agents:
            labels = [slug, figures_of_agent.agent_id]
            active.add_metric(labels, figures_of_agent.active_sessions)
            capacity.add_metric(labels, figures_of_agent.capacity)
            load.add_metric(
                labels, figures_of_agent.active_sessions / max(figures_of_agent.capacity, 1)
            )
            for state in BreakerState:
                breaker.add_metric([*labels, state.value], int(figures_of_agent.breaker == state))
            agent_status.add_metric([*labels, figures_of_agent.status], 1)
    yield from (sessions, queue, tokens, cost, durations, ended)
    yield from (active, capacity, load, breaker, agent_status)


def _quantiles(ordered: list[float]) -> dict[str, float]:
    if len(ordered) == 1:
        return {"0.5": ordered[0], "0.95": ordered[0], "1": ordered[0]}
    cuts = statistics.quantiles(ordered, n=20, method="inclusive")
    return {"0.5": statistics.median(ordered), "0.95": cuts[18], "1": ordered[-1]}


class RouteTemplates:
    """The route template a path matches (``/api/v1/sessions/{session_id}/events``), from the
    app's route paths (`paths`, read at the first request): fixed paths before those with
    parameters, "unmatched" for the rest."""

    def __init__(self, paths: Callable[[], list[str]]) -> None:
        self._paths = paths
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def template(self, path: str) -> str:
        if self._compiled is None:
            ordered = sorted(self._paths(), key=lambda template: template.count("{"))
            self._compiled = [(compile_path(template)[0], template) for template in ordered]
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return "unmatched"


class LatencyMiddleware:
    """Observes each HTTP request's time to its response's start, by route template."""

    def __init__(self, app: Any, histogram: Histogram, routes: RouteTemplates) -> None:
        self.app = app
        self.histogram = histogram
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            template = self.routes.template(scope["path"])
            self.histogram.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except BaseException:
            observe(500)
            raise


def api_latency_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "indorch_api_request_duration_seconds",
        "Time from the request to the response's start",
        ["method", "route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
