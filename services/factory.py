"""One factory builds every service with the same wiring: the database, where events are published,
the retry backoff, the agent control. A service built by hand can forget a piece (a wave's
top-up claims once went unpublished because its service was built without `publish`); built
here, each gets all of it.

The CLI, the sensors and the ops build their services through it (`from_resources` for Dagster's
resources). The services are imported when one is asked for, so a command pays only for its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from domain.clock import utcnow
from domain.events import SessionEvent

if TYPE_CHECKING:
    from domain.supervision_policy import SupervisionSettings
    from resources.database import Database
    from resources.database_resource import DatabaseResource
    from resources.git.command_runner import CommandRunner
    from resources.redis.resource import RedisResource
    from resources.runtime_host.host import RuntimeHost
    from resources.supervision_config import SupervisionConfig
    from services.agent_control import AgentControl
    from services.agent_registry import AgentRegistry
    from services.api_key_admin import ApiKeyAdmin
    from services.authentication import Authentication, KeyCache
    from services.code_repositories import CodeRepositories
    from services.evaluation_records import EvaluationRecords
    from services.external_agents import ExternalAgents
    from services.fine_tuning import FineTuningService
    from services.history_retention import HistoryRetention
    from services.live_event_log import LiveEventLog
    from services.model_promotion import ModelPromotionService
    from services.request_settlement import CoordinationService
    from services.runtime_manager import RuntimeManager
    from services.session_patches import SessionPatches
    from services.session_service import SessionService
    from services.session_workspaces import SecretReader, SessionWorkspaces
    from services.supervision.agent_server import AgentServers
    from services.supervision.wave import WaveSupervisor
    from services.tenant_admin import TenantAdmin
    from services.tenant_secrets import TenantSecrets
    from services.unroutable import UnroutableSessions
    from services.usage_metering import UsageMetering
    from services.user_admin import UserAdmin
    from services.wave_trigger import WaveTrigger
    from services.webhooks import Webhooks

EventSink = Callable[[SessionEvent], None]


def _new_key_cache() -> KeyCache:
    from services.authentication import KeyCache

    return KeyCache()


@dataclass(frozen=True)
class ServiceFactory:
    database: Database
    publish: EventSink | None = None  # None: events stay in the database only
    retry_base_seconds: float | None = None  # None: the domain's default backoff
    agent_control: AgentControl | None = None  # None: steering does not reach the agent
    # Sessions' own workspaces: the tenant secrets repositories' credentials come from (None:
    # a repository with credentials fails its sessions, saying so) and what runs git and setup
    # scripts (None: as the current user, here). The tenant runtimes plug theirs in here.
    tenant_secrets: SecretReader | None = None  # None: the tenant secrets in the database
    command_runner: CommandRunner | None = None
    # This host's managed runtimes (None: from the environment when needed): a session whose
    # agent is one of them gets its workspace inside it, git run in the tenant's sandbox.
    runtime_host: RuntimeHost | None = None
    # Free scratch slots kept per agent for the tenant's next sessions, and made and warmed
    # ahead of them (services.workspace_slots, services.slot_warming); None: the default.
    warm_slots_per_agent: int | None = None
    # Told of each tenant's new sessions, to launch its wave at once (services.wave_trigger);
    # None: the dispatch sensor's next tick takes them (the sensors' and ops' own wiring).
    wave_trigger: WaveTrigger | None = None
    clock: Callable[[], datetime] = utcnow
    # What this factory's callers remember of authenticated keys (services.authentication).
    key_cache: KeyCache = field(default_factory=_new_key_cache)

    @classmethod
    def from_resources(
        cls,
        database: DatabaseResource,
        redis: RedisResource,
        supervision: SupervisionConfig,
    ) -> ServiceFactory:
        """The wiring of the sensors and ops: the code location's database, Redis and
        supervision settings (the resources of one run or tick)."""
        return cls(
            database.get_database(),
            publish=redis.event_publisher().publish,
            retry_base_seconds=supervision.retry_base_seconds,
            warm_slots_per_agent=supervision.warm_slots_per_agent,
        )

    def sessions(self) -> SessionService:
        from services.session_service import SessionService

        return SessionService(
            self.database,
            agent_control=self.agent_control,
            publish=self.publish,
            clock=self.clock,
            retry_base_seconds=self.retry_base_seconds,
            wave_trigger=self.wave_trigger,
        )

    def session_patches(self) -> SessionPatches:
        from services.session_patches import SessionPatches

        return SessionPatches(self.database)

    def coordination(self) -> CoordinationService:
        from services.request_settlement import CoordinationService

        return CoordinationService(self.database, publish=self.publish, clock=self.clock)

    def supervisor(
        self, servers: AgentServers, tenant: str, owner: str, settings: SupervisionSettings
    ) -> WaveSupervisor:
        from services.supervision.wave import WaveSupervisor

        return WaveSupervisor(
            self.database,
            servers,
            tenant=tenant,
            owner=owner,
            publish=self.publish,
            settings=settings,
            clock=self.clock,
            workspaces=self.session_workspaces(),
        )

    def session_workspaces(self) -> SessionWorkspaces:
        from domain.supervision_policy import DEFAULT_WARM_SLOTS_PER_AGENT
        from resources.settings import workspaces_dir
        from services.session_workspaces import SessionWorkspaces, WorkspaceLayout

        return SessionWorkspaces(
            self.database,
            WorkspaceLayout(workspaces_dir()),
            runner=self.command_runner,
            secrets=self.tenant_secrets or self.secrets(),
            runtime_host=(lambda: host) if (host := self.runtime_host) else None,
            warm_slots_per_agent=(
                DEFAULT_WARM_SLOTS_PER_AGENT
                if self.warm_slots_per_agent is None
                else self.warm_slots_per_agent
            ),
        )

    def unroutable(self) -> UnroutableSessions:
        from services.unroutable import UnroutableSessions

        return UnroutableSessions(self.database, publish=self.publish, clock=self.clock)

    def agents(self) -> AgentRegistry:
        from services.agent_registry import AgentRegistry

        return AgentRegistry(self.database, clock=self.clock)

    def external_agents(self) -> ExternalAgents:
        from services.external_agents import ExternalAgents

        return ExternalAgents(self.database, self.agents(), publish=self.publish, clock=self.clock)

    def webhooks(self) -> Webhooks:
        from services.webhooks import Webhooks

        return Webhooks(self.database, clock=self.clock)

    def runtimes(self, host: RuntimeHost | None = None) -> RuntimeManager:
        """Managed runtimes on this host (settings from the environment unless `host` given)."""
        from resources.runtime_host.host import RuntimeHost, RuntimeSettings
        from resources.secret_box import secret_box_from_environment
        from services.runtime_manager import RuntimeManager

        return RuntimeManager(
            self.database,
            host or self.runtime_host or RuntimeHost(RuntimeSettings.from_environment()),
            self.agents(),
            secret_box_from_environment(),
            clock=self.clock,
        )

    def tenants(self, runtimes: RuntimeManager | None = None) -> TenantAdmin:
        """`runtimes`: the host's managed runtimes (default: from the environment, built only
        when a tenant is deleted, to stop its runtime)."""
        from services.tenant_admin import TenantAdmin

        return TenantAdmin(self.database, runtimes=lambda: runtimes or self.runtimes())

    def users(self) -> UserAdmin:
        from services.user_admin import UserAdmin

        return UserAdmin(self.database)

    def api_keys(self) -> ApiKeyAdmin:
        from services.api_key_admin import ApiKeyAdmin

        return ApiKeyAdmin(self.database)

    def usage(self) -> UsageMetering:
        from services.usage_metering import UsageMetering

        return UsageMetering(self.database)

    def history_retention(self) -> HistoryRetention:
        from services.history_retention import HistoryRetention

        return HistoryRetention(self.database)

    def fine_tuning(self) -> FineTuningService:
        from services.fine_tuning import FineTuningService

        return FineTuningService(self.database, clock=self.clock)

    def evaluations(self) -> EvaluationRecords:
        from services.evaluation_records import EvaluationRecords

        return EvaluationRecords(self.database)

    def promotions(self) -> ModelPromotionService:
        from services.model_promotion import ModelPromotionService

        return ModelPromotionService(self.database, clock=self.clock)

    def repositories(self) -> CodeRepositories:
        from services.code_repositories import CodeRepositories

        return CodeRepositories(self.database)

    def authentication(self) -> Authentication:
        from services.authentication import Authentication

        return Authentication(self.database, self.key_cache)

    def secrets(self) -> TenantSecrets:
        from services.tenant_secrets import TenantSecrets

        return TenantSecrets(self.database)

    def live_events(self) -> LiveEventLog:
        from services.live_event_log import LiveEventLog

        return LiveEventLog(self.database)
