"""The runner's writes of running executions (progress, completion, failure), group-committed.

Writes of several executions that are ready at the same moment go in one transaction
(`GroupCommit`, execution_batches.py): one statement locks all their rows behind the fence
(`uow.runs.leased`), one executemany updates all their task rows, and `record_runs` writes all
their status changes and events, each execution numbered from its own locked row. Per execution,
writes commit in the order they were made (one write of an execution per batch); a write this
worker may no longer make (no lease: the fence) is refused with ExecutionGone for that execution
alone, while the others of the batch commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from backend.events.bus import EventBus
from backend.repositories.execution_run import RunRow, TaskUpdate
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import ExecutionStatus, TaskStatus
from backend.services.execution_batches import GroupCommit
from backend.services.execution_handle import ExecutionGone, RunHandle
from backend.services.execution_progress import Step, plan
from backend.services.execution_record import Change, Event, finish_tasks, record_runs
from backend.utils.time import utcnow

S = ExecutionStatus


@dataclass(frozen=True)
class Final:
    """How a run ends: its status, the event saying so, the columns to set, and what its open
    tasks become (None: none is left open, as after a completion)."""

    status: ExecutionStatus
    event: Event
    values: dict[str, Any] = field(default_factory=dict)
    open_tasks: TaskStatus | None = None


@dataclass(frozen=True)
class _Write:
    run: RunHandle
    steps: list[Step]
    final: Final | None


class RunWrites:
    def __init__(self, uow: UnitOfWorkFactory, bus: EventBus) -> None:
        self._bus = bus
        self._batches: GroupCommit[_Write, ExecutionStatus | None] = GroupCommit(
            uow, self._apply, key=lambda w: w.run.id
        )

    async def write(
        self, run: RunHandle, steps: list[Step], final: Final | None = None
    ) -> ExecutionStatus | None:
        """Writes the steps (and the final status) with other executions' writes of the same
        moment; returns the final status once committed."""
        if not steps and final is None:
            return None
        return await self._batches.submit(_Write(run, steps, final))

    async def _apply(
        self, uow: UnitOfWork, batch: list[_Write]
    ) -> list[ExecutionStatus | Exception | None]:
        now = utcnow()
        leased: dict[uuid.UUID, RunRow] = {}
        for worker in {item.run.worker_id for item in batch}:
            keys = [(i.run.workspace_id, i.run.id) for i in batch if i.run.worker_id == worker]
            leased |= await uow.runs.leased(keys, worker, now)
        outcomes: list[ExecutionStatus | Exception | None] = []
        updates: list[TaskUpdate] = []
        ending: list[tuple[RunRow, TaskStatus]] = []
        changes: list[Change] = []
        for item in batch:
            row = leased.get(item.run.id)
            if row is None:
                outcomes.append(await gone(uow, item.run))
                continue
            progress = steps_of(row, item.run, item.steps, updates)
            final = item.final
            if final is None:
                if progress:
                    changes.append(Change(row, S(row.status), progress, {}))
                outcomes.append(None)
                continue
            if final.open_tasks is not None:
                ending.append((row, final.open_tasks))
            values = {"finished_at": now, **final.values}
            changes.append(Change(row, final.status, [*progress, final.event], values))
            outcomes.append(final.status)
        await uow.runs.update_tasks(updates)
        for row, status in ending:  # after the steps: a step may have ended a task itself
            await finish_tasks(uow, row, status)
        await record_runs(uow, self._bus, changes)
        return outcomes


def steps_of(
    row: RunRow, run: RunHandle, steps: list[Step], updates: list[TaskUpdate]
) -> list[Event]:
    """Adds the steps' task writes to `updates`; returns their events, stamped with the status
    the execution has (they happened before whatever the same write changes it to)."""
    if not steps:
        return []
    writes, events = plan(run.config, steps, utcnow())
    updates += [TaskUpdate(run.id, p, w.values, w.append) for p, w in writes.items()]
    current = S(row.status)
    return [Event(e.type, e.message, e.task_position, e.data, current) for e in events]


async def leased_row(uow: UnitOfWork, run: RunHandle) -> RunRow:
    """The execution's row, locked, if this worker still holds its lease (the fence);
    else ExecutionGone saying why."""
    leased = await uow.runs.leased([(run.workspace_id, run.id)], run.worker_id, utcnow())
    if run.id in leased:
        return leased[run.id]
    raise await gone(uow, run)


async def gone(uow: UnitOfWork, run: RunHandle) -> ExecutionGone:
    """Why this worker may not write the execution (the fence refused it)."""
    row = await uow.executions.get(run.workspace_id, run.id)
    if row is None or S(row.status) not in (S.RUNNING, S.CANCELLING):
        status = "deleted" if row is None else row.status
        return ExecutionGone(f"Execution {run.id} is {status}; it stops here.")
    if row.worker_id != run.worker_id:
        return ExecutionGone(
            f"Execution {run.id} is run by {row.worker_id} now; this worker "
            f"({run.worker_id}) lost it and writes nothing more."
        )
    return ExecutionGone(
        f"This worker ({run.worker_id}) lost its lease on execution {run.id} (it ran out at "
        f"{row.lease_expires_at}); it writes nothing more and stops."
    )
