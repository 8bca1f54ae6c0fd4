"""The services of one process, as the API layer and the runner see them.

Only the type lives here; `backend/container.py` (the composition root) builds it from the engine
and the settings, so nothing in `services/` reaches up to the runner, the database engine or the
settings to wire itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.core.rate_limit import ConcurrencyCap, TokenBucketLimiter
from backend.events.bus import EventBus
from backend.services.auth_service import AuthService
from backend.services.crew_service import CrewService
from backend.services.crewai_service import CrewaiService
from backend.services.document_service import DocumentService
from backend.services.execution_input import HumanInput
from backend.services.execution_lifecycle import ExecutionLifecycle
from backend.services.execution_service import ExecutionService
from backend.services.execution_watch import ExecutionWatch
from backend.services.health_service import HealthService
from backend.services.secret_service import SecretService
from backend.services.tool_service import ToolService
from backend.services.usage_service import UsageService


@dataclass(frozen=True)
class Services:
    crews: CrewService
    crewai: CrewaiService
    # The API side of executions (launch, read, cancel, retry) ...
    executions: ExecutionService
    # What the workspace's executions used (tokens, requests, cost).
    usage: UsageService
    # ... their subscriptions ...
    watch: ExecutionWatch
    # ... and what runners call while they run one (claim, progress, finish, reap).
    lifecycle: ExecutionLifecycle
    # Waits for human input: the runner starts them, clients answer, reapers time them out.
    inputs: HumanInput
    bus: EventBus
    auth: AuthService
    documents: DocumentService
    secrets: SecretService
    tools: ToolService
    health: HealthService
    # Per process (core/rate_limit.py): requests a second per key, open subscriptions per key.
    limiter: TokenBucketLimiter
    subscriptions: ConcurrencyCap
