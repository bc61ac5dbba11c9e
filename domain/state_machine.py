"""A state machine as data: one mapping of each state to the states it may go to.

Final states are derived from the table (states with no way out), never kept by hand, so the two
can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from domain.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    name: str
    transitions: Mapping[S, frozenset[S]]
    final_states: frozenset[S] = field(init=False)

    def __post_init__(self) -> None:
        states = set(self.transitions)
        for targets in self.transitions.values():
            unknown = targets - states
            if unknown:
                raise ValueError(f"{self.name}: targets {unknown} are not states of the machine")
        object.__setattr__(
            self,
            "final_states",
            frozenset(state for state, targets in self.transitions.items() if not targets),
        )

    @property
    def states(self) -> frozenset[S]:
        return frozenset(self.transitions)

    def allows(self, current: S, target: S) -> bool:
        return target in self.transitions[current]

    def is_final(self, state: S) -> bool:
        return state in self.final_states

    def check(self, current: S, target: S) -> None:
        """Raise `InvalidTransition` naming both states unless the table allows the move."""
        if not self.allows(current, target):
            raise InvalidTransition(self.name, current.value, target.value)
