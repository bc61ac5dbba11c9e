"""`resources.git.command_runner.CommandRunner` for a managed runtime: git and setup scripts run
as the tenant's OS user inside its sandbox (the same mounts as its server: its HOME and
workspaces read-write, plus `writable`), with the environment they are given and nothing of the
platform's (`sandbox_environment` refuses a platform variable). `HOME` is always the tenant's:
given as that, it is taken; any other `HOME` is refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from resources.git.command_runner import CommandResult, LocalCommandRunner, OutputSink
from resources.runtime_host.sandbox import (
    BASE_PATH,
    SandboxSpec,
    sandbox_argv,
    sandbox_environment,
)
from resources.runtime_host.tenant_users import TenantUser


class SandboxedCommandRunner:
    """One tenant's runner; `writable`: more of the tenant's directories to mount (e.g. its
    directory under `INDORCH_WORKSPACES_DIR`, owned by the tenant's user)."""

    def __init__(
        self,
        user: TenantUser,
        writable: Sequence[Path] = (),
        read_only: Sequence[Path] = (),
    ) -> None:
        self._user = user
        self._writable = tuple(writable)
        self._read_only = tuple(read_only)
        self._local = LocalCommandRunner(path=BASE_PATH)

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        extra = dict(env)
        home = extra.pop("HOME", None)
        if home is not None and Path(home) != self._user.home:
            raise ValueError("not passed into a tenant sandbox: a HOME other than the tenant's")
        spec = SandboxSpec(
            user=self._user,
            cwd=cwd,
            read_only=self._read_only,
            writable=self._writable,
            die_with_parent=True,  # a timeout kills bwrap's group: the sandbox goes with it
        )
        return await self._local.run(
            sandbox_argv(spec, argv),
            cwd=Path("/"),
            env=sandbox_environment(self._user, extra),
            timeout=timeout,
            on_output=on_output,
        )
