"""`indorch finetune ...`: a tenant's fine-tuning jobs (started by the `fine_tuned_model` asset,
followed by the fine-tuning sensor)."""

from __future__ import annotations

import typer

from domain.caller import Caller
from indorch.context import services
from indorch.output import print_record, print_rows

finetune_app = typer.Typer(help="A tenant's fine-tuning jobs.", no_args_is_help=True)
COLUMNS = ("id", "status", "base_model", "fine_tuned_model", "retry_count", "status_reason")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")


@finetune_app.command("list")
def list_jobs(tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The tenant's jobs, oldest first."""
    with services() as factory:
        jobs = factory.fine_tuning().list(Caller.operator(), tenant)
    print_rows([job.model_dump(mode="json") for job in jobs], COLUMNS, as_json)


@finetune_app.command("show")
def show(job_id: str, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """One job: status, provider job, tuned model, metrics, error."""
    with services() as factory:
        job = factory.fine_tuning().get(Caller.operator(), tenant, job_id)
    print_record(job.model_dump(mode="json"), as_json)


@finetune_app.command("cancel")
def cancel(job_id: str, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Cancel a job at the provider; a finished job is refused (exit 2)."""
    from domain.provider_job import ensure_cancellable
    from resources.training_provider.resource import configured_training_provider_resource

    with services() as factory:
        service = factory.fine_tuning()
        job = service.get(Caller.operator(), tenant, job_id)
        ensure_cancellable(job)  # refused before the provider is even configured
        job = service.cancel(
            Caller.operator(),
            tenant,
            job_id,
            lambda: configured_training_provider_resource().client(),
        )
    print_record(job.model_dump(mode="json"), as_json)
