"""The runner's writes of running executions (progress, completion, failure), group-committed.

Writes of several executions that are ready at the same moment go in one transaction: one
statement locks all their rows behind the fence (`uow.runs.leased`), one executemany updates all
their task rows, and `record_runs` writes all their status changes and events. One writer task
drains the queue: while a batch is being written, the writes that arrive meanwhile gather for the
next one, so the busier the runner, the more executions share a commit.

What stays per execution: its writes commit in the order they were made (a second write of the
same execution waits for the next batch), its event numbers follow from its own locked row, and
a write this worker may no longer make (no lease: the fence) is refused with ExecutionGone for
that execution alone while the others of the batch commit. A batch that fails as a whole is
written again one execution at a time, so a write that cannot be stored fails only its own caller;
a lost connection fails every caller of the batch (each retries through `persist`).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from backend.events.bus import EventBus
from backend.repositories.connection_errors import is_connection_error
from backend.repositories.execution_run import RunRow, TaskUpdate
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import ExecutionStatus, TaskStatus
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
    done: asyncio.Future[ExecutionStatus | None]


class RunWrites:
    def __init__(self, uow: UnitOfWorkFactory, bus: EventBus, max_batch: int = 64) -> None:
        self._uow = uow
        self._bus = bus
        self._max_batch = max_batch
        self._queue: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(
        self, run: RunHandle, steps: list[Step], final: Final | None = None
    ) -> ExecutionStatus | None:
        """Writes the steps (and the final status) once committed; returns the final status.
        A caller cancelled before its batch starts writes nothing."""
        if not steps and final is None:
            return None
        loop = asyncio.get_running_loop()
        item = _Write(run, steps, final, loop.create_future())
        self._queue.append(item)
        if self._writer is None:
            self._writer = loop.create_task(self._drain(), name="runner-writes")
        return await item.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                await asyncio.sleep(0)  # writes made at this same moment join the batch
                batch: list[_Write] = []
                later: list[_Write] = []
                seen: set[uuid.UUID] = set()
                for item in self._queue:
                    if item.done.done():  # its caller was cancelled: it writes nothing
                        continue
                    if item.run.id in seen or len(batch) >= self._max_batch:
                        later.append(item)
                    else:
                        seen.add(item.run.id)
                        batch.append(item)
                self._queue = later
                if batch:
                    await self._commit(batch)
        finally:
            self._writer = None

    async def _commit(self, batch: list[_Write]) -> None:
        outcomes: list[ExecutionStatus | Exception | None]
        try:
            async with self._uow() as uow:
                outcomes = [*await self._apply(uow, batch)]
        except Exception as exc:
            if len(batch) > 1 and not is_connection_error(exc):
                for item in batch:
                    await self._commit([item])
                return
            outcomes = [exc] * len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.done.done():
                continue
            if isinstance(outcome, BaseException):
                item.done.set_exception(outcome)
            else:
                item.done.set_result(outcome)

    async def _apply(
        self, uow: UnitOfWork, batch: list[_Write]
    ) -> list[ExecutionStatus | ExecutionGone | None]:
        now = utcnow()
        leased: dict[uuid.UUID, RunRow] = {}
        for worker in {item.run.worker_id for item in batch}:
            keys = [(i.run.workspace_id, i.run.id) for i in batch if i.run.worker_id == worker]
            leased |= await uow.runs.leased(keys, worker, now)
        outcomes: list[ExecutionStatus | ExecutionGone | None] = []
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
