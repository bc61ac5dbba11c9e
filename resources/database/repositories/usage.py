"""Daily usage counters of the current tenant, incremented atomically for billing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.usage import DailyUsage
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import UsageRow

_USAGE = UsageRow.__table__
_ADD_TO_DAY = (
    update(_USAGE)
    .where(
        _USAGE.c.tenant_id == bindparam("tenant", type_=String),
        _USAGE.c.day == bindparam("on_day", type_=_USAGE.c.day.type),
    )
    .values(
        {
            name: _USAGE.c[name] + bindparam(f"add_{name}", type_=_USAGE.c[name].type)
            for name in ("sessions", "tokens_in", "tokens_out", "cost_usd")
        }
    )
)


class UsageRepository(TenantScopedRepository):
    def record(
        self,
        day: date,
        sessions: int = 0,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: Decimal | float = Decimal(0),
    ) -> None:
        """Add to the day's counters atomically, so concurrent writers never lose an update: an
        UPDATE of the day's row (a statement built once: a wave records every session it ends
        here), and the first record of a day an upsert (never cached by SQLAlchemy)."""
        cost = Decimal(str(cost_usd))
        added = self._connection().execute(
            _ADD_TO_DAY,
            {
                "tenant": self.tenant_id,
                "on_day": day,
                "add_sessions": sessions,
                "add_tokens_in": tokens_in,
                "add_tokens_out": tokens_out,
                "add_cost_usd": cost,
            },
        )
        if added.rowcount == 1:
            return
        dialect = self._session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(UsageRow).values(
            tenant_id=self.tenant_id,
            day=day,
            sessions=sessions,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[UsageRow.tenant_id, UsageRow.day],
            set_={
                "sessions": UsageRow.sessions + statement.excluded.sessions,
                "tokens_in": UsageRow.tokens_in + statement.excluded.tokens_in,
                "tokens_out": UsageRow.tokens_out + statement.excluded.tokens_out,
                "cost_usd": UsageRow.cost_usd + statement.excluded.cost_usd,
            },
        )
        self._session.execute(statement)

    def between(self, first_day: date, last_day: date) -> list[DailyUsage]:
        query = (
            select(UsageRow)
            .where(
                UsageRow.tenant_id == self.tenant_id,
                UsageRow.day >= first_day,
                UsageRow.day <= last_day,
            )
            .order_by(UsageRow.day)
        )
        return [
            DailyUsage(
                tenant_id=row.tenant_id,
                day=row.day,
                sessions=row.sessions,
                tokens_in=row.tokens_in,
                tokens_out=row.tokens_out,
                cost_usd=Decimal(row.cost_usd),
                agent_seconds=row.agent_seconds,
                fine_tuning_tokens=row.fine_tuning_tokens,
            )
            for row in self._session.scalars(query)
        ]

    def reconcile_day(
        self, day: date, sessions: int, agent_seconds: float, fine_tuning_tokens: int
    ) -> DailyUsage:
        """Set the day's figures taken from the histories (the live counters stay as added)."""
        self.record(day)  # the row exists afterwards, its counters untouched
        row = self._session.get_one(UsageRow, (self.tenant_id, day))
        row.sessions = sessions
        row.agent_seconds = agent_seconds
        row.fine_tuning_tokens = fine_tuning_tokens
        self._session.flush()
        return next(iter(self.between(day, day)))

    def tokens_since(self, first_day: date) -> int:
        """Tokens used from `first_day` on (the month so far, for the token budget): one sum
        in the database, as every submission asks (no row loaded)."""
        query = select(
            func.coalesce(
                func.sum(UsageRow.tokens_in + UsageRow.tokens_out + UsageRow.fine_tuning_tokens), 0
            )
        ).where(UsageRow.tenant_id == self.tenant_id, UsageRow.day >= first_day)
        return int(self._session.scalar(query) or 0)
