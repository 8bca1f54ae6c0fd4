"""The runner's view of the executions table: queued work and running leases, across workspaces.

These are the only queries not scoped to a workspace, because a runner serves every workspace;
they return just what the runner needs to call ExecutionService for one execution at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from backend.models import ApiKey, Execution
from backend.schemas import ExecutionStatus


class ExecutionQueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_queued(self, limit: int, per_key_cap: int = 0) -> list[Row[Any]]:
        """The oldest queued executions, locked so that no other worker claims them.

        `SKIP LOCKED` lets concurrent workers on PostgreSQL take different rows without waiting;
        SQLite ignores the clause, and its write lock makes the claim exclusive anyway.

        With `per_key_cap` (> 0), an execution whose key already has that many RUNNING or
        CANCELLING ones is skipped (it stays QUEUED), so a key at its cap never holds up the
        others. The count must hold across workers: the keys' rows are locked (PostgreSQL, in id
        order) before counting, so two workers cannot both take a key's last free slot.
        """
        if per_key_cap <= 0:
            stmt = (
                select(Execution.id, Execution.workspace_id)
                .where(Execution.status == ExecutionStatus.QUEUED)
                .order_by(Execution.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            return cast(list[Row[Any]], list((await self.session.execute(stmt)).all()))
        busy = [ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING]
        other = aliased(Execution)
        running = (
            select(func.count())
            .select_from(other)
            .where(other.api_key_id == Execution.api_key_id, other.status.in_(busy))
            .scalar_subquery()
        )
        candidates_stmt = (
            select(Execution.id, Execution.workspace_id, Execution.api_key_id)
            .where(
                Execution.status == ExecutionStatus.QUEUED,
                Execution.api_key_id.is_(None) | (running < per_key_cap),
            )
            .order_by(Execution.id)
            # No further than it can take: a row locked here is skipped by every concurrent
            # claim, and one left over at the end would then wait for somebody's next poll (it
            # did, in tests). A row left over for its key's cap is one nobody could take anyway.
            .limit(limit)
            .with_for_update(skip_locked=True, of=Execution)
        )
        result = await self.session.execute(candidates_stmt)
        candidates = cast(list[Row[Any]], list(result.all()))
        keys = sorted({row.api_key_id for row in candidates if row.api_key_id is not None})
        counts: dict[uuid.UUID, int] = {}
        if keys:
            await self.session.execute(
                select(ApiKey.id).where(ApiKey.id.in_(keys)).order_by(ApiKey.id).with_for_update()
            )
            counted = await self.session.execute(
                select(Execution.api_key_id, func.count())
                .where(Execution.api_key_id.in_(keys), Execution.status.in_(busy))
                .group_by(Execution.api_key_id)
            )
            counts = {key: int(count) for key, count in counted.all() if key is not None}
        chosen: list[Row[Any]] = []
        for row in candidates:
            if len(chosen) >= limit:
                break
            if row.api_key_id is not None:
                if counts.get(row.api_key_id, 0) >= per_key_cap:
                    continue
                counts[row.api_key_id] = counts.get(row.api_key_id, 0) + 1
            chosen.append(row)
        return chosen

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
            .where(
                Execution.id.in_(list(execution_ids)),
                Execution.worker_id == worker_id,
                # A lease that ran out is lost, not renewed: a reaper may be crashing the
                # execution already, and the writes of its worker are fenced off.
                Execution.lease_expires_at > now,
            )
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

    async def queued_stats(self) -> tuple[int, datetime | None]:
        """How many executions are QUEUED, in every workspace, and when the oldest was created."""
        stmt = select(func.count(), func.min(Execution.created_at)).where(
            Execution.status == ExecutionStatus.QUEUED
        )
        count, oldest = (await self.session.execute(stmt)).one()
        return int(count), oldest

    async def waits_due(self, now: datetime) -> list[Row[Any]]:
        """Executions waiting for human input whose deadline has passed (any workspace)."""
        stmt = select(Execution.id, Execution.workspace_id).where(
            Execution.status == ExecutionStatus.WAITING_FOR_INPUT,
            Execution.input_deadline_at < now,
        )
        return cast(list[Row[Any]], list((await self.session.execute(stmt)).all()))
