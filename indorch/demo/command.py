"""`indorch demo`: the product's main job on the embedded default, end to end, on one machine.

Everything it does is in `indorch.demo.run` (imported when the command runs, so the other
commands do not pay for it): a fresh state directory, the scripted model, `dagster dev`, two
tenants each on its own managed runtime (a real OpenCode server in its sandbox) with a repository
the demo makes, and about a dozen sessions followed live, then one tenant's
learning loop (dataset -> fine-tuning job -> evaluation -> promotion -> a session with the
promoted model), then a summary.
`make demo` runs it (`make demo ARGS="--exit --quick"`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from resources.settings import PROJECT_ROOT

DEFAULT_STATE_DIR = PROJECT_ROOT / ".state" / "demo"
LOG_WIDTH = 170


def demo(
    state_dir: Path = typer.Option(
        DEFAULT_STATE_DIR, "--state-dir", help="Fresh state directory (wiped first)."
    ),
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
    host: str = typer.Option("127.0.0.1", help="Address the Dagster UI listens on."),
    quick: bool = typer.Option(
        False, "--quick", help="Leave out the slow session and the 60 s timeout one."
    ),
    exit_when_done: bool = typer.Option(
        False, "--exit", help="Stop everything once the sessions are done (CI, tests)."
    ),
    timeout: float = typer.Option(
        600.0, help="Give up waiting for the sessions after this many seconds (exit 1)."
    ),
) -> None:
    """Run the main job on the embedded default: two tenants on their own runtimes, Dagster."""
    from rich.console import Console

    from indorch.demo.run import Demo, DemoOptions

    # Not a terminal (CI logs, tests): wide enough for the summary table, unless COLUMNS says.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=LOG_WIDTH) if wide else Console()
    options = DemoOptions(state_dir, host, port, quick, exit_when_done, timeout)
    raise typer.Exit(Demo(options, console).run())
