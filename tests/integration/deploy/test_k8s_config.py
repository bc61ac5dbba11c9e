"""deploy/k8s/: the cluster instance loaded by Dagster with dagster-k8s's K8sRunLauncher (its own
config schema and constructor; a kubeconfig file stands in for the in-cluster credentials,
nothing is sent to a cluster), the Helm values saying the same as that instance, and the API's
manifests running the Procfile's command."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_k8s import K8sRunLauncher

from tests.integration.deploy.support import DEPLOY, psycopg2_url

K8S = DEPLOY / "k8s"
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_cluster_instance_launches_runs_as_kubernetes_jobs(
    fresh_postgres_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", psycopg2_url(fresh_postgres_url))
    config = _load(K8S / "dagster-instance.yaml")
    assert config["run_launcher"]["config"]["load_incluster_config"] is True
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    config["run_launcher"]["config"].update(
        load_incluster_config=False, kubeconfig_file=str(tmp_path / "kubeconfig")
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "indorch"
        assert launcher.env_secrets == ["indorch-secrets"]
        assert launcher.env_config_maps == ["indorch-env"]
        assert launcher.instance_config_map == "indorch-dagster-instance"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_monitoring_max_runtime_seconds == 7200
        queue = instance.get_concurrency_config().run_queue_config
        assert [(limit["key"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
            ("tenant", 2)
        ]
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # a new wave waits for it


def test_the_helm_values_say_what_the_cluster_instance_says() -> None:
    values = _load(K8S / "values.yaml")
    instance = _load(K8S / "dagster-instance.yaml")
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert queue["dequeueIntervalSeconds"] == instance["run_queue"]["dequeue_interval_seconds"]
    # The same dequeue as the one-machine instance and the embedded default.
    for other in (DEPLOY / "dagster.yaml", DEPLOY.parent / "dagster_instance" / "dagster.yaml"):
        assert _load(other)["run_queue"] == instance["run_queue"]
    assert (
        queue["tagConcurrencyLimits"] == (instance["concurrency"]["runs"]["tag_concurrency_limits"])
    )
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["maxRuntimeSeconds"] == instance["run_monitoring"]["max_runtime_seconds"]
    assert (
        values["retention"]["sensor"]["purgeAfterDays"]
        == (instance["retention"]["sensor"]["purge_after_days"])
    )
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert k8s["jobNamespace"] == instance["run_launcher"]["config"]["job_namespace"]
    assert [s["name"] for s in k8s["envSecrets"]] == instance["run_launcher"]["config"][
        "env_secrets"
    ]
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert location["codeServerArgs"] == [
        "-m",
        "orchestrator_defs.definitions",
        "--location-name",
        "industrial_orchestrator",
    ]
    # The same queue limits as the one-machine instance.
    one_machine = _load(DEPLOY / "dagster.yaml")
    assert one_machine["concurrency"] == instance["concurrency"]


def test_the_api_manifests_run_the_procfile_command() -> None:
    documents = list(yaml.safe_load_all((K8S / "api.yaml").read_text()))
    kinds = {document["kind"]: document for document in documents}
    assert set(kinds) == {"Deployment", "Service"}
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    procfile_api = next(
        line.split(":", 1)[1]
        for line in (DEPLOY / "Procfile").read_text().splitlines()
        if line.startswith("api:")
    )
    assert container["command"][:3] == shlex.split(procfile_api)[:3]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/live"
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {"indorch-env", "indorch-secrets"}
    selector = kinds["Service"]["spec"]["selector"]
    assert selector.items() <= kinds["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
