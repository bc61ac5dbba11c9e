"""A real Prometheus (the Debian package `prometheus`, installed by `make bootstrap` as root) for
the deploy tests: a config scraping given targets at a short interval, a free port, storage in
the test's directory, run as one more process of the `ProductionHost`; instant queries through
its HTTP API. Missing: the tests skip and say why, or fail when services are required
(CI=true)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import services_required
from tests.integration.deploy.host import ProductionHost, free_port, wait_for

SCRAPE_INTERVAL = "1s"
# A readiness probe is one local HTTP request: polled often, the test goes on as soon as it is up.
READY_POLL_SECONDS = 0.2
INSTALL_HINT = "`make bootstrap` as root installs it (apt-get install prometheus)"


def prometheus_binary() -> Path:
    found = shutil.which("prometheus")
    if found is not None:
        return Path(found)
    if services_required():
        pytest.fail(f"prometheus not installed (services are required): {INSTALL_HINT}")
    pytest.skip(f"prometheus not installed: {INSTALL_HINT}")


def scrape_config(job: str, targets: list[str], metrics_path: str = "/metrics") -> str:
    """Prometheus's YAML config (JSON is YAML): one job scraping `targets` every second."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    return json.dumps(config, indent=2)


class Prometheus:
    """One Prometheus server, a process of `host` named `prometheus`."""

    def __init__(self, host: ProductionHost, directory: Path) -> None:
        self.host = host
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, binary: Path, job: str, targets: list[str]) -> None:
        """`launch`, then `wait_ready`."""
        self.launch(binary, job, targets)
        self.wait_ready()

    def launch(self, binary: Path, job: str, targets: list[str]) -> None:
        """Starts the server without waiting for it (`wait_ready`): a test does other set-up
        meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(scrape_config(job, targets))
        self.host.add(
            "prometheus",
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
        )
        self.host.start("prometheus")

    def wait_ready(self) -> None:
        wait_for(
            "Prometheus ready",
            lambda: httpx.get(f"{self.url}/-/ready", timeout=5).status_code == 200,
            within=60,
            every=READY_POLL_SECONDS,
            explain=self.host.tails,
        )

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query now: the result's series (`metric` labels, `value` [time, text])."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {expression!r}: {body}")
        assert body["data"]["resultType"] == "vector", body["data"]
        return body["data"]["result"]

    def values(self, expression: str, by: str) -> dict[str, float]:
        """The query's value per value of the label `by`."""
        return {s["metric"].get(by, ""): float(s["value"][1]) for s in self.query(expression)}

    def targets_health(self) -> list[str]:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return [
            f"{t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}"
            for t in answer["data"]["activeTargets"]
        ]


def finite(series: list[dict[str, Any]]) -> bool:
    """At least one series with a number (not NaN: a quantile or rate over nothing)."""
    return any(math.isfinite(float(s["value"][1])) for s in series)
