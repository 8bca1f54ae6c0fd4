"""Executions, their task states and their events, always within one workspace.

The runner's cross-workspace queries (claiming queued work, heartbeats, crash recovery) are in
`execution_queue.py`, kept apart so that every method here keeps taking a workspace.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack, cast

from sqlalchemy import ColumnElement, Row, Table, bindparam, case, func, insert, select, update

from backend.models import Execution, ExecutionEvent, ExecutionTask
from backend.repositories.base import BaseRepository
from backend.schemas.common import EVERYTHING, ListFilter, Page, PageRequest
from backend.schemas.usage import UsageFilter, UsageGroupBy


class EventWindow(TypedDict, total=False):
    """Which of an execution's events: after `after` (0), at most `limit` (100), up to
    `until` included (None: no bound)."""

    after: int
    limit: int
    until: int | None


class ExecutionFilter(TypedDict, total=False):
    """Executions in any of `statuses` (none: every status), launched from `crew_id`."""

    statuses: Sequence[str]
    crew_id: uuid.UUID | None


# Table-level statements: the ORM's bulk path would re-evaluate each WHERE clause in Python.
_TASKS = cast(Table, ExecutionTask.__table__)
_EVENTS = cast(Table, ExecutionEvent.__table__)


class ExecutionRepository(BaseRepository[Execution]):
    model = Execution

    async def get_for_update(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, *, skip_locked: bool = False
    ) -> Row[Any] | None:
        """The row, locked until commit on PostgreSQL (SQLite's write lock already serializes).
        With `skip_locked`, a row another transaction holds answers None instead of waiting."""
        stmt = (
            self._select(workspace_id)
            .where(Execution.id == execution_id)
            .with_for_update(skip_locked=skip_locked)
        )
        row: Row[Any] | None = (await self.session.execute(stmt)).first()
        return row

    async def status_counts(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID | None = None
    ) -> dict[str, int]:
        """How many executions of the workspace (of one crew) are in each status."""
        stmt = (
            select(Execution.status, func.count())
            .where(Execution.workspace_id == workspace_id)
            .group_by(Execution.status)
        )
        if crew_id is not None:
            stmt = stmt.where(Execution.crew_id == crew_id)
        return {str(status): int(count) for status, count in (await self.session.execute(stmt))}

    async def by_idempotency_key(self, workspace_id: uuid.UUID, key: str) -> Row[Any] | None:
        stmt = self._select(workspace_id).where(Execution.idempotency_key == key)
        row: Row[Any] | None = (await self.session.execute(stmt)).first()
        return row

    async def advance(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        event_count: int,
        values: dict[str, Any],
    ) -> Row[Any]:
        """Reserves `event_count` event numbers and writes `values`, in one statement; the row
        comes back with the new `last_seq`. Gapless: a rollback returns the numbers."""
        stmt = (
            update(self.table)
            .where(Execution.workspace_id == workspace_id, Execution.id == execution_id)
            .values(last_seq=Execution.last_seq + event_count, **values)
            .returning(*Execution.__table__.c)
        )
        row: Row[Any] = (await self.session.execute(stmt)).one()
        return row

    async def children(
        self, workspace_id: uuid.UUID, parent_ids: Sequence[uuid.UUID]
    ) -> list[Row[Any]]:
        if not parent_ids:
            return []
        stmt = (
            self._select(workspace_id)
            .where(Execution.parent_id.in_(set(parent_ids)))
            .order_by(Execution.id)
        )
        return list((await self.session.execute(stmt)).all())

    # ------------------------------------------------------------ task states

    async def tasks(
        self, workspace_id: uuid.UUID, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Row[Any]]]:
        found: dict[uuid.UUID, list[Row[Any]]] = {i: [] for i in execution_ids}
        if not execution_ids:
            return found
        stmt = (
            select(*ExecutionTask.__table__.c)
            .join(Execution, Execution.id == ExecutionTask.execution_id)
            .where(
                Execution.workspace_id == workspace_id,
                ExecutionTask.execution_id.in_(set(execution_ids)),
            )
            .order_by(ExecutionTask.execution_id, ExecutionTask.position)
        )
        for row in await self.session.execute(stmt):
            found[row.execution_id].append(row)
        return found

    async def update_task(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        position: int,
        values: dict[str, Any],
        *,
        append_output: str | None = None,
    ) -> None:
        if append_output:
            values = {**values, "output": ExecutionTask.output + append_output}
        where = ExecutionTask.position == position
        await self._update_tasks(workspace_id, execution_id, where, values)

    async def update_open_tasks(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        statuses: Sequence[str],
        values: dict[str, Any],
    ) -> None:
        where = ExecutionTask.status.in_(list(statuses))
        await self._update_tasks(workspace_id, execution_id, where, values)

    async def _update_tasks(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        where: ColumnElement[bool],
        values: dict[str, Any],
    ) -> None:
        """The execution's task rows that match `where`, if it is in the workspace."""
        owned = select(Execution.id).where(
            Execution.workspace_id == workspace_id, Execution.id == execution_id
        )
        await self.session.execute(
            update(_TASKS)
            .where(ExecutionTask.execution_id.in_(owned.scalar_subquery()), where)
            .values(**values)
        )

    # ------------------------------------------------------------ events

    async def notify(self, notices: Sequence[tuple[str, str]]) -> None:
        """PostgreSQL NOTIFY of each (channel, payload) in this transaction, in this order (one
        statement: its columns are evaluated left to right); delivered when it commits."""
        if not notices:
            return
        columns = [
            func.pg_notify(bindparam(f"c{n}"), bindparam(f"p{n}")) for n in range(len(notices))
        ]
        values = {}
        for n, (channel, payload) in enumerate(notices):
            values[f"c{n}"], values[f"p{n}"] = channel, payload
        await self.session.execute(select(*columns), values)

    async def status_events_since(
        self, workspace_id: uuid.UUID, since: datetime, types: Sequence[str]
    ) -> list[Row[Any]]:
        """Status-changing events stored since `since`, with the execution's crew."""
        stmt = (
            select(*ExecutionEvent.__table__.c, Execution.crew_id, Execution.workspace_id)
            .join(Execution, Execution.id == ExecutionEvent.execution_id)
            .where(
                Execution.workspace_id == workspace_id,
                ExecutionEvent.created_at >= since,
                ExecutionEvent.type.in_(list(types)),
            )
            .order_by(ExecutionEvent.created_at, ExecutionEvent.seq)
            .limit(10_000)
        )
        rows: list[Row[Any]] = [*(await self.session.execute(stmt)).all()]  # type: ignore[list-item]
        return rows

    async def add_events(self, rows: list[dict[str, Any]]) -> None:
        """Inserts events whose seq the caller allocated with `allocate_seq` in this transaction."""
        await self.session.execute(insert(_EVENTS), rows)

    async def events_of_many(
        self,
        workspace_id: uuid.UUID,
        execution_ids: Sequence[uuid.UUID],
        *,
        after: int,
        limit: int,
    ) -> list[Row[Any]]:
        """The first `limit` events after `after` of each execution, in one statement."""
        if not execution_ids:
            return []
        events = ExecutionEvent.__table__
        ranked = (
            select(
                *events.c,
                func.row_number()
                .over(partition_by=events.c.execution_id, order_by=events.c.seq)
                .label("rank"),
            )
            .join(Execution, Execution.id == events.c.execution_id)
            .where(
                Execution.workspace_id == workspace_id,
                events.c.execution_id.in_(set(execution_ids)),
                events.c.seq > after,
            )
            .subquery()
        )
        stmt = (
            select(*(ranked.c[c.name] for c in events.c))
            .where(ranked.c.rank <= limit)
            .order_by(ranked.c.execution_id, ranked.c.seq)
        )
        return list((await self.session.execute(stmt)).all())

    async def events(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, **window: Unpack[EventWindow]
    ) -> list[Row[Any]]:
        until = window.get("until")
        stmt = (
            select(*ExecutionEvent.__table__.c)
            .join(Execution, Execution.id == ExecutionEvent.execution_id)
            .where(
                Execution.workspace_id == workspace_id,
                ExecutionEvent.execution_id == execution_id,
                ExecutionEvent.seq > window.get("after", 0),
            )
            .order_by(ExecutionEvent.seq)
            .limit(window.get("limit", 100))
        )
        if until is not None:
            stmt = stmt.where(ExecutionEvent.seq <= until)
        return list((await self.session.execute(stmt)).all())

    async def list(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        where: ListFilter = EVERYTHING,
        **only: Unpack[ExecutionFilter],
    ) -> Page[Row[Any]]:
        statuses, crew_id = only.get("statuses", ()), only.get("crew_id")
        c = self.table.c
        extra: list[ColumnElement[bool]] = []
        if statuses:
            extra.append(c.status.in_([str(s) for s in statuses]))
        if crew_id is not None:
            extra.append(c.crew_id == crew_id)
        return await self._list(workspace_id, page, where, extra)

    # ------------------------------------------------------------ usage

    async def usage_groups(
        self,
        workspace_id: uuid.UUID,
        flt: UsageFilter,
        group_by: UsageGroupBy,
    ) -> Sequence[Row[Any]]:
        """Tokens, requests and cost of the tasks that called a model, summed per day (of the
        execution's creation, UTC), model or crew. `unpriced` counts tasks whose cost is
        unknown: a group with any has no total cost."""
        task, execution = ExecutionTask, Execution
        if group_by == UsageGroupBy.DAY:
            if self.session.get_bind().dialect.name == "sqlite":  # stored as 'YYYY-MM-DD hh:mm…'
                key: ColumnElement[Any] = func.substr(execution.created_at, 1, 10)
            else:
                key = func.to_char(func.timezone("UTC", execution.created_at), "YYYY-MM-DD")
            keys: list[ColumnElement[Any]] = [key.label("key")]
            extra: list[ColumnElement[Any]] = []
        elif group_by == UsageGroupBy.MODEL:
            keys = [task.model.label("key")]
            extra = []
        else:
            keys = [execution.crew_id.label("key")]
            extra = [func.max(execution.crew_name).label("crew_name")]
        stmt = (
            select(
                *keys,
                *extra,
                func.count(func.distinct(execution.id)).label("executions"),
                func.sum(task.input_tokens).label("input_tokens"),
                func.sum(task.output_tokens).label("output_tokens"),
                func.sum(task.requests).label("requests"),
                func.sum(task.cost_usd).label("cost_usd"),
                func.sum(case((task.cost_usd.is_(None), 1), else_=0)).label("unpriced"),
            )
            .join(execution, execution.id == task.execution_id)
            .where(execution.workspace_id == workspace_id, task.requests > 0)
            .group_by(*keys)
            .order_by(*keys)
        )
        if flt.start is not None:
            stmt = stmt.where(execution.created_at >= flt.start)
        if flt.end is not None:
            stmt = stmt.where(execution.created_at < flt.end)
        if flt.crew_id is not None:
            stmt = stmt.where(execution.crew_id == flt.crew_id)
        if flt.model is not None:
            stmt = stmt.where(task.model == flt.model)
        rows: Sequence[Row[Any]] = (await self.session.execute(stmt)).all()  # type: ignore[assignment]
        return rows
