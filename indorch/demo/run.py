"""The demo driver behind `indorch demo`: the main job on the embedded default, end to end.

In a fresh state directory (default `.state/demo/`, wiped first): a SQLite application database
(`indorch db upgrade`), a Dagster home from `dagster_instance/dagster.yaml`, the scripted model,
a git server over HTTP with one small repository per tenant (made by the demo), and `dagster dev`
(webserver and daemon). Each of the two tenants gets its own managed runtime
(`indorch.demo.tenant_runtimes`: a real OpenCode server as the tenant's OS user in bubblewrap,
its only agent), its repository registered with credentials from a tenant secret, and about a
dozen sessions, submitted through `SessionService`; the daemon's sensors dispatch them in
`session_wave` runs, retry what fails, and settle the decomposed request. The sessions on a
repository each work in their own worktree inside their tenant's runtime and push their branch
`indorch/<session id>`. A table follows them live. Then the learning loop
(`indorch.demo.learning_loop`): acme's recurring-question sessions (submitted with the others)
become a dataset, a job at the stand-in fine-tuning provider (a child process too), a measured
evaluation and a promotion, and one last session runs with the promoted model. A summary
follows, with where to look in the Dagster UI, which stays up until Ctrl-C (`--exit`: stop when
done).

Exit codes: 0 every session COMPLETED (or PARTIALLY_COMPLETED) and the loop closed (the promoted
model answered the last session); 1 some did not, the loop did not close, or the demo could
not run (a process did not start); 2 refused before starting anything (a port is taken, the
state directory is not the demo's, runtimes cannot be sandboxed here: not root, or no
bubblewrap); 130 interrupted before the sessions were done. Every child
process is stopped on every path; `<state dir>/summary.json` holds the summary, `logs/` the
children's output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rich.console import Console
from rich.text import Text

from domain.caller import Caller
from indorch.demo import repositories
from indorch.demo.dagster_dev import UiLinks, WaveRun, materialized_partitions, wait_for_runs_to_end
from indorch.demo.learning_loop import LoopReport, LoopSetting, run_loop, summary_lines
from indorch.demo.processes import DemoError, DemoProcesses, PortTaken, require_free_port
from indorch.demo.progress import Progress, Row, branches_table, rows_for, summary_table
from indorch.demo.recurring_questions import (
    LEARNING_TENANT,
    recurring_sessions,
    wait_until_answered,
)
from indorch.demo.sessions import (
    TENANTS,
    TIMEOUT_SECONDS,
    Submitted,
    demo_sessions,
    seed,
    submit_all,
)
from indorch.demo.tenant_runtimes import DemoRuntimes, make_runtime_root
from indorch.demo.watchdog import DEMO_ID_VAR, leftover_processes, terminate_leftovers
from resources.runtime_host.sandbox import sandbox_problem
from resources.settings import PROJECT_ROOT, PROVIDER_API_KEY_VAR
from standins.opencode_server import free_port

if TYPE_CHECKING:
    from resources.database import Database
    from services.session_service import SessionService

STATE_MARKER = ".indorch-demo"
DAGSTER_TEMPLATE = PROJECT_ROOT / "dagster_instance" / "dagster.yaml"
RUNS_END_WAIT_SECONDS = 30.0
HISTORY_WAIT_SECONDS = 240.0
PROVIDER_STEP_SECONDS = 0.2
SUCCESS_STATES = frozenset({"COMPLETED", "PARTIALLY_COMPLETED"})
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'indorch.db'}"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def git_root(self) -> Path:
        """The bare repositories the git server serves."""
        return self.root / "git"

    @property
    def runtime_config(self) -> Path:
        """The OpenCode config every tenant runtime gets (the scripted model as provider)."""
        return self.root / "runtime-opencode.json"

    @property
    def provider_data(self) -> Path:
        return self.root / "finetune-provider"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


def prepare_state(root: Path) -> DemoPaths:
    """Wipe and recreate the state directory; refuse one the demo did not make (not empty)."""
    root = root.expanduser().resolve()
    if root.exists():
        if not root.is_dir() or (any(root.iterdir()) and not (root / STATE_MARKER).exists()):
            raise DemoError(
                f"{root} exists and was not made by the demo; refusing to wipe it "
                "(pass another --state-dir)"
            )
        shutil.rmtree(root)
    paths = DemoPaths(root)
    for directory in (paths.dagster_home, paths.logs, paths.git_root):
        directory.mkdir(parents=True)
    (root / STATE_MARKER).write_text("made by `indorch demo`; wiped by its next run\n")
    shutil.copyfile(DAGSTER_TEMPLATE, paths.dagster_home / "dagster.yaml")
    return paths


def demo_environment(
    paths: DemoPaths, demo_id: str, provider_api_url: str, runtime_root: Path
) -> dict[str, str]:
    """This process's environment becomes the demo's (the children inherit it): the state dir's
    SQLite database and Dagster home, no Redis (the embedded default), the stand-in fine-tuning
    provider's URL and a platform key made for this run, the runtimes' root and OpenCode config
    (sandboxed: never without), the demo id marker."""
    from resources.runtime_host.host import CONFIG_VAR, ROOT_VAR, UNSANDBOXED_VAR
    from resources.settings import (
        DATABASE_URL_VAR,
        PROVIDER_API_KEY_VAR,
        PROVIDER_BASE_URL_VAR,
        REDIS_URL_VAR,
        STATE_DIR_VAR,
    )

    os.environ.pop(REDIS_URL_VAR, None)
    os.environ.pop(UNSANDBOXED_VAR, None)
    os.environ.update(
        {
            ROOT_VAR: str(runtime_root),
            CONFIG_VAR: str(paths.runtime_config),
            DATABASE_URL_VAR: paths.database_url,
            STATE_DIR_VAR: str(paths.root),
            "DAGSTER_HOME": str(paths.dagster_home),
            PROVIDER_BASE_URL_VAR: provider_api_url,
            PROVIDER_API_KEY_VAR: f"sk-demo-platform-{secrets.token_hex(16)}",
            DEMO_ID_VAR: demo_id,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return dict(os.environ)


@dataclass
class Timings:
    """Seconds since the demo started, by milestone (in the order they happened)."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.started

    def mark(self, name: str) -> float:
        self.marks[name] = round(self.now(), 1)
        return self.marks[name]


