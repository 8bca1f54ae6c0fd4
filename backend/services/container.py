"""The services an application process uses, built once from its settings and engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.config.settings import Settings
from backend.core.unit_of_work import UnitOfWork
from backend.db.engine import create_sessionmaker
from backend.events.bus import EventBus
from backend.events.memory import InMemoryEventBus
from backend.runner.providers.registry import KNOWN_PROVIDERS
from backend.services.crew_service import CrewService
from backend.services.execution_service import ExecutionService


@dataclass(frozen=True)
class Services:
    crews: CrewService
    executions: ExecutionService
    bus: EventBus

    @classmethod
    def build(cls, engine: AsyncEngine, settings: Settings) -> Services:
        writes = create_sessionmaker(engine)
        # On SQLite a read transaction must not take the write lock (see db/engine.py).
        reads = create_sessionmaker(engine.execution_options(sqlite_begin="DEFERRED"))

        def write_uow() -> UnitOfWork:
            return UnitOfWork(writes)

        def read_uow() -> UnitOfWork:
            return UnitOfWork(reads)

        bus = InMemoryEventBus(settings.subscriber_buffer)
        crews = CrewService(write_uow, read_uow)
        executions = ExecutionService(
            write_uow,
            read_uow,
            crews,
            bus,
            known_providers=lambda: KNOWN_PROVIDERS,
            lease_seconds=settings.lease_seconds,
        )
        return cls(crews=crews, executions=executions, bus=bus)
