"""End-to-end tests share the real OpenCode fixtures (binary, HOME, scripted model, a server)."""

from tests.integration.opencode.conftest import (  # noqa: F401
    opencode_binary,
    opencode_home,
    opencode_server,
    scripted_model,
    scripted_model_url,
)
