"""Running a command for a tenant: git and the repositories' setup scripts go through this port.

The default runs the command as the current user with an environment built from nothing but
what is given (plus `PATH` and a locale): never the control plane's own (`DATABASE_URL`, the
provider keys, the servers' passwords). A managed tenant runtime plugs in a runner that runs the
same command as the tenant's OS user inside its sandbox. Output (stdout and stderr together) is
passed on line by line and its tail kept; secrets given in `env` are the command's alone, never
in its argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TAIL_CHARS = 4000
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
OutputSink = Callable[[str], None]


@dataclass(frozen=True)
class CommandResult:
    returncode: int  # -1: killed after its timeout
    output: str  # the tail of stdout and stderr together

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandRunner(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        """Run `argv` in `cwd` with exactly `env` (plus PATH and locale); never raises for the
        command's own failure (see `returncode`)."""


class LocalCommandRunner:
    """As the current user, on this host (no sandbox): the runner of today's agent servers."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path or os.environ.get("PATH") or DEFAULT_PATH

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={"PATH": self._path, "LANG": "C.UTF-8", **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its children go with it on a timeout
        )
        tail: list[str] = []
        size = 0

        async def read() -> None:
            nonlocal size
            assert process.stdout is not None
            async for raw in process.stdout:
                line = raw.decode(errors="replace")
                if on_output is not None:
                    on_output(line)
                tail.append(line)
                size += len(line)
                while size > TAIL_CHARS and len(tail) > 1:
                    size -= len(tail.pop(0))

        try:
            async with asyncio.timeout(timeout):
                await read()
                returncode = await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            tail.append(f"\n[killed after {timeout:g} s]\n")
            returncode = -1
        except BaseException:
            _kill_group(process.pid)
            raise
        return CommandResult(returncode, "".join(tail)[-TAIL_CHARS:])


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, 9)
