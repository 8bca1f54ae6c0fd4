"""The runner's view of the executions table: queued work and running leases, across workspaces.

These are the only queries not scoped to a workspace, because a runner serves every workspace;
they return just what the runner needs to call ExecutionService for one execution at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Execution
from backend.schemas import ExecutionStatus


class ExecutionQueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_queued(self, limit: int) -> list[Row[Any]]:
        """The oldest queued executions, locked so that no other worker claims them.

        `SKIP LOCKED` lets concurrent workers on PostgreSQL take different rows without waiting;
        SQLite ignores the clause, and its write lock makes the claim exclusive anyway.
        """
        stmt = (
            select(Execution.id, Execution.workspace_id)
            .where(Execution.status == ExecutionStatus.QUEUED)
            .order_by(Execution.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return cast(list[Row[Any]], list((await self.session.execute(stmt)).all()))

    async def heartbeat(
        self,
        worker_id: str,
        execution_ids: Sequence[uuid.UUID],
        now: datetime,
        lease_until: datetime,
    ) -> None:
        if not execution_ids:
            return
        await self.session.execute(
            update(Execution)
            .where(Execution.id.in_(list(execution_ids)), Execution.worker_id == worker_id)
            .values(heartbeat_at=now, lease_expires_at=lease_until)
        )

    async def unfinished(self, worker_id: str | None = None) -> list[Row[Any]]:
        """RUNNING or CANCELLING executions (of one worker, or of any when None)."""
        stmt = select(
            Execution.id, Execution.workspace_id, Execution.worker_id, Execution.lease_expires_at
        ).where(Execution.status.in_([ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING]))
        if worker_id is not None:
            stmt = stmt.where(Execution.worker_id == worker_id)
        return cast(list[Row[Any]], list((await self.session.execute(stmt)).all()))
