"""Tasks of the current tenant and their dependency edges."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import or_, select, update

from domain.errors import ConcurrentModification, NotFound
from domain.estimate import Estimate
from domain.events import StatusChanged
from domain.task import DependencyType, Task, TaskDependency, TaskStatus
from resources.database.repositories.base import TenantScopedRepository
from resources.database.repositories.status_events import record_status_event, status_history
from resources.database.schema import SessionRow, TaskDependencyRow, TaskRow


def _to_domain(row: TaskRow) -> Task:
    return Task(
        id=row.id,
        tenant_id=row.tenant_id,
        title=row.title,
        description=row.description,
        parent_task_id=row.parent_task_id,
        session_id=row.session_id,
        depth=row.depth,
        required_capabilities=row.required_capabilities,
        estimate=Estimate.model_validate(row.estimate) if row.estimate else None,
        status=TaskStatus(row.status),
        status_reason=row.status_reason,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class TaskRepository(TenantScopedRepository):
    kind = "task"

    def add(self, task: Task) -> Task:
        tenant = self._owned(task.tenant_id)
        self._require_own(TaskRow, task.parent_task_id, self.kind)
        self._require_own(SessionRow, task.session_id, "session")
        self._session.add(
            TaskRow(
                id=task.id,
                tenant_id=tenant,
                parent_task_id=task.parent_task_id,
                session_id=task.session_id,
                title=task.title,
                description=task.description,
                depth=task.depth,
                required_capabilities=task.required_capabilities,
                estimate=task.estimate.model_dump() if task.estimate else None,
                status=task.status.value,
                status_reason=task.status_reason,
                version=task.version,
                created_at=task.created_at,
                updated_at=task.updated_at,
            )
        )
        self._session.flush()
        return task

    def get(self, task_id: str) -> Task:
        row = self._session.scalars(
            select(TaskRow).where(TaskRow.tenant_id == self.tenant_id, TaskRow.id == task_id)
        ).first()
        if row is None:
            raise NotFound(self.kind, task_id)
        return _to_domain(row)

    def list(self, parent_task_id: str | None = None, session_id: str | None = None) -> list[Task]:
        query = select(TaskRow).where(TaskRow.tenant_id == self.tenant_id)
        if parent_task_id is not None:
            query = query.where(TaskRow.parent_task_id == parent_task_id)
        if session_id is not None:
            query = query.where(TaskRow.session_id == session_id)
        return [_to_domain(row) for row in self._session.scalars(query.order_by(TaskRow.id))]

    def add_dependency(self, dependency: TaskDependency) -> TaskDependency:
        self.get(dependency.task_id)
        self.get(dependency.depends_on_id)
        self._session.add(
            TaskDependencyRow(
                task_id=dependency.task_id,
                depends_on_id=dependency.depends_on_id,
                tenant_id=self.tenant_id,
                dependency_type=dependency.dependency_type.value,
            )
        )
        self._session.flush()
        return dependency

    def dependencies(self, task_ids: Collection[str]) -> list[TaskDependency]:
        """Edges touching any of `task_ids` (either end)."""
        ids = list(task_ids)
        query = select(TaskDependencyRow).where(
            TaskDependencyRow.tenant_id == self.tenant_id,
            or_(TaskDependencyRow.task_id.in_(ids), TaskDependencyRow.depends_on_id.in_(ids)),
        )
        return [
            TaskDependency(
                task_id=row.task_id,
                depends_on_id=row.depends_on_id,
                dependency_type=DependencyType(row.dependency_type),
            )
            for row in self._session.scalars(query)
        ]

    def save_transition(self, task: Task, event: StatusChanged) -> None:
        expected_version = task.version
        self._require_own(SessionRow, task.session_id, "session")
        result = self._session.execute(
            update(TaskRow)
            .where(
                TaskRow.id == task.id,
                TaskRow.tenant_id == self.tenant_id,
                TaskRow.status == event.old_status,
                TaskRow.version == expected_version,
            )
            .values(
                status=task.status.value,
                status_reason=task.status_reason,
                session_id=task.session_id,
                updated_at=task.updated_at,
                version=TaskRow.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            self.get(task.id)
            raise ConcurrentModification(self.kind, task.id, event.old_status, expected_version)
        task.version = expected_version + 1
        record_status_event(self._session, self.tenant_id, event)

    def history(self, task_id: str) -> list[StatusChanged]:
        self.get(task_id)
        return status_history(self._session, self.tenant_id, "task", task_id)
