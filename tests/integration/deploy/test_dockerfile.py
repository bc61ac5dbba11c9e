"""deploy/Dockerfile (not built here: no Docker on this machine) copies every package the
project installs, installs the cluster extra, and starts the code server the Procfile starts."""

from __future__ import annotations

import json
import re
import tomllib

from tests.integration.deploy.support import DEPLOY, ROOT


def test_the_image_holds_every_package_and_runs_the_code_server() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, flags=re.MULTILINE))
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert "pip install '.[k8s]'" in dockerfile
    assert "k8s" in pyproject["project"]["optional-dependencies"]
    cmd = re.search(r"^CMD (\[.*?\])$", dockerfile, flags=re.MULTILINE | re.DOTALL)
    assert cmd is not None
    command = json.loads(cmd.group(1).replace("\\\n", ""))
    assert command[:3] == ["dagster", "code-server", "start"]
    assert "orchestrator_defs.definitions" in command
