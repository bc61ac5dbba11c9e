"""The demo's learning loop, after its sessions: one tenant's history -> `training_dataset` ->
`fine_tuned_model` (a job at the stand-in provider, followed by the daemon's fine-tuning sensor)
-> `model_evaluation` -> `model_promotion`, then one session prompted with the promoted model.

The assets run as Dagster runs on the demo's instance (`dagster asset materialize`, so they show
in the UI like any run); the sensor's materialization is the daemon's own. The demo pauses the
`learning_automation` sensor first: it drives each step itself, and the sensor would otherwise
request the same partitions again on its next tick.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from domain.caller import Caller
from indorch.demo.dagster_dev import GRAPHQL_TIMEOUT_SECONDS, LOCATION, ask
from indorch.demo.recurring_questions import EVAL_FRACTION, PROMOTED_QUESTION
from resources.dagster_webserver import DagsterWebserver, DagsterWebserverError
from resources.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from domain.agent import Agent
    from resources.database import Database
    from services.session_service import SessionService

AUTOMATION_SENSOR = "learning_automation"
REPOSITORY = "__repository__"  # a `@dg.definitions` code location's one repository
ASSETS = ("training_dataset", "fine_tuned_model", "model_evaluation", "model_promotion")
MATERIALIZE_TIMEOUT_SECONDS = 240.0
SENSOR_WAIT_SECONDS = 120.0
# The promoted session waits for a dispatch tick, a wave run, and OpenCode taking the new
# provider on its first prompt: ~10 s here, over 120 s once on a CI machine loaded by other runs.
SESSION_WAIT_SECONDS = 300.0
FINAL_STATES = frozenset({"COMPLETED", "PARTIALLY_COMPLETED", "FAILED", "STOPPED", "CANCELLED"})

LATEST_QUERY = """
query DemoLatest($path: [String!]!, $partition: String!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 1) {
        runId
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on PathMetadataEntry { path }
        }
      }
    }
  }
}
"""


class LoopFailed(Exception):
    """A step of the learning loop did not do its part; the message says which and why."""


@dataclass(frozen=True)
class Materialization:
    asset: str
    partition: str
    run_id: str  # "" for a sensor's materialization (no run)
    metadata: dict[str, Any]
    url: str

    def as_json(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "partition": self.partition,
            "run_id": self.run_id,
            "url": self.url,
            "metadata": self.metadata,
        }


@dataclass
class LoopReport:
    tenant: str
    materializations: list[Materialization] = field(default_factory=list)
    promoted_model: str = ""
    session: dict[str, Any] = field(default_factory=dict)
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Promoted, and the session after it COMPLETED with the promoted model."""
        return (
            not self.problem
            and self.session.get("state") == "COMPLETED"
            and bool(self.promoted_model)
            and self.promoted_model in self.session.get("recorded_models", [])
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "materializations": [m.as_json() for m in self.materializations],
            "promoted_model": self.promoted_model,
            "session": self.session,
            "problem": self.problem,
        }


def asset_url(base: str, asset: str, partition: str) -> str:
    return f"{base}/assets/{asset}?view=partitions&partition={partition}"


def pause_automation(base: str) -> None:
    """Stop `learning_automation` in the demo's instance (the UI's Automation tab shows it)."""
    webserver = DagsterWebserver(
        base,
        location_name=LOCATION,
        repository_name=REPOSITORY,
        timeout_seconds=GRAPHQL_TIMEOUT_SECONDS,
    )
    try:
        webserver.stop_sensor(AUTOMATION_SENSOR)
    except DagsterWebserverError as error:
        raise LoopFailed(f"stopping {AUTOMATION_SENSOR}: {error}") from error
    finally:
        webserver.close()


def latest_materialization(base: str, asset: str, partition: str) -> Materialization | None:
    answer = ask(base, LATEST_QUERY, {"path": [asset], "partition": partition})["assetOrError"]
    if answer.get("__typename") != "Asset" or not answer["assetMaterializations"]:
        return None
    event = answer["assetMaterializations"][0]
    metadata = {
        entry["label"]: next(
            (entry[k] for k in ("text", "intValue", "floatValue", "path") if k in entry), None
        )
        for entry in event["metadataEntries"]
    }
    return Materialization(
        asset, partition, event["runId"] or "", metadata, asset_url(base, asset, partition)
    )


