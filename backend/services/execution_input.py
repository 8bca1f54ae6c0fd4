"""Human input: an execution that waits for a person, and the response that resumes it.

A task with `human_input` stops the run once its agent has answered: the execution moves to
WAITING_FOR_INPUT with an INPUT_REQUESTED event carrying the answer and what is asked, and the
runner lets it go (no slot, no lease, no worker: nothing can crash while a person thinks, and a
restart changes nothing). The wait ends by `respond` or by its deadline (`expire_waits`, which any
runner's reaper calls):

- approve: the execution is QUEUED again and any runner resumes it after the approved task;
- feedback (approve false): the task is reset and QUEUED again; the resumed run redoes it with
  its previous answer and the feedback added to the prompt (INPUT_RECEIVED, then the task's
  events again);
- reject (approve false, no feedback): FAILED with code REJECTED;
- timeout: as CREWQL_INPUT_TIMEOUT_ACTION says, fail (INPUT_TIMEOUT) or approve.

The resumed run's starting point is rebuilt from the stored task rows (`resume_of`), so any
runner of any process can take it: that is the claim path's only addition.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row

from backend.core.errors import NotFound, ValidationFailed
from backend.events.bus import EventBus
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import (
    CrewConfig,
    EventType,
    ExecutionResponse,
    ExecutionStatus,
    TaskStatus,
)
from backend.services import execution_status
from backend.services.execution_record import Event, finish_tasks, record
from backend.services.execution_resume import TimeoutAction, waiting_position
from backend.utils.time import utcnow

S = ExecutionStatus
REJECTED = "REJECTED"
INPUT_TIMEOUT = "INPUT_TIMEOUT"
MAX_FEEDBACK_CHARS = 20_000


class HumanInput:
    """The person's side of a wait (the runner's side, `await_input`, is ExecutionLifecycle's).
    Status writes go through the one recording step, `execution_record.record` (checked
    transition, numbered events, bus after commit)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory,
        bus: EventBus,
        timeout_action: TimeoutAction,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow
        self._bus = bus
        self._timeout_action: TimeoutAction = timeout_action

    async def respond(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        *,
        approve: bool,
        feedback: str | None,
        by: str,
    ) -> ExecutionResponse:
        if feedback is not None and len(feedback) > MAX_FEEDBACK_CHARS:
            raise ValidationFailed.single(
                "feedback", f"at most {MAX_FEEDBACK_CHARS} characters, got {len(feedback)}"
            )
        async with self._uow() as uow:
            row = await uow.executions.get_for_update(workspace_id, execution_id)
            if row is None:
                raise NotFound("Execution", execution_id)
            execution_status.check_respond(execution_id, S(row.status))
            row = await self._resolve(uow, row, approve, (feedback or "").strip() or None, by)
        return ExecutionResponse.model_construct(**row._mapping)

    async def expire_waits(self) -> int:
        """Ends every wait whose deadline passed, as the timeout setting says; any runner may
        call it (rows another one holds are skipped)."""
        async with self._read_uow() as uow:
            due = await uow.queue.waits_due(utcnow())
        ended = 0
        for candidate in due:
            async with self._uow() as uow:
                row = await uow.executions.get_for_update(
                    candidate.workspace_id, candidate.id, skip_locked=True
                )
                if row is None or S(row.status) != S.WAITING_FOR_INPUT:
                    continue
                if row.input_deadline_at is None or row.input_deadline_at > utcnow():
                    continue  # answered and waiting again meanwhile
                approve = self._timeout_action == "approve"
                await self._resolve(uow, row, approve, None, "timeout")
                ended += 1
        return ended

    async def _resolve(
        self, uow: UnitOfWork, row: Row[Any], approve: bool, feedback: str | None, by: str
    ) -> Row[Any]:
        rows = (await uow.executions.tasks(row.workspace_id, [row.id]))[row.id]
        position = waiting_position(rows)
        config = CrewConfig.model_validate(row.config)
        task = config.tasks[position]
        timed_out = by == "timeout"
        received = Event(
            EventType.INPUT_RECEIVED,
            _received_message(task.name, approve, feedback, timed_out),
            position,
            {"task": task.name, "approve": approve, "feedback": feedback, "by": by},
        )
        if not approve and feedback is None:
            code = INPUT_TIMEOUT if timed_out else REJECTED
            error = (
                f"No response for task {task.name!r} before the wait's deadline."
                if timed_out
                else f"A person rejected the answer of task {task.name!r}."
            )
            row = await finish_tasks(uow, row, TaskStatus.SKIPPED)
            failed = Event(
                EventType.EXECUTION_FAILED, f"Execution failed: {error}", None, {"code": code}
            )
            return await record(
                uow,
                self._bus,
                row,
                S.FAILED,
                [received, failed],
                finished_at=utcnow(),
                error=error,
                error_code=code,
                input_deadline_at=None,
            )
        response = None
        if feedback is not None:
            response = {"position": position, "feedback": feedback, "answer": rows[position].output}
            reset = {"status": TaskStatus.PENDING, "output": "", "error": None}
            await uow.executions.update_task(
                row.workspace_id,
                row.id,
                position,
                {**reset, "started_at": None, "finished_at": None},
            )
        queued = Event(
            EventType.EXECUTION_QUEUED,
            "Queued to resume" + (f" and redo task {task.name!r}." if response else "."),
            None,
            {"resume": True},
        )
        return await record(
            uow,
            self._bus,
            row,
            S.QUEUED,
            [received, queued],
            input_deadline_at=None,
            input_response=response,
        )


def _received_message(task: str, approve: bool, feedback: str | None, timed_out: bool) -> str:
    if timed_out:
        verdict = "approved" if approve else "the execution fails"
        return f"No response for task {task!r} before the deadline: {verdict}."
    if approve:
        return f"Task {task!r} approved."
    if feedback is None:
        return f"Task {task!r} rejected."
    return f"Feedback on task {task!r}: it runs again."
