"""`indorch api serve`: the tenant HTTP API under uvicorn, on the configured database and Redis."""

from __future__ import annotations

import typer

api_app = typer.Typer(help="The tenant HTTP API.", no_args_is_help=True)


@api_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        help="uvicorn's line per request (off: every request is counted by route and status "
        "in GET /metrics' latency histogram, at a fraction of the CPU).",
    ),
) -> None:
    """Serve the API (OpenAPI document at /openapi.json, docs at /docs) until interrupted."""
    import uvicorn

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
    )
