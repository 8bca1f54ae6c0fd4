"""Readiness: whether the database answers and is at the revision this code expects."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from loguru import logger

from backend.repositories.unit_of_work import UnitOfWorkFactory

# A database that accepts connections but never answers would hold a probe for the driver's own
# connect timeout (a minute on asyncpg); an orchestrator wants "not ready", soon.
READINESS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Readiness:
    database: Literal["ok", "unreachable", "not migrated"]
    revision: str | None = None
    expected: str | None = None

    @property
    def ready(self) -> bool:
        return self.database == "ok"


class HealthService:
    def __init__(self, read_uow: UnitOfWorkFactory, expected_revision: str | None) -> None:
        self._read_uow = read_uow
        self._expected = expected_revision

    async def readiness(self) -> Readiness:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
                # Reading the revision needs a connection: it is the reachability check too.
                async with self._read_uow() as uow:
                    revision = await uow.schema_revision.current()
        except Exception as exc:  # readiness reports any failure instead of raising it
            logger.warning("readiness check failed: database unreachable: {!r}", exc)
            return Readiness("unreachable")
        if revision != self._expected:
            return Readiness("not migrated", revision, self._expected)
        return Readiness("ok", revision, self._expected)
