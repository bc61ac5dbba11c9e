"""What a benchmark ran on: cores, memory, load, the versions of what it measured.

On shared cores the load average says more about a figure than the core count: it is read at
the start and at the end of a run.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib.metadata import version
from typing import Any

import redis
from sqlalchemy import create_engine, text

from resources.database.engine import normalized_url
from standins.opencode_server import OpenCodeNotInstalled, find_opencode_binary


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def facts() -> dict[str, Any]:
    """The machine and the versions; the load average at the start (`end` is added after)."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": {"start": load_average()},
        "python": platform.python_version(),
        "dagster": version("dagster"),
        "opencode": opencode_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def opencode_version() -> str:
    try:
        binary = find_opencode_binary()
    except OpenCodeNotInstalled:
        return "not installed"
    answer = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return answer.stdout.strip() or "unknown"


def postgres_version(url: str) -> str:
    engine = create_engine(normalized_url(url))
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one()).split()[0]
    finally:
        engine.dispose()


def redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()
