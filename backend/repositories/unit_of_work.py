"""The unit of work: one short session, its repositories, and one commit or rollback.

A unit of work lives for one service call (or one DataLoader batch). Resolvers run concurrently,
so a session is never shared between them, and never held across a subscription's `yield`.
On SQLite, write units of work of one process take turns on an asyncio lock (`write_lock`):
SQLite admits one writer at a time anyway, and a writer that finds the file locked sleeps in
SQLite's busy handler for up to 100 ms per try, which under concurrent runners cost more than
the writes themselves (measured: 13 executions/s with the busy handler, see docs/performance.md).
Callbacks registered with `after_commit` run only once the transaction is durable, which is how
events reach subscribers only after the change they describe is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.errors import Conflict
from backend.repositories.agent import AgentRepository
from backend.repositories.api_key import ApiKeyRepository
from backend.repositories.crew import CrewRepository
from backend.repositories.execution import ExecutionRepository
from backend.repositories.execution_launch import ExecutionLaunchRepository
from backend.repositories.execution_queue import ExecutionQueueRepository
from backend.repositories.execution_run import ExecutionRunRepository
from backend.repositories.mcp_server import McpServerRepository
from backend.repositories.persisted_document import PersistedDocumentRepository
from backend.repositories.schema_revision import SchemaRevisionRepository
from backend.repositories.secret import SecretRepository
from backend.repositories.task import TaskRepository
from backend.repositories.workspace import WorkspaceRepository

AfterCommit = Callable[[], Awaitable[None] | None]


class UnitOfWork:
    session: AsyncSession
    workspaces: WorkspaceRepository
    agents: AgentRepository
    tasks: TaskRepository
    crews: CrewRepository
    executions: ExecutionRepository
    launches: ExecutionLaunchRepository
    queue: ExecutionQueueRepository
    runs: ExecutionRunRepository
    api_keys: ApiKeyRepository
    documents: PersistedDocumentRepository
    secrets: SecretRepository
    mcp_servers: McpServerRepository
    schema_revision: SchemaRevisionRepository

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._write_lock = write_lock
        self._after_commit: list[AfterCommit] = []
        self._committed = False

    async def __aenter__(self) -> Self:
        if self._write_lock is not None:
            await self._write_lock.acquire()
        self.session = self._sessionmaker()
        self.workspaces = WorkspaceRepository(self.session)
        self.agents = AgentRepository(self.session)
        self.tasks = TaskRepository(self.session)
        self.crews = CrewRepository(self.session)
        self.executions = ExecutionRepository(self.session)
        self.launches = ExecutionLaunchRepository(self.session)
        self.queue = ExecutionQueueRepository(self.session)
        self.runs = ExecutionRunRepository(self.session)
        self.api_keys = ApiKeyRepository(self.session)
        self.documents = PersistedDocumentRepository(self.session)
        self.secrets = SecretRepository(self.session)
        self.mcp_servers = McpServerRepository(self.session)
        self.schema_revision = SchemaRevisionRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and not self._committed:
                await self.commit()
            elif exc_type is not None:
                await self.session.rollback()
        finally:
            try:
                await self.session.close()
            finally:
                if self._write_lock is not None:
                    self._write_lock.release()
        if isinstance(exc, IntegrityError):
            # A constraint the service could not check in advance (a concurrent writer got there
            # first): the caller's business, not a bug.
            raise Conflict(
                "The change conflicts with data stored meanwhile; read it again and retry."
            ) from exc
        if exc_type is None:
            for callback in self._after_commit:
                result = callback()
                if result is not None:
                    await result

    async def commit(self) -> None:
        try:
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise Conflict(
                "The change conflicts with data stored meanwhile; read it again and retry."
            ) from exc
        self._committed = True

    async def flush(self) -> None:
        """Surfaces constraint violations inside the transaction, where a service can react."""
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict("The change conflicts with stored data.") from exc

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)


UnitOfWorkFactory = Callable[[], UnitOfWork]
