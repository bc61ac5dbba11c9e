"""The learning loop's figures: a dataset built from a tenant's 10,000 sessions, a fine-tuning
job's turnaround on the stand-in provider, and an evaluation of 200 held-out items.

    .venv/bin/python -m bench.learning [--sessions 10000] [--eval-items 200]
        [--database sqlite|postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

The tenant's sessions answer recurring questions in several wordings (as a team's sessions do),
so the tuned model has something to learn; the evaluation's accuracies are measured, not set.
Time is wall-clock; memory is the peak of Python allocations during each step (tracemalloc),
beside the process's peak RSS. Results: a table on stdout and `bench/results/learning.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.table import Table

from bench.world import database
from domain.ab_comparison import PromotionRule
from domain.caller import Caller
from domain.fine_tuning import FineTuningStatus, TrainingParameters
from domain.session import Session, SessionStatus
from domain.tenant import Tenant
from domain.training_examples import DatasetPolicy
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore
from resources.training_provider.resource import TrainingProviderResource
from services.fine_tuning import FineTuningService
from services.model_evaluation import ModelEvaluationService
from services.training_data import TrainingDataService
from standins.opencode_server import free_port

RESULTS = Path(__file__).parent / "results" / "learning.json"
TENANT = "bench-learning"
BASE_MODEL = "base-coder"
WORDINGS = (
    "How do I run the tests of {name}?",
    "what command runs the {name} test suite",
    "Running {name}'s tests: which command?",
    "{name}: how are its tests started?",
)
BATCH = 500
T = TypeVar("T")


def measured(step: Callable[[], T]) -> tuple[T, float, float]:
    """The step's result, wall seconds and peak MB of Python allocations."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = step()
    finally:
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, seconds, peak / 1e6


@contextmanager
def provider_process(data: Path, step_seconds: float) -> Iterator[str]:
    """The stand-in provider in a process of its own: its training is not ours to measure."""
    port = free_port()
    command = [sys.executable, "-m", "standins.finetune_provider", "--port", str(port)]
    command += ["--data", str(data), "--step-seconds", str(step_seconds)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield f"{url}/v1"
    finally:
        process.terminate()
        process.wait(10)


def seed_sessions(db: Database, count: int) -> None:
    with unit_of_work(db) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Bench", max_concurrent_sessions=10))
    for start in range(0, count, BATCH):
        with tenant_scope(TENANT), unit_of_work(db) as uow:
            for n in range(start, min(start + BATCH, count)):
                fact, wording = divmod(n, len(WORDINGS))
                name = f"service-{fact}"
                uow.sessions.add(
                    Session(
                        tenant_id=TENANT,
                        title=name,
                        initial_prompt=WORDINGS[wording].format(name=name),
                        status=SessionStatus.COMPLETED,
                        result={"text": f"Run `make check-{fact * 7}` in {name}."},
                    )
                )


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    rows: dict[str, Any] = {}
    with database(args.database, scratch, "learning", args.postgres_url) as url:
        db = Database(url)
        _, seconds, _ = measured(lambda: seed_sessions(db, args.sessions))
        rows["seed"] = {"sessions": args.sessions, "seconds": seconds}
        store = DatasetStore(scratch / "datasets")
        policy = DatasetPolicy(eval_fraction=min(0.5, args.eval_items / args.sessions))
        built, seconds, peak = measured(
            lambda: TrainingDataService(db, store).build(Caller.operator(), TENANT, policy)
        )
        rows["dataset"] = {
            "sessions": args.sessions,
            "train": len(built.dataset.train),
            "eval": len(built.dataset.eval),
            "seconds": seconds,
            "peak_mb": peak,
        }
        with provider_process(scratch / "provider", args.step_seconds) as api_url:
            provider = TrainingProviderResource(base_url=api_url, api_key="sk-bench").client()
            service = FineTuningService(db)

            def train() -> Any:
                job = service.submit(
                    Caller.operator(),
                    TENANT,
                    dataset=built.stored,
                    base_model=BASE_MODEL,
                    parameters=TrainingParameters(epochs=2),
                    provider=provider,
                )
                while job.status not in (FineTuningStatus.COMPLETED, FineTuningStatus.FAILED):
                    time.sleep(0.2)
                    job = service.follow(TENANT, job.id, provider, store.find)
                return job

            started = time.perf_counter()  # no tracemalloc: the provider's time, not ours
            job = train()
            seconds, peak = time.perf_counter() - started, None
            rows["fine_tune"] = {
                "status": job.status.value,
                "trained_tokens": job.metrics.trained_tokens,
                "seconds": seconds,
                "peak_mb": peak,
                "step_seconds": args.step_seconds,
            }
            (evaluation, comparison), seconds, peak = measured(
                lambda: ModelEvaluationService(db, store, provider).evaluate(
                    Caller.operator(),
                    TENANT,
                    dataset_version=built.stored.version,
                    base_model=BASE_MODEL,
                    candidate_model=job.fine_tuned_model,
                    job_id=job.id,
                    rule=PromotionRule(),
                    seed=0,
                )
            )
            rows["evaluation"] = {
                "items": comparison.items,
                "base_accuracy": comparison.base_accuracy,
                "tuned_accuracy": comparison.tuned_accuracy,
                "ci": [comparison.ci_low, comparison.ci_high],
                "mcnemar_p": comparison.mcnemar_p,
                "decision": evaluation.decision.value,
                "seconds": seconds,
                "peak_mb": peak,
            }
        db.dispose()
    return {
        "command": "python -m bench.learning "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v and k != "output"
        ),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "database": args.database,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps": rows,
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def print_table(document: dict[str, Any]) -> None:
    steps = document["steps"]
    table = Table(title=f"learning loop ({document['database']}, one tenant)")
    for column in ("step", "size", "seconds", "peak MB (Python)", "result"):
        table.add_column(column)
    dataset, tune, evaluation = steps["dataset"], steps["fine_tune"], steps["evaluation"]
    table.add_row(
        "dataset build",
        f"{dataset['sessions']:,} sessions",
        f"{dataset['seconds']:.1f}",
        f"{dataset['peak_mb']:.0f}",
        f"{dataset['train']:,} train / {dataset['eval']} eval",
    )
    table.add_row(
        "fine-tune (stand-in)",
        f"{tune['trained_tokens'] or 0:,} tokens",
        f"{tune['seconds']:.1f}",
        "(another process)",
        tune["status"],
    )
    table.add_row(
        "evaluation",
        f"{evaluation['items']} items x 2 models",
        f"{evaluation['seconds']:.1f}",
        f"{evaluation['peak_mb']:.0f}",
        f"{evaluation['base_accuracy']:.2f} -> {evaluation['tuned_accuracy']:.2f}, "
        f"{evaluation['decision']}",
    )
    Console().print(table)
    Console().print(f"process peak RSS {document['max_rss_mb']:.0f} MB")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.learning", description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--eval-items", type=int, default=200)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    document = run(args)
    print_table(document)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
