"""The run lifecycle of an execution: what runners call while they run one.

Claim (QUEUED -> RUNNING with a lease), heartbeat (renew the lease), record progress in batches,
finish (completed, failed, cancelled), and reap executions whose runner is gone.

Fencing: every write of a running execution starts with one statement that locks its row only
if this worker still holds an unexpired lease on it (`uow.runs.leased`); otherwise the
write raises ExecutionGone saying why, and the runner stops that execution. A worker frozen past
its lease (SIGSTOP, a long GC pause, a partition) therefore cannot write after it resumes, even
before a reaper has marked the execution CRASHED; a lease that ran out is not renewed either.

The API side (launch, read, cancel, retry) is `execution_service.py`, watching is
`execution_watch.py`; status and events are written only through `execution_record`. Progress,
completion and failure of several executions share transactions (`execution_writes.RunWrites`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from backend.events.bus import EventBus, UpdateSubscription
from backend.repositories.execution_run import RunRow, TaskUpdate, run_row
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import (
    TERMINAL,
    CrewConfig,
    EventType,
    ExecutionStatus,
    TaskStatus,
    UsageResponse,
)
from backend.services.execution_handle import ExecutionGone, RunHandle
from backend.services.execution_progress import Step, StepKind
from backend.services.execution_record import (
    Change,
    Event,
    finish_tasks,
    record,
    record_cancelled,
    record_runs,
    task_of,
)
from backend.services.execution_resume import (
    Resume,
    TimeoutAction,
    input_requested,
    resume_of,
)
from backend.services.execution_writes import Final, RunWrites, leased_row, steps_of
from backend.utils.time import utcnow

__all__ = ["ExecutionGone", "ExecutionLifecycle", "RunHandle"]

S = ExecutionStatus


class ExecutionLifecycle:
    """The runner's side of executions; it never sees GraphQL and never reads for a client."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory,
        bus: EventBus,
        lease_seconds: float = 30.0,
        max_running_per_key: int = 0,
        input_timeout_seconds: float = 86_400.0,
        input_timeout_action: TimeoutAction = "fail",
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow
        self.bus = bus
        self._lease = timedelta(seconds=lease_seconds)
        self._max_running_per_key = max_running_per_key
        self._input_timeout = input_timeout_seconds
        self._input_timeout_action = input_timeout_action
        self._writes = RunWrites(uow, bus)

    def runner_feed(self) -> AbstractAsyncContextManager[UpdateSubscription]:
        """What runners listen to, in every workspace: cancellation requests
        (EXECUTION_CANCELLING, with `force`), which reach every worker process in scaled mode.
        New work comes as turns (`bus.on_turn`)."""
        cancelling = EventType.EXECUTION_CANCELLING
        return self.bus.subscribe_updates(lambda item: item.type == cancelling, internal=True)

    async def claim(self, worker_id: str, limit: int) -> list[RunHandle]:
        """Moves up to `limit` of the oldest QUEUED executions to RUNNING for this worker."""
        now = utcnow()
        handles = []
        async with self._uow() as uow:
            queued = await uow.queue.lock_queued(limit, self._max_running_per_key)
            rows = await uow.runs.claimed([q.id for q in queued])
            changes = []
            for row in rows:
                # Started before: it waited for human input and was answered (execution_input).
                resumed = row.started_at is not None
                resume = Resume()
                used: dict[int, UsageResponse] = {}
                if resumed:
                    tasks = await uow.executions.tasks(row.workspace_id, [row.id])
                    resume = resume_of(tasks[row.id], row.input_response)
                    used = {t.position: task_of(t).usage for t in tasks[row.id] if t.requests}
                started = Event(
                    EventType.EXECUTION_STARTED,
                    f"{'Resumed' if resumed else 'Started'} on {worker_id}.",
                    data={"worker": worker_id, **({"resumed": True} if resumed else {})},
                )
                values = {
                    "worker_id": worker_id,
                    "started_at": row.started_at or now,
                    "heartbeat_at": now,
                    "lease_expires_at": now + self._lease,
                    "input_response": None,
                }
                changes.append(Change(run_row(row), S.RUNNING, [started], values))
                handles.append(
                    RunHandle(
                        row.id,
                        row.workspace_id,
                        row.name,
                        CrewConfig.model_validate(row.config),
                        dict(row.inputs),
                        resume,
                        traceparent=row.traceparent,
                        max_tokens=row.max_tokens,
                        max_cost_usd=row.max_cost_usd,
                        used=used,
                        worker_id=worker_id,
                    )
                )
            await record_runs(uow, self.bus, changes)
        return handles

    async def heartbeat(self, worker_id: str, execution_ids: Sequence[uuid.UUID]) -> None:
        now = utcnow()
        async with self._uow() as uow:
            await uow.queue.heartbeat(worker_id, execution_ids, now, now + self._lease)

    async def record_progress(self, run: RunHandle, steps: list[Step]) -> None:
        """Writes a batch of an engine's steps (task states and their events) at once, in a
        transaction it may share with other executions' writes (execution_writes.py)."""
        await self._writes.write(run, steps)

    async def task_started(self, run: RunHandle, position: int) -> None:
        await self.record_progress(run, [Step(StepKind.STARTED, position)])

    async def task_output(self, run: RunHandle, position: int, chunk: str) -> None:
        await self.record_progress(run, [Step(StepKind.OUTPUT, position, chunk)])

    async def task_completed(
        self, run: RunHandle, position: int, output: str, pending_chunk: str = ""
    ) -> None:
        steps = [Step(StepKind.OUTPUT, position, pending_chunk)] if pending_chunk else []
        steps.append(Step(StepKind.COMPLETED, position, output=output))
        await self.record_progress(run, steps)

    async def task_failed(self, run: RunHandle, position: int, error: str, output: str) -> None:
        await self.record_progress(run, [Step(StepKind.FAILED, position, error, output)])

    async def complete(
        self, run: RunHandle, result: dict[str, Any], steps: Sequence[Step] = ()
    ) -> ExecutionStatus:
        completed = Event(EventType.EXECUTION_COMPLETED, "Execution completed.")
        return await self._finish(run, steps, Final(S.COMPLETED, completed, {"result": result}))

    async def fail(
        self,
        run: RunHandle,
        error: str,
        steps: Sequence[Step] = (),
        *,
        code: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> ExecutionStatus:
        """`code` (e.g. BUDGET_EXCEEDED) becomes the execution's errorCode and, with `data`, the
        EXECUTION_FAILED event's data."""
        details = {"code": code, **(data or {})} if code else data
        failed = Event(EventType.EXECUTION_FAILED, f"Execution failed: {error}", data=details)
        values = {"error": error, "error_code": code}
        return await self._finish(run, steps, Final(S.FAILED, failed, values, TaskStatus.SKIPPED))

    async def cancelled(
        self, run: RunHandle, reason: str, steps: Sequence[Step] = ()
    ) -> ExecutionStatus:
        """Records that the engine stopped; from RUNNING it passes through CANCELLING first."""
        async with self._uow() as uow:
            found = await uow.executions.get(run.workspace_id, run.id)
            if found is None or S(found.status) in TERMINAL:
                return S(found.status) if found else S.CANCELLED
            leased = await leased_row(uow, run)
            row: Row[Any] | RunRow = await self._apply_steps(uow, leased, run, list(steps))
            if S(row.status) == S.RUNNING:
                row = await record(
                    uow,
                    self.bus,
                    row,
                    S.CANCELLING,
                    [Event(EventType.EXECUTION_CANCELLING, reason, data={"force": True})],
                )
            row = await record_cancelled(uow, self.bus, row, reason)
        return S.CANCELLED

    async def await_input(
        self, run: RunHandle, position: int, steps: Sequence[Step] = ()
    ) -> ExecutionStatus:
        """The task at `position` answered and asks for a person (execution_input.py): record
        its last steps and wait, holding no worker and no lease, so nothing can crash it while
        a person thinks. A cancellation requested before wins (CANCELLED)."""
        async with self._uow() as uow:
            row = await leased_row(uow, run)
            cancelling = S(row.status) == S.CANCELLING
            if not cancelling:
                updates: list[TaskUpdate] = []
                progress = steps_of(row, run, list(steps), updates)
                await uow.runs.update_tasks(updates)
                rows = (await uow.executions.tasks(run.workspace_id, [run.id]))[run.id]
                seconds = row.input_timeout_seconds or self._input_timeout
                deadline = utcnow() + timedelta(seconds=seconds)
                asked = input_requested(
                    run.config.tasks[position],
                    position,
                    rows[position].output,
                    deadline,
                    self._input_timeout_action,
                )
                await record(
                    uow,
                    self.bus,
                    row,
                    S.WAITING_FOR_INPUT,
                    [*progress, asked],
                    worker_id=None,
                    heartbeat_at=None,
                    lease_expires_at=None,
                    input_deadline_at=deadline,
                )
        if cancelling:
            return await self.cancelled(run, "Cancelled on request.", steps)
        return S.WAITING_FOR_INPUT

    async def _apply_steps(
        self, uow: UnitOfWork, row: RunRow, run: RunHandle, steps: list[Step]
    ) -> RunRow:
        updates: list[TaskUpdate] = []
        progress = steps_of(row, run, steps, updates)
        await uow.runs.update_tasks(updates)
        if not progress:
            return row
        changed = Change(row, S(row.status), progress, {})
        return (await record_runs(uow, self.bus, [changed]))[0]

    async def reap(self, is_dead: Callable[[str | None], bool]) -> int:
        """Marks CRASHED every RUNNING/CANCELLING execution whose runner is gone: its lease
        expired (no heartbeat), or `is_dead` recognises its worker as a stopped process."""
        now = utcnow()
        async with self._read_uow() as uow:
            candidates = await uow.queue.unfinished()
        crashed = 0
        for candidate in candidates:
            expired = candidate.lease_expires_at is not None and candidate.lease_expires_at < now
            if not (expired or is_dead(candidate.worker_id)):
                continue
            worker = candidate.worker_id or "an unknown worker"
            reason = (
                f"The worker {worker} stopped renewing its lease; it is presumed dead."
                if expired
                else f"The process that ran this execution ({worker}) stopped before it finished."
            )
            async with self._uow() as uow:
                row = await uow.executions.get_for_update(
                    candidate.workspace_id, candidate.id, skip_locked=True
                )
                if row is None or S(row.status) not in (S.RUNNING, S.CANCELLING):
                    continue
                if row.worker_id != candidate.worker_id:
                    continue  # claimed again meanwhile
                row = await finish_tasks(uow, row, TaskStatus.FAILED, error=reason)
                await record(
                    uow,
                    self.bus,
                    row,
                    S.CRASHED,
                    [Event(EventType.EXECUTION_CRASHED, reason, data={"worker": row.worker_id})],
                    finished_at=utcnow(),
                    error=reason,
                )
                crashed += 1
        return crashed

    async def cancel_requested(self, run: RunHandle) -> tuple[bool, bool]:
        async with self._read_uow() as uow:
            row = await uow.executions.get(run.workspace_id, run.id)
        if row is None:
            return True, True
        return bool(row.cancel_requested), bool(row.cancel_force)

    async def _finish(self, run: RunHandle, steps: Sequence[Step], final: Final) -> ExecutionStatus:
        status = await self._writes.write(run, list(steps), final)
        assert status is not None
        return status
