"""Base of the domain models: a broken rule surfaces as `InvalidInput`, not a pydantic error.

Callers (API, CLI, services) then handle one typed error that names the field, whatever rule
(length, range, pattern) was broken.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.errors import InvalidInput


def _as_invalid_input(error: ValidationError) -> InvalidInput:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or error.title
    message = first["msg"].removeprefix("Value error, ")
    return InvalidInput(field, message)


class DomainModel(BaseModel):
    model_config = ConfigDict(validate_assignment=True, str_strip_whitespace=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise _as_invalid_input(error) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as error:
            raise _as_invalid_input(error) from None


class ValueObject(DomainModel):
    model_config = ConfigDict(frozen=True)
