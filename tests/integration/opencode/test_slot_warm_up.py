"""The slot warm-up on a real OpenCode server (the scripted model): one prompt in the new
directory that can use no tool, whatever it asks, and leaves no session behind.

Adversarial: the prompt below scripts the model to call `write` and `bash`; with every tool
denied the server offers the model none (the scripted model then only answers), and the
directory holds nothing but its repository afterwards.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx

from resources.opencode.client import OpenCodeClient
from services.slot_warming import warm_instance
from standins.opencode_server import OpenCodeServer

OPENCODE_SHARED_SERVER = True  # read by the opencode_server fixture: one server for the package
HOSTILE_PROMPT = (
    '[script:write path=planted.md content="x\\n"] [script:bash command="touch ran-bash"] '
    "Write the file and run the command."
)


def a_scratch_repository(directory: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(directory)], check=True)
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    message = f"scratch {directory.name}"
    subprocess.run(
        ["git", *identity, "commit", "-q", "--allow-empty", "-m", message],
        cwd=directory,
        check=True,
    )
    return directory


def test_a_warm_up_uses_no_tool_and_leaves_no_session(
    tmp_path: Path, opencode_server: OpenCodeServer
) -> None:
    directory = a_scratch_repository(tmp_path / "slot-a-0")

    async def warm() -> None:
        async with OpenCodeClient(opencode_server.url, password=opencode_server.password) as client:
            answer = await warm_instance(client, directory, HOSTILE_PROMPT)
            assert answer.info.role == "assistant" and answer.info.error is None
            assert answer.tool_calls == 0
            assert answer.info.tokens.input > 0  # a real model request (what it costs)

    asyncio.run(warm())
    assert sorted(p.name for p in directory.iterdir()) == [".git"]
    with httpx.Client(
        base_url=opencode_server.url, auth=opencode_server.auth, timeout=30
    ) as client:
        left = client.get("/session", params={"directory": str(directory)}).json()
    assert [s for s in left if s.get("directory") == str(directory)] == []
