"""A model is named `provider/model`, as OpenCode's provider configuration names it."""

import re

MODEL_PATTERN = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._:/-]+$")
