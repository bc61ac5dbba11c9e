"""End-to-end tests share the real OpenCode fixtures (binary, HOME, scripted model)."""

from tests.integration.opencode.conftest import (  # noqa: F401
    opencode_binary,
    opencode_home,
    scripted_model,
    scripted_model_url,
)
