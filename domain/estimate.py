"""PERT estimates: expected = (O + 4M + P) / 6, sigma = (P - O) / 6, and complexity bands."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from domain.domain_model import ValueObject


class Complexity(StrEnum):
    TRIVIAL = "trivial"
    SIMPLE = "simple"
    MODERATE = "moderate"
    COMPLEX = "complex"
    EXPERT = "expert"


# Upper bounds in hours (exclusive), in order; anything at or above the last is EXPERT.
_BANDS = ((0.25, Complexity.TRIVIAL), (1.0, Complexity.SIMPLE), (4.0, Complexity.MODERATE))
_BANDS += ((8.0, Complexity.COMPLEX),)


def complexity_for(expected_hours: float) -> Complexity:
    for upper, band in _BANDS:
        if expected_hours < upper:
            return band
    return Complexity.EXPERT


class Estimate(ValueObject):
    """Three-point estimate in hours: optimistic <= most likely <= pessimistic."""

    optimistic_hours: float = Field(ge=0)
    most_likely_hours: float = Field(ge=0)
    pessimistic_hours: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Estimate:
        if not self.optimistic_hours <= self.most_likely_hours <= self.pessimistic_hours:
            raise ValueError("needs optimistic <= most likely <= pessimistic")
        return self

    @property
    def expected_hours(self) -> float:
        return (self.optimistic_hours + 4 * self.most_likely_hours + self.pessimistic_hours) / 6

    @property
    def standard_deviation_hours(self) -> float:
        return (self.pessimistic_hours - self.optimistic_hours) / 6

    @property
    def complexity(self) -> Complexity:
        return complexity_for(self.expected_hours)
