"""Running the stand-in provider: in a background thread (tests, the demo) or as a command.

with FineTuneProviderServer(data_dir, step_seconds=0.2) as provider:
    OpenAI(base_url=provider.api_url, api_key="tenant-a-key")

python -m standins.finetune_provider --port 18090 --data DIR [--step-seconds 0.5]
    [--base-model NAME ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from standins.background_server import BackgroundServer
from standins.finetune_provider.app import Faults, create_app
from standins.finetune_provider.provider import (
    DEFAULT_BASE_MODELS,
    DEFAULT_STEP_SECONDS,
    FineTuneProvider,
)
from standins.finetune_provider.store import Store


class FineTuneProviderServer:
    """The stand-in provider on a free port, its jobs in ``data_dir``'s SQLite file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        step_seconds: float = DEFAULT_STEP_SECONDS,
        base_models: tuple[str, ...] = DEFAULT_BASE_MODELS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.provider = FineTuneProvider(
            Store(data_dir), step_seconds=step_seconds, base_models=base_models
        )
        self.faults = Faults()
        self._server = BackgroundServer(
            create_app(self.provider, self.faults), host=host, port=port
        )

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_url(self) -> str:
        """The base URL an OpenAI client takes (``.../v1``)."""
        return f"{self._server.url}/v1"

    def inject_faults(self, status: int, times: int, retry_after_ms: int | None = None) -> None:
        """Answer the next `times` API requests with `status` (over HTTP, as a test would)."""
        body = {"status": status, "times": times, "retry_after_ms": retry_after_ms}
        httpx.post(f"{self.url}/_standin/faults", json=body, timeout=5).raise_for_status()

    def requests(self) -> list[dict[str, object]]:
        return list(self.faults.requests)

    def start(self) -> FineTuneProviderServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FineTuneProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m standins.finetune_provider", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--data", type=Path, required=True, help="directory of its SQLite file")
    parser.add_argument("--step-seconds", type=float, default=DEFAULT_STEP_SECONDS)
    parser.add_argument("--base-model", action="append", dest="base_models")
    args = parser.parse_args(argv)
    provider = FineTuneProvider(
        Store(args.data),
        step_seconds=args.step_seconds,
        base_models=tuple(args.base_models) if args.base_models else DEFAULT_BASE_MODELS,
    )
    print(f"fine-tuning provider on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(provider), host=args.host, port=args.port, log_level="warning")
