"""The launch path's writes: new executions, their task rows and their first events.

Prebuilt Core inserts (built once, so SQLAlchemy neither rebuilds them nor recomputes their cache
keys per launch), one driver call per table for any number of executions, nothing read back:
the caller gives every column of the new rows (`new_execution`), so the row it answers with is
the one it wrote. The execution is inserted with the `last_seq` of its first events already
counted, so no UPDATE of the row follows its insert.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Execution, ExecutionEvent, ExecutionTask
from backend.utils.ids import uuid7

_executions = cast(Table, Execution.__table__)
_INSERT_EXECUTIONS = insert(_executions)
_INSERT_TASKS = insert(cast(Table, ExecutionTask.__table__))
_INSERT_EVENTS = insert(cast(Table, ExecutionEvent.__table__))

# Every column of a new row (so it can answer for itself), None unless set here or by the caller.
_NEW: dict[str, Any] = {c.name: None for c in _executions.c} | {
    "last_seq": 0,
    "cancel_requested": False,
    "cancel_force": False,
}
_NEW_TASK: dict[str, Any] = {
    "output": "",
    "output_json": None,
    "error": None,
    "started_at": None,
    "finished_at": None,
    "model": None,
    "input_tokens": 0,
    "output_tokens": 0,
    "requests": 0,
    "cost_usd": 0.0,
}


def new_execution(workspace_id: uuid.UUID, now: datetime, values: dict[str, Any]) -> dict[str, Any]:
    """A new execution row with every column: a fresh id, created and updated `now`."""
    fresh = {"id": uuid7(), "workspace_id": workspace_id, "created_at": now, "updated_at": now}
    return {**_NEW, **fresh, **values}


def new_task(execution_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    """A new task row (`position`, `name`, `agent_name`, `status` in `values`), nothing used."""
    return _NEW_TASK | {"execution_id": execution_id, **values}


class ExecutionLaunchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(
        self,
        executions: Sequence[dict[str, Any]],
        tasks: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
    ) -> None:
        """Inserts the rows as given: parents first, each table in one driver call."""
        for statement, rows in (
            (_INSERT_EXECUTIONS, executions),
            (_INSERT_TASKS, tasks),
            (_INSERT_EVENTS, events),
        ):
            if rows:
                await self.session.execute(statement, list(rows))