@dataclass
class DemoOptions:
    state_dir: Path
    host: str
    port: int
    quick: bool
    exit_when_done: bool
    timeout: float


INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    """The first Ctrl-C, SIGTERM or hang-up starts the clean-up; later ones must not cut it
    short (a closing terminal sends SIGHUP right after the SIGINT, for one)."""
    _ignore_signals()
    raise KeyboardInterrupt


def _install_signal_handlers() -> None:
    # Also when started with SIGINT ignored (a background job): the children get defaults.
    for signum in INTERRUPTS:
        signal.signal(signum, _interrupt)


def _ignore_signals() -> None:
    for signum in INTERRUPTS:
        signal.signal(signum, signal.SIG_IGN)


def _restore_signals() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.timings = Timings()
        self.demo_id = uuid.uuid4().hex[:16]
        self.ui = UiLinks(f"http://{options.host}:{options.port}")
        self.paths: DemoPaths | None = None
        self.processes: DemoProcesses | None = None
        self.database: Database | None = None
        self.service: SessionService | None = None
        self.agent_names: dict[str, str] = {}
        self.provider_api_url = f"http://{options.host}:{free_port(options.host)}/v1"
        self.history: list[Submitted] = []
        self.runtime_root: Path | None = None
        self.runtimes: DemoRuntimes | None = None
        self.git_url = ""
        self.git_passwords: dict[str, str] = {}  # a password per tenant

    def out(self, *objects: object, **options: object) -> None:
        """Print, unless the terminal is gone (closed window): the clean-up must go on."""
        with contextlib.suppress(OSError):
            self.console.print(*objects, highlight=False, **options)

    def say(self, message: str) -> None:
        """A step of the demo, on the console and in `logs/demo.log`."""
        self.out(f"[dim]{self.timings.now():6.1f}s[/dim] {message}")
        self.log(message)

    def log(self, message: str) -> None:
        if self.paths is None:
            return
        with contextlib.suppress(OSError), (self.paths.logs / "demo.log").open("a") as log:
            log.write(f"{self.timings.now():7.1f}s {Text.from_markup(message).plain}\n")

    # -- the whole run --------------------------------------------------------------------------

    def run(self) -> int:
        _install_signal_handlers()
        stage = "starting"
        code = EXIT_INTERRUPTED
        try:
            require_free_port(
                self.options.host,
                self.options.port,
                "the Dagster UI",
                "stop what listens there (another `dagster dev` or demo?) or pass --port",
            )
            problem = sandbox_problem()
            if problem is not None:
                raise DemoError(
                    f"the tenants' runtimes cannot be sandboxed here ({problem}); the demo runs "
                    "each tenant on its own sandboxed runtime: run it as root with bubblewrap "
                    "installed (scripts/bootstrap.sh installs it)"
                )
            self.paths = prepare_state(self.options.state_dir)
            self.runtime_root = make_runtime_root()
            env = demo_environment(
                self.paths, self.demo_id, self.provider_api_url, self.runtime_root
            )
            self.processes = DemoProcesses(env=env, logs=self.paths.logs)
            self.processes.start_watchdog(self.marker)
            self.start()
            stage = "sessions"
            rows = self.follow(self.submit())
            stage = "learning loop"
            loop = self.learn()
            stage = "summary"
            code = self.summarize(rows, loop)
            stage = "ui"
            if not self.options.exit_when_done:
                self.keep_ui_up()
            return code
        except PortTaken as refused:
            self.out(f"[red]error:[/red] {refused}")
            return EXIT_REFUSED
        except DemoError as error:
            self.out(f"[red]error:[/red] {error}")
            return EXIT_REFUSED if self.processes is None else EXIT_FAILED
        except KeyboardInterrupt:
            self.out(f"\ninterrupted ({stage}); stopping everything")
            self.log(f"interrupted ({stage})")
            return code if stage == "ui" else EXIT_INTERRUPTED
        except OSError as error:
            if error.errno not in {errno.EIO, errno.EPIPE}:  # the terminal or the reader is gone
                raise
            return EXIT_INTERRUPTED
        finally:
            _ignore_signals()
            try:
                self.stop()
            finally:
                _restore_signals()

    # -- steps ----------------------------------------------------------------------------------

    @property
    def marker(self) -> str:
        """In the command line of every process of the tenants' runtimes (their root)."""
        return f"{self.runtime_root}/" if self.runtime_root else ""

    def start(self) -> None:
        from indorch.context import open_database
        from resources.database.migrate import upgrade
        from standins.opencode_config import provider_config

        assert self.paths is not None and self.processes is not None
        assert self.runtime_root is not None
        self.say(f"state directory [bold]{self.paths.root}[/bold] (fresh; logs in logs/)")
        upgrade(self.paths.database_url)
        self.database = open_database()
        self.say(f"database {self.paths.database_url} migrated (indorch db upgrade)")
        self.start_git_server()  # first: the runtimes, restarted by the daemon too, may reach it
        self.timings.mark("dagster_spawned")
        dagster = self.processes.start_dagster(self.options.host, self.options.port)
        self.say(
            f"dagster dev starting (pid {dagster.pid}), DAGSTER_HOME={self.paths.dagster_home}"
        )
        model_url = self.processes.start_scripted_model()
        self.timings.mark("model_ready")
        self.say(f"scripted model on {model_url}")
        self.processes.start_finetune_provider(
            self.provider_api_url, self.paths.provider_data, PROVIDER_STEP_SECONDS
        )
        self.say(f"stand-in fine-tuning provider on {self.provider_api_url}")
        seed(self.database)
        tenants = ", ".join(f"{t.slug} (max {t.max_concurrent_sessions})" for t in TENANTS)
        self.say(f"tenants {tenants}")
        self.start_repositories()
        self.processes.require_opencode()
        self.paths.runtime_config.write_text(json.dumps(provider_config(model_url)))
        self.runtimes = DemoRuntimes(self.database, self.runtime_root)
        self.processes.stop_runtimes = self.stop_runtimes
        started = self.runtimes.start_all([tenant.slug for tenant in TENANTS])
        for tenant, runtime in zip(TENANTS, started, strict=True):
            self.say(
                f"{tenant.slug}'s runtime on {runtime.server_url} (pid {runtime.pid}): "
                f"OpenCode as OS user {runtime.os_user} in bubblewrap, HOME and workspaces "
                f"under {self.runtime_root / tenant.slug} (indorch runtime start)"
            )
        self.timings.mark("runtimes_ready")
        self.agent_names = {
            str(runtime["agent_id"]): str(runtime["agent"]) for runtime in self.runtimes.describe()
        }
        self.say(f"waiting for the Dagster UI on {self.ui.base} ...")
        self.processes.wait_for_dagster(dagster, self.ui.base)
        self.timings.mark("dagster_ready")
        self.say(
            f"Dagster UI up on [bold]{self.ui.base}[/bold] "
            f"({self.timings.marks['dagster_ready'] - self.timings.marks['dagster_spawned']:.1f} s "
            "after launch); the daemon runs the sensors"
        )

    def start_git_server(self) -> None:
        """One bare repository per tenant, served over HTTP on the loopback; the tenants'
        runtimes are allowed to reach it (their network rules refuse the loopback otherwise:
        `INDORCH_RUNTIME_NETWORK_ALLOW`, in the environment of this process and its children)."""
        from resources.runtime_host.network_rules import ALLOW_VAR, allowing

        assert self.paths is not None and self.processes is not None
        for repository in repositories.REPOSITORIES:
            repositories.create_bare(repository, self.paths.git_root)
            self.git_passwords[repository.tenant] = secrets.token_urlsafe(16)
        self.git_url = self.processes.start_git_server(
            self.paths.git_root,
            {tenant: (tenant, password) for tenant, password in self.git_passwords.items()},
        )
        endpoint = urlsplit(self.git_url).netloc
        allowed = allowing(endpoint)
        os.environ[ALLOW_VAR] = self.processes.env[ALLOW_VAR] = allowed
        self.say(
            f"git server over HTTP on {self.git_url} (git http-backend, an account per tenant)"
        )

    def start_repositories(self) -> None:
        """The tenants' repositories registered, their credentials in a tenant secret."""
        assert self.database is not None
        for repository in repositories.REPOSITORIES:
            url = repository.url(self.git_url)
            password = self.git_passwords[repository.tenant]
            repositories.register(self.database, repository, url, password)
            self.say(
                f"{repository.tenant}'s repository {repository.name} ({url}, "
                f"{len(repository.files)} files on main) registered, its credentials in tenant "
                f"secret {repositories.CREDENTIALS_SECRET} (indorch secret set, indorch repo add)"
            )

    def stop_runtimes(self) -> None:
        if self.runtimes is not None and self.paths is not None:
            self.runtimes.stop_all(self.paths.logs)

    def submit(self) -> list[Submitted]:
        from indorch.context import service_factory
        from resources.settings import DAGSTER_WEBSERVER_URL_VAR

        assert self.database is not None
        # The submits launch each tenant's wave through the demo's webserver at once (up by now)
        # instead of waiting for the dispatch sensor's tick.
        os.environ[DAGSTER_WEBSERVER_URL_VAR] = self.ui.base
        self.service = service_factory(self.database).sessions()
        submitted = submit_all(self.service, demo_sessions(self.options.quick))
        self.history = submit_all(self.service, recurring_sessions())
        self.timings.mark("submitted")
        self.say(
            f"submitted {len(submitted)} sessions"
            + (
                " (--quick: without the slow one and the 60 s timeout)"
                if self.options.quick
                else ""
            )
            + f", then {len(self.history)} short ones of {LEARNING_TENANT} asking its recurring "
            "questions (the history its model learns from; not in the table); "
            "the daemon's dispatch sensor takes them from here"
        )
        return submitted

    def snapshot(self, submitted: list[Submitted]) -> list[Row]:
        assert self.service is not None
        sessions = []
        for tenant in TENANTS:
            sessions += self.service.list(Caller.operator(), tenant.slug, limit=1000)
        return rows_for(sessions, submitted, self.agent_names)

    def follow(self, submitted: list[Submitted]) -> list[Row]:
        def note(rows: list[Row]) -> str:
            waiting = [r for r in rows if r.scenario.startswith("hangs") and not r.settled]
            if not waiting:
                return ""
            return (
                f"'{waiting[0].title}' hangs on purpose: it is aborted at its {TIMEOUT_SECONDS} s "
                "deadline (TIMEOUT) and retried, so the demo takes about a minute and a half"
            )

        deadline = time.monotonic() + self.options.timeout
        hint = f"Dagster UI {self.ui.base}: runs at {self.ui.runs}"
        progress = Progress(self.console, lambda: self.snapshot(submitted), hint)
        rows = progress.follow(time.monotonic(), deadline, note)
        self.timings.mark("settled")
        return rows

    def wait_for_history(self) -> None:
        assert self.service is not None
        ids = {item.session_id for item in self.history}
        wait_until_answered(self.service, ids, self.say, HISTORY_WAIT_SECONDS)
        self.timings.mark("history_done")

    def learn(self) -> LoopReport:
        assert self.paths is not None and self.database is not None
        self.wait_for_history()
        setting = LoopSetting(
            base=self.ui.base,
            tenant=LEARNING_TENANT,
            api_url=self.provider_api_url,
            platform_key=os.environ[PROVIDER_API_KEY_VAR],
            log=self.paths.logs / "learning-runs.log",
        )
        report = run_loop(setting, self.database, self.service, self.say)
        self.timings.mark("loop_done")
        return report

    def summarize(self, rows: list[Row], loop: LoopReport) -> int:
        assert self.paths is not None
        runs: list[WaveRun] = []
        partitions: dict[str, int] = {}
        dagster_problem = ""
        try:
            runs = wait_for_runs_to_end(self.ui.base, RUNS_END_WAIT_SECONDS)
            partitions = dict(materialized_partitions(self.ui.base))
        except Exception as error:  # the summary of sessions matters more than Dagster's
            dagster_problem = f"could not ask the Dagster UI: {type(error).__name__}: {error}"
        self.timings.mark("runs_ended")
        runtimes = self.runtimes.describe() if self.runtimes is not None else []
        self.out()
        self.out(summary_table(rows))
        self.out(branches_table(rows, self.repository_urls()))
        self.out(
            "  each branch is on its tenant's remote; the change as `git apply` takes it: "
            "indorch session patch <session> --tenant <tenant>"
        )
        unsettled = [row for row in rows if not row.settled]
        failed = [row for row in rows if row.state not in SUCCESS_STATES]
        if unsettled:
            verdict = f"[red]{len(unsettled)} sessions not settled after {self.options.timeout:g} s"
        elif failed:
            verdict = f"[red]{len(failed)} of {len(rows)} sessions did not complete"
        else:
            verdict = f"[green]all {len(rows)} sessions completed"
        self.out(verdict)
        self.log(verdict)
        self._print_runtimes(runtimes)
        self._print_dagster(runs, partitions, dagster_problem)
        self._print_loop(loop)
        self._print_timings()
        self._write_summary(rows, runs, partitions, loop, runtimes)
        return EXIT_FAILED if failed or not loop.ok else EXIT_OK

    def repository_urls(self) -> dict[str, str]:
        return {f"{r.tenant}/{r.name}": r.url(self.git_url) for r in repositories.REPOSITORIES}

    def _print_runtimes(self, runtimes: list[dict[str, object]]) -> None:
        self.out()
        self.out("[bold]Tenant runtimes[/bold] (indorch runtime list)")
        for runtime in runtimes:
            sandbox = "bubblewrap" if runtime["sandboxed"] else "[red]NOT sandboxed[/red]"
            self.out(
                f"  {runtime['tenant']}: {runtime['status']} on {runtime['server_url']}, OS user "
                f"{runtime['os_user']}, {sandbox}, agent {runtime['agent']}, "
                f"{runtime['resident_mb']} MB resident, {runtime['restarts']} restarts"
            )

    def _print_dagster(self, runs: list[WaveRun], partitions: dict[str, int], problem: str) -> None:
        by_status: dict[str, int] = {}
        for run in runs:
            by_status[run.status] = by_status.get(run.status, 0) + 1
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()))
        materialized = ", ".join(f"{tenant}: {n}" for tenant, n in sorted(partitions.items()))
        self.out()
        self.out(f"[bold]Dagster UI[/bold]  {self.ui.base}")
        self.out(f"  session_wave runs ({len(runs)}: {statuses or 'none'})  {self.ui.runs}")
        self.out(
            f"  coding_sessions asset, one partition per tenant "
            f"(materializations {materialized or 'none'})  {self.ui.asset_partitions}"
        )
        sensors = "dispatch, retry, settlement, wave failure, agent health, tenant partitions"
        self.out(f"  sensors ({sensors})  {self.ui.sensors}")
        if problem:
            self.out(f"  [yellow]{problem}[/yellow]")

    def _print_loop(self, loop: LoopReport) -> None:
        self.out()
        for line in summary_lines(loop, len(self.history)):
            self.out(line)
        self.log(f"learning loop closed: {loop.ok} {loop.problem}".rstrip())

    def _print_timings(self) -> None:
        marks = self.timings.marks
        self.out(
            f"[bold]Timings[/bold]  scripted model {marks.get('model_ready', 0):.1f} s, "
            f"tenant runtimes {marks.get('runtimes_ready', 0):.1f} s, "
            f"Dagster UI {marks.get('dagster_ready', 0):.1f} s, "
            f"sessions settled {marks.get('settled', 0):.1f} s "
            f"({marks.get('settled', 0) - marks.get('submitted', 0):.1f} s after submitting), "
            f"history done {marks.get('history_done', 0):.1f} s, "
            f"learning loop done {marks.get('loop_done', 0):.1f} s, "
            f"wave runs ended {marks.get('runs_ended', 0):.1f} s (since the start)"
        )

    def _write_summary(
        self,
        rows: list[Row],
        runs: list[WaveRun],
        partitions: dict[str, int],
        loop: LoopReport,
        runtimes: list[dict[str, object]],
    ) -> None:
        assert self.paths is not None
        summary = {
            "demo_id": self.demo_id,
            "ui": self.ui.base,
            "quick": self.options.quick,
            "timings_seconds": dict(self.timings.marks),
            "runtime_root": str(self.runtime_root),
            "runtimes": runtimes,
            "repositories": [
                {
                    "tenant": repository.tenant,
                    "name": repository.name,
                    "url": repository.url(self.git_url),
                    "bare": str(repository.bare(self.paths.git_root)),
                }
                for repository in repositories.REPOSITORIES
            ],
            "sessions": [row.as_json() for row in rows],
            "wave_runs": [run.__dict__ for run in runs],
            "materializations_by_partition": partitions,
            "learning": loop.as_json(),
        }
        self.paths.summary.write_text(json.dumps(summary, indent=2) + "\n")
        self.out(f"summary: {self.paths.summary}")

    def keep_ui_up(self) -> None:
        assert self.processes is not None
        self.out(
            f"\nThe Dagster UI stays up on [bold]{self.ui.base}[/bold]; "
            "press Ctrl-C to stop everything."
        )
        dagster = next(child for child in self.processes.children if child.name == "dagster")
        while dagster.exited() is None:
            time.sleep(1.0)
        self.out(f"[red]dagster dev exited ({dagster.exited()}); see {dagster.log_path}")

    def stop(self) -> None:
        """Stop every process of the demo, whatever happened (the runtimes through the
        database, before it is closed); say so (if there is a terminal)."""
        if self.processes is None:
            self._close()
            return
        began = time.monotonic()
        try:
            steps = self.processes.stop_all()
            self._close()
            left = terminate_leftovers(self.demo_id, self.marker)
            remaining = leftover_processes(self.demo_id, self.marker)
        finally:
            self.processes.stop_watchdog()
        took = time.monotonic() - began
        detail = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())
        if left:
            self.say(
                f"[yellow]stopped {len(left)} leftover processes:[/yellow] "
                + "; ".join(f"{p.pid} {p.command[:80]}" for p in left)
            )
        if remaining:
            self.say(
                f"[red]{len(remaining)} processes still alive:[/red] "
                + "; ".join(f"{p.pid} {p.command[:80]}" for p in remaining)
            )
        else:
            self.say(f"stopped every demo process in {took:.1f} s ({detail}); none left")

    def _close(self) -> None:
        if self.database is not None:
            with contextlib.suppress(Exception):
                self.database.dispose()
        if self.runtime_root is not None:  # the runtimes' stop removed it, unless they never ran
            shutil.rmtree(self.runtime_root, ignore_errors=True)
