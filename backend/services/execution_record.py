"""Recording an execution's status and events: the one write both sides of executions share.

The API side (`execution_service.py`: launch, cancel) and the run lifecycle
(`execution_lifecycle.py`: claim, progress, finish, reap) change an execution's status only
through `record`: it checks the transition (`execution_status.check`), numbers the events from the
row's counter in the caller's transaction, stores them, and stages them on the bus, which
publishes them only once that transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Row

from backend.events.bus import BusEvent, EventBus
from backend.observability import metrics
from backend.repositories.unit_of_work import UnitOfWork
from backend.schemas import (
    EventType,
    ExecutionEventResponse,
    ExecutionResponse,
    ExecutionStatus,
    ExecutionTaskResponse,
    TaskStatus,
)
from backend.services import execution_status
from backend.utils.time import utcnow

S = ExecutionStatus
TERMINAL_EVENTS = frozenset(
    {
        EventType.EXECUTION_COMPLETED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_CRASHED,
    }
)


@dataclass(frozen=True)
class Event:
    type: EventType
    message: str = ""
    task_position: int | None = None
    data: dict[str, Any] | None = None
    # The status an event reports; None: the status the write leaves the execution in. Set for
    # progress written in the same statement as a final status (it happened before it).
    status: ExecutionStatus | None = None


def execution_of(row: Row[Any]) -> ExecutionResponse:
    return ExecutionResponse.model_construct(**row._mapping)


def task_of(row: Row[Any]) -> ExecutionTaskResponse:
    return ExecutionTaskResponse.of_row(row._mapping)


_EVENT_FIELDS = tuple(ExecutionEventResponse.model_fields)


def event_of(row: Row[Any] | dict[str, Any]) -> ExecutionEventResponse:
    values = row if isinstance(row, dict) else row._mapping
    return ExecutionEventResponse.model_construct(**{k: values[k] for k in _EVENT_FIELDS})


async def record(
    uow: UnitOfWork,
    bus: EventBus,
    row: Row[Any],
    status: ExecutionStatus,
    events: list[Event],
    **values: Any,
) -> Row[Any]:
    """Writes the status (checked), the extra values and the events, in the caller's
    transaction; publishes the events once it commits."""
    current = S(row.status)
    if status != current and not (current == S.QUEUED and status == S.QUEUED):
        execution_status.check(row.id, current, status)
        uow.after_commit(partial(metrics.execution_transition, current, status))
    now = utcnow()
    updated = await uow.executions.advance(
        row.workspace_id, row.id, len(events), {"status": status, "updated_at": now, **values}
    )
    last = updated.last_seq
    stored = [
        {
            "execution_id": row.id,
            "seq": last - len(events) + 1 + i,
            "type": e.type,
            "status": e.status or status,
            "task_position": e.task_position,
            "message": e.message,
            "data": e.data or {},
            "created_at": now,
        }
        for i, e in enumerate(events)
    ]
    await uow.executions.add_events(stored)
    await bus.stage(uow, [BusEvent.of(row.workspace_id, row.crew_id, event_of(e)) for e in stored])
    return updated


async def finish_tasks(
    uow: UnitOfWork, row: Row[Any], status: TaskStatus, error: str | None = None
) -> Row[Any]:
    """Tasks that never ran are SKIPPED; a task that was running takes `status`."""
    now = utcnow()
    values: dict[str, Any] = {"status": status, "finished_at": now}
    if error is not None:
        values["error"] = error
    await uow.executions.update_open_tasks(row.workspace_id, row.id, [TaskStatus.RUNNING], values)
    skipped = TaskStatus.CANCELLED if status == TaskStatus.CANCELLED else TaskStatus.SKIPPED
    await uow.executions.update_open_tasks(
        row.workspace_id, row.id, [TaskStatus.PENDING], {"status": skipped}
    )
    return row


async def record_cancelled(
    uow: UnitOfWork, bus: EventBus, row: Row[Any], reason: str, **values: Any
) -> Row[Any]:
    """Ends an execution CANCELLED now: its open tasks CANCELLED, the reason as its error."""
    row = await finish_tasks(uow, row, TaskStatus.CANCELLED)
    return await record(
        uow,
        bus,
        row,
        ExecutionStatus.CANCELLED,
        [Event(EventType.EXECUTION_CANCELLED, reason)],
        finished_at=utcnow(),
        error=reason,
        **values,
    )
