"""The base of every request body: an unknown field is refused (422 naming it), not ignored,
so a misspelt option never silently falls back to its default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
