"""The real OpenCode server fixtures of tests/integration/opencode, for the agent and session CLI
tests that register an agent or abort a turn on a real server (module-scoped, started on demand;
a test module that sets ``OPENCODE_PASSWORD`` gets a server with Basic auth)."""

from tests.integration.opencode.conftest import (  # noqa: F401
    opencode_binary,
    opencode_home,
    opencode_server,
    scripted_model,
    scripted_model_url,
)
