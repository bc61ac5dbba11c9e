"""A state machine as data: one mapping of each state to the states it may go to, and the one
`transition_to` every entity with a machine shares (`Transitions`).

Final states are derived from the table (states with no way out), never kept by hand, so the two
can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from domain.clock import utcnow
from domain.errors import InvalidTransition
from domain.events import StatusChanged

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


class Transitions:
    """`transition_to`, written once for the entities that have a state machine (sessions, tasks,
    fine-tuning jobs): check the table, move, return the event to record.

    A pydantic entity mixes it in and names its `machine` (whose name is the events' entity
    kind); it needs `id`, `tenant_id`, `status`, `status_reason` and `updated_at`. Two hooks:
    `_refuse_transition` for a rule beyond the table, `_on_transition` for what else changes
    with the state.
    """

    machine: ClassVar[StateMachine[Any]]
    if TYPE_CHECKING:  # the entity's own fields; declared here for the type checker only
        id: str
        tenant_id: str
        status: Any
        status_reason: str
        updated_at: datetime

    @property
    def is_final(self) -> bool:
        return self.machine.is_final(self.status)

    def transition_to(
        self, target: Any, reason: str = "", at: datetime | None = None
    ) -> StatusChanged:
        """Move to `target` if the table allows it; returns the event to record."""
        self.machine.check(self.status, target)
        self._refuse_transition(target)
        return self._apply_transition(target, reason, at or utcnow())

    def _refuse_transition(self, target: Any) -> None:
        """Raise `InvalidTransition` for a move the table allows but the entity does not."""

    def _on_transition(self, target: Any, at: datetime) -> None:
        """What else changes when the entity enters `target` (called before the status moves)."""

    def _apply_transition(
        self, target: Any, reason: str, at: datetime, data: dict[str, Any] | None = None
    ) -> StatusChanged:
        event = StatusChanged(
            entity_kind=self.machine.name,
            entity_id=self.id,
            tenant_id=self.tenant_id,
            old_status=self.status.value,
            new_status=target.value,
            at=at,
            reason=reason,
            data=data or {},
        )
        self._on_transition(target, at)
        self.status = target
        self.status_reason = reason
        self.updated_at = at
        return event
