"""`indorch demo --exit --quick` end to end, as `make demo ARGS="--exit --quick"` runs it: a real
`dagster dev` (webserver, daemon, sensors, `session_wave` runs), a managed runtime per tenant (its
own OS user, bubblewrap, a real OpenCode server), a git server over HTTP and the scripted model,
in a fresh state directory.

Contract: the demo exits 0; every session is COMPLETED on its own tenant's managed runtime
(sandboxed, as the tenant's OS user), the one the model refuses once after 2 attempts, the
decomposed request with its 3 subtasks; the sessions on the repository the demo made for each
tenant pushed their own branch `indorch/<session id>` holding their change (and only theirs), its
patch stat in the summary; the wave runs succeeded and both tenants' `coding_sessions`
partitions were materialized; then the learning loop: acme's recurring-question
sessions -> training_dataset -> fine_tuned_model (materialized by the fine-tuning sensor) ->
model_evaluation (PROMOTE, measured) -> model_promotion, and a session after it COMPLETED with
the promoted model, as OpenCode recorded it; not one process of the demo is left running (the
runtimes included) and the runtimes' directory is gone.
The quick set leaves out the slow session and the 60 s timeout. On this 2-core machine shared with
other engineers' runs (load 10-30) it took 7-10 min with the runtimes (their starts, each HOME's
first prompt, 48 history sessions on acme's one runtime); the limit leaves room for that.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from domain.runtime import os_user_for
from indorch.demo.recurring_questions import PROMOTED_ANSWER
from indorch.demo.watchdog import DEMO_ID_VAR, leftover_processes
from standins.opencode_server import free_port
from tests.integration.repositories.support import git, remote_branch_files

pytestmark = [pytest.mark.opencode, pytest.mark.slow, pytest.mark.timeout(1020)]
INDORCH = shutil.which("indorch", path=str(Path(sys.executable).parent)) or "indorch"
DEMO_TIMEOUT_SECONDS = 900
ON_REPOSITORIES = {  # the sessions on their tenant's repository, and the file each one writes
    "Add a hello-world script": "src/hello.py",
    "Document the architecture": "docs/ARCHITECTURE.md",
    "Write the Q3 report": "reports/q3.md",
    "Add the settings file": "config/settings.toml",
}


def run_demo(state_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    command = [
        INDORCH, "demo", "--exit", "--quick", "--port", str(port),
        "--state-dir", str(state_dir),
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != DEMO_ID_VAR}
    process = subprocess.Popen(
        command,
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=DEMO_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the driver stops its children on SIGTERM
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the demo did not finish in {DEMO_TIMEOUT_SECONDS} s:\n{output[-5000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def test_the_quick_demo_completes_every_session_closes_the_learning_loop_and_leaves_no_process(
    opencode_binary: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "demo"
    done = run_demo(state_dir, free_port())

    assert done.returncode == 0, done.stdout[-6000:]
    summary = json.loads((state_dir / "summary.json").read_text())
    sessions = summary["sessions"]
    by_title = {session["title"]: session for session in sessions}
    assert {session["state"] for session in sessions} == {"COMPLETED"}, sessions
    assert by_title["Refactor the tokenizer"]["attempts"] == 2
    assert [s["title"] for s in sessions if s["subtask"]] == [
        "Todo: the data model",
        "Todo: the store",
        "Todo: the command line",
    ]
    assert all(s["attempts"] == 1 for s in sessions if s["title"] != "Refactor the tokenizer")
    assert by_title["Add a hello-world script"]["files_changed"] >= 1
    assert all(s["tokens"] > 0 and s["cost_usd"] > 0 for s in sessions)
    assert {run["status"] for run in summary["wave_runs"]} == {"SUCCESS"}
    assert set(summary["materializations_by_partition"]) == {"acme", "globex"}
    assert "all 13 sessions completed" in done.stdout

    # Each tenant on its own managed runtime: sandboxed, its own OS user, its own agent.
    runtimes = {runtime["tenant"]: runtime for runtime in summary["runtimes"]}
    assert set(runtimes) == {"acme", "globex"}
    for tenant, runtime in runtimes.items():
        assert runtime["sandboxed"] is True and runtime["os_user"] == os_user_for(tenant)
        assert runtime["status"] == "LIVE" and runtime["resident_mb"] > 0
    worked = [s for s in sessions if s["agent"] != "-"]  # not the decomposed request itself
    assert {s["agent"] for s in worked if s["tenant"] == "acme"} == {runtimes["acme"]["agent"]}
    assert {s["agent"] for s in worked if s["tenant"] == "globex"} == {runtimes["globex"]["agent"]}
    assert runtimes["acme"]["agent"] != runtimes["globex"]["agent"]

    # The sessions on the tenants' repositories: each pushed its own branch with only its change.
    on_repositories = [s for s in sessions if s["repository"]]
    assert {s["title"] for s in on_repositories} == set(ON_REPOSITORIES)
    remotes = {repo["tenant"]: Path(repo["bare"]) for repo in summary["repositories"]}
    for session in on_repositories:
        assert session["branch"] == f"indorch/{session['id']}", session
        remote = remotes[session["tenant"]]
        files = remote_branch_files(remote, session["branch"])
        base = remote_branch_files(remote, "main")
        added = set(files) - set(base)
        written = ON_REPOSITORIES[session["title"]]
        assert added == {written}, (session, sorted(files))
        lines = files[written].count("\n")
        assert session["patch_stat"] == f"1 file, +{lines} -0", session
        assert git(remote, "rev-parse", f"{session['branch']}~1") == git(
            remote, "rev-parse", "main"
        )
        assert session["branch"] in done.stdout
    assert all(s["branch"] is None for s in sessions if not s["repository"])

    loop = summary["learning"]
    assert loop["problem"] == "", loop
    made = {item["asset"]: item for item in loop["materializations"]}
    assert list(made) == [
        "training_dataset",
        "fine_tuned_model",
        "model_evaluation",
        "model_promotion",
    ]
    assert {item["partition"] for item in made.values()} == {"acme"}
    assert made["training_dataset"]["metadata"]["eval_examples"] >= 10
    assert made["fine_tuned_model"]["run_id"] == ""  # the sensor's, not a run's
    evaluation = made["model_evaluation"]["metadata"]
    assert evaluation["decision"] == "PROMOTE"
    assert evaluation["tuned_accuracy"] > evaluation["base_accuracy"]
    promoted = made["model_promotion"]["metadata"]["model"]
    assert promoted == f"indorch-tuned/{made['fine_tuned_model']['metadata']['fine_tuned_model']}"
    assert loop["promoted_model"] == promoted
    session = loop["session"]
    assert session["state"] == "COMPLETED"
    assert session["model"] == promoted
    assert session["recorded_models"] == [promoted]  # what OpenCode says answered
    assert session["answer"] == PROMOTED_ANSWER
    for item in made.values():
        assert item["url"] in done.stdout
    assert f"promoted {promoted}; the next session ran with it" in done.stdout
    assert "none left" in done.stdout

    assert leftover_processes(summary["demo_id"], summary["runtime_root"]) == []
    assert not Path(summary["runtime_root"]).exists()


def test_the_demo_refuses_to_start_where_runtimes_cannot_be_sandboxed(tmp_path: Path) -> None:
    """No `bwrap` on its PATH (or not root): exit 2, saying why, before anything is made."""
    state_dir = tmp_path / "demo"
    env = {key: value for key, value in os.environ.items() if key != DEMO_ID_VAR}
    env["PATH"] = str(Path(sys.executable).parent)  # the project's tools only: no bwrap
    command = [INDORCH, "demo", "--exit", "--port", str(free_port()), "--state-dir", str(state_dir)]
    done = subprocess.run(
        command, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "runtimes cannot be sandboxed here" in done.stdout, done.stdout
    assert "bubblewrap" in done.stdout
    assert not state_dir.exists()
