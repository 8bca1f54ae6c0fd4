"""Recording an execution's status and events: the one write both sides of executions share.

The API side (`execution_service.py`: launch, cancel) and the run lifecycle
(`execution_lifecycle.py`: claim, progress, finish, reap) change an execution's status only
through `record`: it checks the transition (`execution_status.check`), numbers the events from the
row's counter in the caller's transaction, stores them, and stages them on the bus, which
publishes them only once that transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Row

from backend.events.bus import BusEvent, EventBus
from backend.observability import metrics
from backend.repositories.execution_launch import new_execution, new_task
from backend.repositories.execution_run import RunRow
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
RowT = TypeVar("RowT", bound=Row[Any] | RunRow)
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


def execution_of(row: Row[Any] | dict[str, Any]) -> ExecutionResponse:
    return ExecutionResponse.model_construct(**(row if isinstance(row, dict) else row._mapping))


def task_of(row: Row[Any]) -> ExecutionTaskResponse:
    return ExecutionTaskResponse.of_row(row._mapping)


_EVENT_FIELDS = tuple(ExecutionEventResponse.model_fields)


def event_of(row: Row[Any] | dict[str, Any]) -> ExecutionEventResponse:
    values = row if isinstance(row, dict) else row._mapping
    return ExecutionEventResponse.model_construct(**{k: values[k] for k in _EVENT_FIELDS})


def stored_event(
    execution_id: uuid.UUID, seq: int, event: Event, status: ExecutionStatus, now: datetime
) -> dict[str, Any]:
    """The event table's row of `event`, number `seq`, written by a write to `status`."""
    return {
        "execution_id": execution_id,
        "seq": seq,
        "type": event.type,
        "status": event.status or status,
        "task_position": event.task_position,
        "message": event.message,
        "data": event.data or {},
        "created_at": now,
    }


@dataclass(frozen=True)
class Launch:
    """A new execution for `record_launches`: its columns, its task rows' columns (`position`,
    `name`, `agent_name`, `status`) and its EXECUTION_QUEUED message."""

    workspace_id: uuid.UUID
    values: dict[str, Any]
    tasks: list[dict[str, Any]]
    message: str


async def record_launches(
    uow: UnitOfWork, bus: EventBus, launches: Sequence[Launch]
) -> list[dict[str, Any]]:
    """Stores new QUEUED executions, their task rows and their EXECUTION_QUEUED events (one
    insert per table, no read, no update: each row is inserted with `last_seq` 1); publishes
    the events once the caller's transaction commits. Returns the rows as written."""
    now = utcnow()
    rows, tasks, events = [], [], []
    for launch in launches:
        row = new_execution(
            launch.workspace_id, now, {**launch.values, "status": S.QUEUED, "last_seq": 1}
        )
        queued = Event(EventType.EXECUTION_QUEUED, launch.message)
        rows.append(row)
        tasks += [new_task(row["id"], t) for t in launch.tasks]
        events.append(stored_event(row["id"], 1, queued, S.QUEUED, now))
    await uow.launches.insert(rows, tasks, events)
    for row, event in zip(rows, events, strict=True):
        await bus.stage(uow, [BusEvent.of(row["workspace_id"], row["crew_id"], event_of(event))])
    return rows


async def record(
    uow: UnitOfWork,
    bus: EventBus,
    row: Row[Any] | RunRow,
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
    first = updated.last_seq - len(events) + 1
    stored = [stored_event(row.id, first + i, e, status, now) for i, e in enumerate(events)]
    await uow.executions.add_events(stored)
    await bus.stage(uow, [BusEvent.of(row.workspace_id, row.crew_id, event_of(e)) for e in stored])
    return updated


@dataclass(frozen=True)
class Change:
    """One execution's status write for `record_runs`: its row as locked, the status it moves
    to, its events and the other columns to set."""

    row: RunRow
    status: ExecutionStatus
    events: list[Event]
    values: dict[str, Any]


async def record_runs(uow: UnitOfWork, bus: EventBus, changes: Sequence[Change]) -> list[RunRow]:
    """`record` for rows the caller locked in this transaction (`uow.runs.leased`/`claimed`):
    the same checks, numbers and bus staging, but the event numbers follow from the locked
    rows' `last_seq`, so the writes of all changes take one driver call per statement shape
    and nothing is read back. Returns the rows as they are after the write."""
    now = utcnow()
    executions: list[dict[str, Any]] = []
    stored: list[dict[str, Any]] = []
    staged: list[list[BusEvent]] = []  # per execution: the bus takes one execution at a time
    after: list[RunRow] = []
    for change in changes:
        row, status = change.row, change.status
        current = S(row.status)
        if status != current:
            execution_status.check(row.id, current, status)
            uow.after_commit(partial(metrics.execution_transition, current, status))
        first = row.last_seq + 1
        last = row.last_seq + len(change.events)
        executions.append(
            {"b_id": row.id, "status": status, "updated_at": now, "last_seq": last} | change.values
        )
        staged.append([])
        for i, e in enumerate(change.events):
            event = stored_event(row.id, first + i, e, status, now)
            stored.append(event)
            staged[-1].append(BusEvent.of(row.workspace_id, row.crew_id, event_of(event)))
        after.append(replace(row, status=status, last_seq=last))
    await uow.runs.update_executions(executions)
    await uow.runs.add_events(stored)
    for events in staged:
        if events:
            await bus.stage(uow, events)
    return after


async def finish_tasks(
    uow: UnitOfWork, row: RowT, status: TaskStatus, error: str | None = None
) -> RowT:
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
    uow: UnitOfWork, bus: EventBus, row: Row[Any] | RunRow, reason: str, **values: Any
) -> Row[Any]:
    """Ends an execution CANCELLED now: its open tasks CANCELLED, the reason as its error."""
    await finish_tasks(uow, row, TaskStatus.CANCELLED)
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
