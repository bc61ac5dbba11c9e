"""One transaction with every repository bound to it: what services and the CLI work through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from resources.database.engine import Database
from resources.database.repositories.agent_servers import AgentServerClaimRepository
from resources.database.repositories.agents import AgentRepository
from resources.database.repositories.api_keys import ApiKeyRepository
from resources.database.repositories.code_repositories import CodeRepositoryRepository
from resources.database.repositories.evaluations import EvaluationRepository
from resources.database.repositories.fine_tuning_jobs import FineTuningJobRepository
from resources.database.repositories.history_retention import HistoryRetentionRepository
from resources.database.repositories.promotions import PromotionRepository
from resources.database.repositories.region_replica import RegionReplicaRepository
from resources.database.repositories.runtimes import RuntimeRepository
from resources.database.repositories.session_transcripts import SessionTranscriptRepository
from resources.database.repositories.sessions import SessionRepository
from resources.database.repositories.tasks import TaskRepository
from resources.database.repositories.tenant_secrets import TenantSecretRepository
from resources.database.repositories.tenant_work import TenantWorkRepository
from resources.database.repositories.tenants import TenantRepository
from resources.database.repositories.usage import UsageRepository
from resources.database.repositories.usage_sources import UsageSourceRepository
from resources.database.repositories.users import UserRepository
from resources.database.repositories.webhooks import WebhookRepository
from resources.database.repositories.workspaces import TenantWorkspaceRepository


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.tenants = TenantRepository(session)
        self.users = UserRepository(session)
        self.api_keys = ApiKeyRepository(session)
        self.agents = AgentRepository(session)
        self.agent_servers = AgentServerClaimRepository(session)
        self.sessions = SessionRepository(session)
        self.session_transcripts = SessionTranscriptRepository(session)
        self.tasks = TaskRepository(session)
        self.fine_tuning_jobs = FineTuningJobRepository(session)
        self.evaluations = EvaluationRepository(session)
        self.promotions = PromotionRepository(session)
        self.usage = UsageRepository(session)
        self.usage_sources = UsageSourceRepository(session)
        self.workspaces = TenantWorkspaceRepository(session)
        self.tenant_work = TenantWorkRepository(session)
        self.region_replica = RegionReplicaRepository(session)
        self.code_repositories = CodeRepositoryRepository(session)
        self.secrets = TenantSecretRepository(session)
        self.runtimes = RuntimeRepository(session)
        self.history_retention = HistoryRetentionRepository(session)
        self.webhooks = WebhookRepository(session)


@contextmanager
def unit_of_work(database: Database) -> Iterator[UnitOfWork]:
    """Commits when the block ends; any error rolls everything back."""
    with database.transaction() as session:
        yield UnitOfWork(session)
