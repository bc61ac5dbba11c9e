"""Decomposition preview: what the rule-based decomposer would split a prompt into, submitting
nothing (a session submitted with `decompose: true` runs the same split)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.authentication import CallerDep
from api.routes.sessions import SessionsDep
from domain.session import PROMPT_MAX

router = APIRouter(tags=["sessions"])


class DecomposeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)


class SubtaskOut(BaseModel):
    key: str | None
    title: str
    prompt: str
    depends_on: list[str | int]
    estimate: dict[str, Any] | None


class Decomposition(BaseModel):
    subtasks: list[SubtaskOut]


@router.post("/decompositions")
def decompose_prompt(body: DecomposeIn, caller: CallerDep, service: SessionsDep) -> Decomposition:
    """The subtasks the prompt's numbered or bulleted steps give (none: one session)."""
    assert caller.tenant_id is not None
    found = service.preview_decomposition(caller, caller.tenant_id, body.prompt)
    return Decomposition(
        subtasks=[
            SubtaskOut(
                key=s.key,
                title=s.title,
                prompt=s.prompt,
                depends_on=s.depends_on,
                estimate=s.estimate.model_dump() if s.estimate else None,
            )
            for s in found
        ]
    )
