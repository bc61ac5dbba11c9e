"""stdout/stderr routed per thread, so runs sharing one process each capture their own output.

Dagster captures a step's output by redirecting the process's file descriptors 1 and 2 to the
step's files. In the run worker several runs execute at once, one per thread, so the process's
descriptors cannot belong to any of them. Instead `sys.stdout`/`sys.stderr` become
`ThreadRoutedStream`s: what a thread writes goes to the files its run's capture opened, and
everything else (the worker's own lines, threads of no run) to the original stream. Output
written below Python (a C library or a child process writing to descriptor 2) is not routed; it
lands in the worker's own log.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


class ThreadRoutedStream:
    """A text stream that writes to the calling thread's target, or to the stream it replaced."""

    def __init__(self, fallback: IO[str]) -> None:
        self.fallback = fallback
        self._local = threading.local()

    @property
    def target(self) -> IO[str]:
        return getattr(self._local, "target", None) or self.fallback

    @contextmanager
    def routed_to(self, target: IO[str]) -> Iterator[None]:
        """Route this thread's writes to `target` for the block (blocks nest)."""
        previous = getattr(self._local, "target", None)
        self._local.target = target
        try:
            yield
        finally:
            target.flush()
            self._local.target = previous

    def write(self, text: str) -> int:
        return self.target.write(text)

    def writelines(self, lines: Any) -> None:
        self.target.writelines(lines)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        # The descriptor is the process's: writes to it are not routed (see the module's note).
        return self.fallback.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def install() -> tuple[ThreadRoutedStream, ThreadRoutedStream]:
    """Replace sys.stdout and sys.stderr by routed streams (once; idempotent)."""
    if not isinstance(sys.stdout, ThreadRoutedStream):
        sys.stdout = ThreadRoutedStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, ThreadRoutedStream):
        sys.stderr = ThreadRoutedStream(sys.stderr)  # type: ignore[assignment]
    return sys.stdout, sys.stderr  # type: ignore[return-value]


def installed() -> tuple[ThreadRoutedStream, ThreadRoutedStream] | None:
    """The routed streams if this process routes its output per thread, else None."""
    if isinstance(sys.stdout, ThreadRoutedStream) and isinstance(sys.stderr, ThreadRoutedStream):
        return sys.stdout, sys.stderr
    return None
