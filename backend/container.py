"""The composition root: builds the services of one process from its engine and settings.

The one place that knows every layer: the database engine and session factories, the event bus,
the providers the runner knows, the settings. `services/` only declares what it needs
(`services/bundle.py`); `main.py` (the server) and `worker.py` call `build_services`.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.config.settings import Settings
from backend.core.rate_limit import ConcurrencyCap, TokenBucketLimiter
from backend.core.secret_box import SecretBox
from backend.core.tools.mcp_client import McpToolLister
from backend.db.engine import create_sessionmaker
from backend.db.migrate import head_revision
from backend.events.factory import build_bus
from backend.repositories.unit_of_work import UnitOfWork
from backend.runner.agent.llm import KNOWN_PROVIDERS, LlmCheck
from backend.runner.agent.models import ModelFactory
from backend.runner.engine import SequentialEngine
from backend.runner.runner import Runner
from backend.schemas import ExecutionEventResponse
from backend.services.auth_service import AuthService
from backend.services.bundle import Services
from backend.services.crew_service import CrewService
from backend.services.crewai_service import CrewaiService
from backend.services.document_service import DocumentService
from backend.services.execution_input import HumanInput
from backend.services.execution_lifecycle import ExecutionLifecycle
from backend.services.execution_service import ExecutionService
from backend.services.execution_watch import ExecutionWatch
from backend.services.health_service import HealthService
from backend.services.mcp_server_service import McpServerService
from backend.services.secret_service import SecretService
from backend.services.tool_service import ToolService
from backend.services.usage_service import UsageService


def build_services(
    engine: AsyncEngine, settings: Settings, *, serves_subscribers: bool = True
) -> Services:
    """`serves_subscribers`: False for `crewql worker`, whose bus then hears only what its
    runner acts on (its turns to claim, cancellation requests), not every event."""
    writes = create_sessionmaker(engine)
    # On SQLite a read transaction must not take the write lock (see db/engine.py).
    reads = create_sessionmaker(engine.execution_options(sqlite_begin="DEFERRED"))
    crew_reads = reads
    if engine.dialect.name == "sqlite":
        # A read of one statement needs no transaction: SQLite runs it in an implicit one.
        statements = create_sessionmaker(engine.execution_options(sqlite_begin=None))
    else:
        # PostgreSQL reads in READ COMMITTED: every statement sees its own snapshot, inside a
        # transaction or not, so BEGIN and COMMIT (two round trips) buy CrewService's reads
        # nothing. (ExecutionService keeps its transactions: it is not on this path.)
        crew_reads = statements = create_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    # SQLite: one writer at a time per process, queued on the loop (repositories/unit_of_work.py).
    write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    def write_uow() -> UnitOfWork:
        return UnitOfWork(writes, write_lock)

    def read_uow() -> UnitOfWork:
        return UnitOfWork(reads)

    def crew_read_uow() -> UnitOfWork:
        return UnitOfWork(crew_reads)

    def statement_uow() -> UnitOfWork:
        return UnitOfWork(statements)

    secrets = SecretService(write_uow, read_uow, SecretBox(settings.secrets_keys))
    lister = McpToolLister(
        ttl=settings.mcp_tools_cache_seconds, timeout=settings.mcp_connect_timeout_seconds
    )
    mcp_servers = McpServerService(write_uow, read_uow, secrets, settings.mcp_stdio_servers)
    tools = ToolService(write_uow, read_uow, mcp_servers, lister)
    bus = build_bus(settings, hears_events=serves_subscribers)
    crews = CrewService(write_uow, crew_read_uow, statement_uow, tools=tools)
    executions = ExecutionService(
        write_uow, read_uow, crews, bus, check_llms=LlmCheck(settings), tools=tools
    )
    attach = getattr(bus, "attach_loader", None)
    if attach is not None:  # the PostgreSQL bus reads each notified event once per process

        async def load_events(
            workspace_id: uuid.UUID, execution_id: uuid.UUID, after: int, until: int
        ) -> list[ExecutionEventResponse]:
            return await executions.events(
                workspace_id, execution_id, after=after, until=until, limit=until - after
            )

        attach(load_events)
    lifecycle = ExecutionLifecycle(
        write_uow,
        read_uow,
        bus,
        lease_seconds=settings.lease_seconds,
        max_running_per_key=settings.max_running_executions_per_key,
        input_timeout_seconds=settings.input_timeout_seconds,
        input_timeout_action=settings.input_timeout_action,
    )
    return Services(
        crews=crews,
        crewai=CrewaiService(
            write_uow, crews, known_providers=lambda: KNOWN_PROVIDERS, tools=tools
        ),
        executions=executions,
        usage=UsageService(read_uow),
        watch=ExecutionWatch(executions, read_uow, bus),
        lifecycle=lifecycle,
        inputs=HumanInput(write_uow, read_uow, bus, settings.input_timeout_action),
        bus=bus,
        auth=AuthService(write_uow, read_uow, cache_seconds=settings.auth_cache_seconds),
        documents=DocumentService(write_uow, read_uow, max_registered=settings.apq_max_documents),
        secrets=secrets,
        tools=tools,
        health=HealthService(read_uow, head_revision(settings.database_url)),
        limiter=TokenBucketLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        subscriptions=ConcurrencyCap(settings.max_subscriptions_per_key),
    )


def build_runner(
    services: Services, models: ModelFactory, settings: Settings, worker_id: str | None = None
) -> Runner:
    """The runner of a server or `crewql worker`: tools from the catalog, keys from secrets."""
    return Runner(
        services.lifecycle,
        SequentialEngine.serving(models, settings, services.tools, services.secrets),
        settings,
        services.inputs,
        worker_id=worker_id,
    )