# The steps run in the command's own process: the default multiprocess executor started a
# process per step, each importing the code location again (~2-5 s apiece, four per demo).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def materialize(assets: tuple[str, ...], partition: str, log: Path, config: dict[str, Any]) -> None:
    """One Dagster run of `assets` for `partition` on the demo's instance (DAGSTER_HOME is in
    this process's environment), as `dagster asset materialize` runs it, its steps in that
    command's process; its output in `log`."""
    dagster = Path(sys.executable).with_name("dagster")
    run_config = {**config, **IN_PROCESS}
    command = [
        str(dagster), "asset", "materialize", "-m", "orchestrator_defs.definitions",
        "--select", ",".join(assets), "--partition", partition,
        "--config-json", json.dumps(run_config),
    ]  # fmt: skip
    with log.open("ab") as output:
        done = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=MATERIALIZE_TIMEOUT_SECONDS,
            check=False,
        )
    if done.returncode != 0:
        raise LoopFailed(
            f"the run of {', '.join(assets)} failed (exit {done.returncode}); see {log}"
        )


def create_inference_key(api_url: str, platform_key: str, tenant: str) -> str:
    """The tenant's restricted key at the provider (it may only chat with the tenant's models)."""
    response = httpx.post(
        f"{api_url}/inference_keys",
        json={"suffix": tenant[:18]},
        headers={"Authorization": f"Bearer {platform_key}"},
        timeout=10.0,
    )
    response.raise_for_status()
    return str(response.json()["key"])


