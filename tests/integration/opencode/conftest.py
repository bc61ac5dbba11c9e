"""Fixtures for the OpenCode contract tests: a real OpenCode server against the scripted model.

- ``opencode_binary`` (session): the pinned ``opencode`` binary (``scripts/install_opencode.sh``).
  Missing: the tests skip and say how to install it; when services are required
  (``CI=true`` / ``INDORCH_REQUIRE_SERVICES=1``) the binary is installed now, and the tests fail
  if that does not work.
- ``scripted_model`` / ``scripted_model_url`` (session): one in-process scripted model server.
- ``opencode_home`` (session): one HOME for every server of the run (the provider package is
  installed into it from npm on the first prompt, once).
- ``opencode_server`` (module): one real server per test module, in its own git workspace,
  stopped (terminate, then kill) when the module is done, whatever happened. A module that sets
  ``OPENCODE_PASSWORD = "..."`` gets a server with HTTP Basic auth. A module that sets
  ``OPENCODE_SHARED_SERVER = True`` gets ``shared_opencode_server`` instead (each start costs
  seconds of CPU, and so does each new directory's instance): only for modules that neither
  stop nor reconfigure the server and whose checks hold whatever other modules left in its
  workspace (nonce'd files, sessions and worktrees, filtered by session or name).
- ``shared_opencode_server`` (package): one server (no password) for those modules, stopped
  when the package is done.
- ``opencode_client`` / ``opencode_events`` (module): an httpx client with the server's
  credentials, and the server's ``GET /event`` stream followed from before the first test.
- ``opencode_global_events`` (module): the server's ``GET /global/event`` stream (every
  directory's events, in ``{"directory", "project", "payload"}`` envelopes), likewise.

Tests using these fixtures are marked ``opencode`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standins.opencode_server import OpenCodeNotInstalled, OpenCodeServer, find_opencode_binary
from standins.scripted_model import ScriptedModel, running_scripted_model
from tests.conftest import services_required
from tests.integration.opencode.event_stream import EventStream

CLIENT_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="session")
def opencode_binary() -> Path:
    try:
        return find_opencode_binary()
    except OpenCodeNotInstalled as missing:
        reason = str(missing)
    if not services_required():
        pytest.skip(f"OpenCode not available: {reason}")
    try:
        return find_opencode_binary(install=True)
    except OpenCodeNotInstalled as error:
        reason = str(error)
    pytest.fail(
        f"OpenCode not available and could not be installed (services are required: "
        f"INDORCH_REQUIRE_SERVICES=1 or CI=true): {reason}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def scripted_model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture(scope="session")
def scripted_model_url(scripted_model: ScriptedModel) -> Iterator[str]:
    with running_scripted_model(model=scripted_model) as url:
        yield url


@pytest.fixture(scope="session")
def opencode_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("opencode-home")


def _running_server(
    opencode_binary: Path, opencode_home: Path, scripted_model_url: str, password: str | None
) -> Iterator[OpenCodeServer]:
    server = OpenCodeServer(
        scripted_model_url, home=opencode_home, binary=opencode_binary, password=password
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def shared_opencode_server(
    opencode_binary: Path, opencode_home: Path, scripted_model_url: str
) -> Iterator[OpenCodeServer]:
    yield from _running_server(opencode_binary, opencode_home, scripted_model_url, None)


@pytest.fixture(scope="module")
def opencode_server(
    request: pytest.FixtureRequest,
    opencode_binary: Path,
    opencode_home: Path,
    scripted_model_url: str,
) -> Iterator[OpenCodeServer]:
    password = getattr(request.module, "OPENCODE_PASSWORD", None)
    if getattr(request.module, "OPENCODE_SHARED_SERVER", False):
        assert password is None, "the shared OpenCode server has no password"
        yield request.getfixturevalue("shared_opencode_server")
        return
    yield from _running_server(opencode_binary, opencode_home, scripted_model_url, password)


@pytest.fixture(scope="module")
def opencode_client(opencode_server: OpenCodeServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=opencode_server.url, auth=opencode_server.auth, timeout=CLIENT_TIMEOUT_SECONDS
    ) as client:
        yield client


@pytest.fixture(scope="module")
def opencode_events(opencode_server: OpenCodeServer) -> Iterator[EventStream]:
    stream = EventStream(opencode_server.url, auth=opencode_server.auth).start()
    try:
        yield stream
    finally:
        stream.close()


@pytest.fixture(scope="module")
def opencode_global_events(opencode_server: OpenCodeServer) -> Iterator[EventStream]:
    stream = EventStream(
        opencode_server.url, auth=opencode_server.auth, path="/global/event"
    ).start()
    try:
        yield stream
    finally:
        stream.close()
