"""The runner's hot path: prebuilt Core statements for the status, task and event writes of
running executions, several executions (and rows) per driver call.

Each statement is built once and reused, so SQLAlchemy neither rebuilds it nor recomputes its
cache key per call, and none goes through the ORM's bulk-update path (which re-evaluates its
WHERE clause in Python for every call). Writes take bare execution ids: the caller first locks
the rows in the same transaction with `leased` (checking the workspace, the worker and its
lease: the fence) or `claimed` (rows `ExecutionQueueRepository.lock_queued` locked), and the
event numbers come from the `last_seq` those locked rows carry, so they stay gapless.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Execution, ExecutionEvent, ExecutionTask
from backend.schemas import ExecutionStatus

_executions = cast(Table, Execution.__table__)
_tasks = cast(Table, ExecutionTask.__table__)
_events = cast(Table, ExecutionEvent.__table__)
_c = _executions.c


@dataclass(frozen=True)
class RunRow:
    """What the runner's writes need of an execution's row (no JSON columns), as locked."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    crew_id: uuid.UUID | None
    status: str
    last_seq: int
    worker_id: str | None
    input_timeout_seconds: float | None


_RUN_COLUMNS = (
    _c.id,
    _c.workspace_id,
    _c.crew_id,
    _c.status,
    _c.last_seq,
    _c.worker_id,
    _c.input_timeout_seconds,
)
# Leased to this worker, unexpired: the fence and the lock in one statement.
_LEASED = (
    select(*_RUN_COLUMNS)
    .where(
        _c.id.in_(bindparam("ids", expanding=True)),
        _c.worker_id == bindparam("worker"),
        _c.lease_expires_at > bindparam("now", type_=_c.lease_expires_at.type),
        _c.status.in_([ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING]),
    )
    .with_for_update()
)
# What a claim needs to start a run, of rows the claim has locked.
_CLAIMED = (
    select(
        *_RUN_COLUMNS,
        _c.name,
        _c.config,
        _c.inputs,
        _c.started_at,
        _c.input_response,
        _c.traceparent,
        _c.max_tokens,
        _c.max_cost_usd,
    )
    .where(_c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_c.id)
)
# executemany: the SET clause is each row's keys other than the b_ ones.
_UPDATE_EXECUTION = update(_executions).where(_c.id == bindparam("b_id"))
_TASK_WHERE = (
    _tasks.c.execution_id == bindparam("b_id"),
    _tasks.c.position == bindparam("b_position"),
)
_UPDATE_TASK = update(_tasks).where(*_TASK_WHERE)
_APPEND_TASK = (
    update(_tasks).where(*_TASK_WHERE).values(output=_tasks.c.output + bindparam("b_append"))
)
_INSERT_EVENTS = insert(_events)


def run_row(row: Row[Any] | Any) -> RunRow:
    return RunRow(
        row.id,
        row.workspace_id,
        row.crew_id,
        row.status,
        row.last_seq,
        row.worker_id,
        row.input_timeout_seconds,
    )


@dataclass(frozen=True)
class TaskUpdate:
    execution_id: uuid.UUID
    position: int
    values: dict[str, Any]
    append: str = ""  # output to append (not with an `output` in values)


class ExecutionRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def leased(
        self, keys: Sequence[tuple[uuid.UUID, uuid.UUID]], worker_id: str, now: datetime
    ) -> dict[uuid.UUID, RunRow]:
        """Of the (workspace, execution) pairs, the RUNNING/CANCELLING rows `worker_id` still
        holds an unexpired lease on, locked until commit; the others are missing."""
        if not keys:
            return {}
        workspaces = {execution: workspace for workspace, execution in keys}
        params = {"ids": list(workspaces), "worker": worker_id, "now": now}
        rows = (await self.session.execute(_LEASED, params)).all()
        return {r.id: run_row(r) for r in rows if workspaces[r.id] == r.workspace_id}

    async def claimed(self, ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
        """The rows a claim locked (in this transaction), oldest first, with what a run needs."""
        if not ids:
            return []
        rows: list[Row[Any]] = [*(await self.session.execute(_CLAIMED, {"ids": list(ids)}))]
        return rows

    async def update_executions(self, rows: Sequence[dict[str, Any]]) -> None:
        """Each dict: `b_id` and the columns to set. Rows setting the same columns share one
        driver call."""
        for group in _grouped(rows):
            await self.session.execute(_UPDATE_EXECUTION, group)

    async def update_tasks(self, updates: Sequence[TaskUpdate]) -> None:
        rows = [
            {
                "b_id": u.execution_id,
                "b_position": u.position,
                **u.values,
                **({"b_append": u.append} if u.append else {}),
            }
            for u in updates
            if u.values or u.append
        ]
        for group in _grouped(rows):
            await self.session.execute(
                _APPEND_TASK if "b_append" in group[0] else _UPDATE_TASK, group
            )

    async def add_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(_INSERT_EVENTS, list(rows))


def _grouped(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """executemany needs the same keys in every row: rows grouped by their keys, in order."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())