def wait_for(check: Callable[[], Any], seconds: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise LoopFailed(f"{what} did not happen within {seconds:g} s")
        time.sleep(interval)


async def recorded_models(agent: Agent, agent_session_id: str, directory: str | None) -> list[str]:
    """The (provider, model) pairs OpenCode recorded on the session's answers (asked with the
    agent's own password: the tenant's runtime wants it)."""
    from resources.opencode.control import client_for

    async with client_for(agent) as client:
        messages = await client.messages(agent_session_id, directory=directory)
    return sorted(
        {
            f"{m.info.provider_id}/{m.info.model_id}"
            for m in messages
            if m.info.role == "assistant" and m.info.model_id
        }
    )


def dataset_config() -> dict[str, Any]:
    return {"ops": {"training_dataset": {"config": {"eval_fraction": EVAL_FRACTION}}}}


def promoted_session_report(
    database: Database, service: SessionService, tenant: str, session_id: str
) -> dict[str, Any]:
    """The promoted session once final: its state, answer and the model OpenCode recorded."""
    from resources.database import tenant_scope, unit_of_work

    try:
        session = wait_for(
            lambda: (
                (s := service.get(Caller.operator(), tenant, session_id)).status.value
                in FINAL_STATES
                and s
            ),
            SESSION_WAIT_SECONDS,
            "the promoted session's end",
        )
    except LoopFailed as failure:  # say where it stood: the events tell which step was slow
        events = service.events(Caller.operator(), tenant, session_id)
        steps = ", ".join(e.new_status or e.event_type for e in events[-8:])
        raise LoopFailed(f"{failure} (its last events: {steps})") from None
    report: dict[str, Any] = {
        "session_id": session.id,
        "question": PROMOTED_QUESTION,
        "state": session.status.value,
        "model": session.model or "",
        "answer": str((session.result or {}).get("text") or ""),
        "recorded_models": [],
    }
    if session.agent_id and session.agent_session_id:
        with tenant_scope(tenant), unit_of_work(database) as uow:
            agent = uow.agents.get(session.agent_id)
        directory = session.metadata.get("agent_directory")
        report["recorded_models"] = asyncio.run(
            recorded_models(agent, session.agent_session_id, directory)
        )
    return report


@dataclass(frozen=True)
class LoopSetting:
    base: str  # the Dagster UI
    tenant: str
    api_url: str  # the provider's /v1
    platform_key: str
    log: Path


def run_loop(
    setting: LoopSetting, database: Database, service: SessionService, say: Callable[[str], None]
) -> LoopReport:
    """Every step in order; the first that fails ends the loop, its reason in the report."""
    from domain.caller import Caller
    from services.session_service import SubmitSession
    from services.tenant_secrets import TenantSecrets
    from services.tuned_model_config import INFERENCE_KEY_SECRET

    base, tenant = setting.base, setting.tenant
    report = LoopReport(tenant)
    try:
        pause_automation(base)
        say(
            f"learning loop for [bold]{tenant}[/bold]: {AUTOMATION_SENSOR} paused (the demo runs "
            "each step itself)"
        )
        key = create_inference_key(setting.api_url, setting.platform_key, tenant)
        TenantSecrets(database).set(Caller.operator(), tenant, INFERENCE_KEY_SECRET, key)
        say(
            f"tenant secret {INFERENCE_KEY_SECRET} set: {tenant}'s own restricted key at the "
            "provider (as `indorch secret set` does)"
        )
        materialize(("training_dataset", "fine_tuned_model"), tenant, setting.log, dataset_config())
        dataset = latest_materialization(base, "training_dataset", tenant)
        if dataset is None:
            raise LoopFailed("training_dataset was not materialized")
        say(
            f"training_dataset: {dataset.metadata.get('train_examples')} training and "
            f"{dataset.metadata.get('eval_examples')} held-out examples; fine_tuned_model "
            "handed the job to the provider, the fine_tuning_sensor follows it"
        )
        tuned = wait_for(
            lambda: latest_materialization(base, "fine_tuned_model", tenant),
            SENSOR_WAIT_SECONDS,
            "the fine_tuning_sensor's materialization of fine_tuned_model",
        )
        say(
            f"fine_tuned_model: {tuned.metadata.get('fine_tuned_model')} (materialized by the "
            "daemon's fine_tuning_sensor when the job succeeded)"
        )
        try:
            materialize(("model_evaluation", "model_promotion"), tenant, setting.log, {})
        except LoopFailed as failed:
            evaluation = latest_materialization(base, "model_evaluation", tenant)
            reason = evaluation.metadata.get("reason") if evaluation else "no evaluation"
            raise LoopFailed(f"{failed} (evaluation: {reason})") from None
        evaluation = latest_materialization(base, "model_evaluation", tenant)
        promotion = latest_materialization(base, "model_promotion", tenant)
        if evaluation is None or promotion is None:
            raise LoopFailed("model_evaluation or model_promotion was not materialized")
        report.promoted_model = str(promotion.metadata.get("model") or "")
        say(
            f"model_evaluation: {evaluation.metadata.get('decision')} "
            f"({evaluation.metadata.get('reason')}); model_promotion: {report.promoted_model} "
            f"pushed to {promotion.metadata.get('agents_updated')} agents"
        )
        session = service.submit(
            Caller.operator(),
            tenant,
            SubmitSession(title="Ask the promoted model", prompt=PROMOTED_QUESTION, tags=["demo"]),
        )
        say(f"submitted {session.id} ({session.model}): {PROMOTED_QUESTION!r}, no script marker")
        report.session = promoted_session_report(database, service, tenant, session.id)
        say(
            f"promoted session {report.session['state']}: "
            f"{report.session['answer']!r}, OpenCode recorded "
            f"{', '.join(report.session['recorded_models']) or 'no model'}"
        )
    except LoopFailed as failed:
        report.problem = str(failed)
    except (httpx.HTTPError, RuntimeError, subprocess.TimeoutExpired) as error:
        report.problem = f"{type(error).__name__}: {error}"
    try:
        report.materializations = [
            found for asset in ASSETS if (found := latest_materialization(base, asset, tenant))
        ]
    except (httpx.HTTPError, RuntimeError) as error:
        report.problem = report.problem or f"could not ask the Dagster UI: {error}"
    return report


def summary_lines(report: LoopReport, history: int) -> list[str]:
    """The summary's account of the loop: each materialization with its page in the UI, the
    promoted session, the verdict (rich markup)."""
    lines = [
        f"[bold]Learning loop[/bold] ({report.tenant}: {history} recurring-question sessions -> "
        "dataset -> fine-tuning job -> evaluation -> promotion -> a session)"
    ]
    for item in report.materializations:
        made_by = f"run {item.run_id[:8]}" if item.run_id else "fine_tuning_sensor"
        lines.append(f"  {item.asset}, partition {item.partition} ({made_by})  {item.url}")
    session = report.session
    if session:
        lines.append(
            f"  promoted session {session['session_id']} {session['state']}: asked "
            f"{session['question']!r}, answered {session['answer']!r}; the model OpenCode "
            f"recorded: {', '.join(session['recorded_models']) or 'none'}"
        )
    if report.ok:
        lines.append(f"[green]promoted {report.promoted_model}; the next session ran with it")
    else:
        lines.append(
            f"[red]learning loop not done: {report.problem or 'the promoted model was not used'}"
        )
    return lines
