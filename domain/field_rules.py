"""Rules several entities share for the same kind of field (titles, prompts, model names).

Each returns the cleaned value or raises `ValueError`, which `DomainModel` reports as
`InvalidInput` naming the field.
"""

from __future__ import annotations

from domain.llm_model_name import MODEL_PATTERN


def checked_title(value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters, got {len(value)}")
    return value


def checked_prompt(value: str, limit: int) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters, got {len(value)}")
    return value


def checked_model(value: str | None) -> str | None:
    if value is not None and not MODEL_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} must look like provider/model")
    return value
