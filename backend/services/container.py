"""The services an application process uses, built once from its settings and engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.core.unit_of_work import UnitOfWork
from backend.db.engine import create_sessionmaker
from backend.services.crew_service import CrewService


@dataclass(frozen=True)
class Services:
    crews: CrewService

    @classmethod
    def build(cls, engine: AsyncEngine) -> Services:
        writes = create_sessionmaker(engine)
        # On SQLite a read transaction must not take the write lock (see db/engine.py).
        reads = create_sessionmaker(engine.execution_options(sqlite_begin="DEFERRED"))
        return cls(
            crews=CrewService(lambda: UnitOfWork(writes), lambda: UnitOfWork(reads)),
        )
