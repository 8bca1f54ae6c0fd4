"""ExecutionService: the API side of executions: launch, read, cancel and retry.

Resolvers call it; watching (subscriptions) is `execution_watch.py`, and what runners call while
they run an execution is `execution_lifecycle.py`. Every status change goes through
`execution_record` (`record`; `record_launches` for new executions, several launches per
transaction): checked by `execution_status.check` and written together with the events that
describe it, in one transaction; the events reach the bus only after it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Unpack

from backend.core.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from backend.events.bus import EventBus
from backend.observability import tracing
from backend.repositories.execution import EventWindow, ExecutionFilter
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import (
    EVERYTHING,
    CrewConfig,
    EventType,
    ExecutionCreate,
    ExecutionEventResponse,
    ExecutionResponse,
    ExecutionStatus,
    ExecutionTaskResponse,
    ListFilter,
    Page,
    PageRequest,
    TaskStatus,
)
from backend.services import execution_status
from backend.services.crew_service import CrewService, ToolNames, inline_tool_problems
from backend.services.execution_batches import GroupCommit
from backend.services.execution_config import (
    descriptive_name,
    missing_inputs,
    request_hash,
)
from backend.services.execution_record import (
    Event,
    Launch,
    event_of,
    execution_of,
    record,
    record_cancelled,
    record_launches,
    task_of,
)
from backend.utils.groups import group_by

S = ExecutionStatus


# Checks a launch's agents' llm strings (and its maxCostUsd against the price table): problems.
LlmCheck = Callable[[CrewConfig, float | None, str], list[FieldProblem]]


class ExecutionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory,
        crews: CrewService,
        bus: EventBus,
        check_llms: LlmCheck,
        tools: ToolNames | None = None,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow
        self._crews = crews
        self.bus = bus
        self._check_llms = check_llms
        self._tools = tools
        # Launches made at the same moment share one transaction (execution_batches.py).
        self._launches: GroupCommit[Launch, dict[str, Any]] = GroupCommit(uow, self._store)

    # ================================================================ launching

    async def create_execution(
        self,
        workspace_id: uuid.UUID,
        data: ExecutionCreate,
        *,
        api_key_id: uuid.UUID | None = None,
    ) -> ExecutionResponse:
        """Queues an execution; `api_key_id` (the caller's key) counts it against that key's cap
        on running executions."""
        # A repeated request is answered as the first one was, even if its crew changed since.
        digest = request_hash(data.crew_id, data.crew, data.inputs, data.name)
        if data.idempotency_key is not None:
            existing = await self._by_idempotency_key(workspace_id, data.idempotency_key, digest)
            if existing is not None:
                return existing
        config, crew_id, field = await self._config_for(workspace_id, data)
        problems = self._check_llms(config, data.max_cost_usd, field)
        problems += missing_inputs(config, data.inputs)
        if data.crew is not None and self._tools is not None:
            problems += await inline_tool_problems(self._tools, workspace_id, config, field)
        if problems:
            raise ValidationFailed(problems)
        try:
            return await self._insert(
                workspace_id, data, config, crew_id, digest, parent_id=None, api_key_id=api_key_id
            )
        except Conflict:
            if data.idempotency_key is None:
                raise
            # A concurrent request with the same key won the insert: answer as it did.
            existing = await self._by_idempotency_key(workspace_id, data.idempotency_key, digest)
            if existing is None:
                raise
            return existing

    async def retry_execution(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        *,
        api_key_id: uuid.UUID | None = None,
    ) -> ExecutionResponse:
        async with self._read_uow() as uow:
            row = await uow.executions.get(workspace_id, execution_id)
        if row is None:
            raise NotFound("Execution", execution_id)
        execution_status.check_retry(execution_id, S(row.status))
        config = CrewConfig.model_validate(row.config)
        data = ExecutionCreate.model_construct(
            crew_id=row.crew_id,
            crew=None,
            inputs=row.inputs,
            name=None,
            idempotency_key=None,
            input_timeout_seconds=row.input_timeout_seconds,
            max_tokens=row.max_tokens,
            max_cost_usd=row.max_cost_usd,
        )
        name = row.name if row.name.startswith("Retry of ") else f"Retry of {row.name}"
        data = data.model_copy(update={"name": name[:200]})
        return await self._insert(
            workspace_id,
            data,
            config,
            row.crew_id,
            None,
            parent_id=execution_id,
            crew_name=row.crew_name,
            api_key_id=api_key_id,
        )

    async def _config_for(
        self, workspace_id: uuid.UUID, data: ExecutionCreate
    ) -> tuple[CrewConfig, uuid.UUID | None, str]:
        if data.crew is not None:
            return data.crew, None, "crew"
        assert data.crew_id is not None
        return await self._crews.crew_config(workspace_id, data.crew_id), data.crew_id, "crewId"

    async def _by_idempotency_key(
        self, workspace_id: uuid.UUID, key: str, digest: str
    ) -> ExecutionResponse | None:
        async with self._read_uow() as uow:
            row = await uow.executions.by_idempotency_key(workspace_id, key)
        if row is None:
            return None
        if row.request_hash != digest:
            raise Conflict(
                "This idempotencyKey was already used for a different request.", "idempotency_key"
            )
        return execution_of(row)

    async def _insert(
        self,
        workspace_id: uuid.UUID,
        data: ExecutionCreate,
        config: CrewConfig,
        crew_id: uuid.UUID | None,
        digest: str | None,
        *,
        parent_id: uuid.UUID | None,
        crew_name: str | None = None,
        api_key_id: uuid.UUID | None = None,
    ) -> ExecutionResponse:
        name = (data.name or "").strip() or descriptive_name(config, data.inputs)
        values = {
            "name": name,
            "crew_id": crew_id,
            "crew_name": crew_name or config.name,
            "config": config.model_dump(mode="json"),
            "inputs": data.inputs,
            "idempotency_key": data.idempotency_key,
            "request_hash": digest,
            "parent_id": parent_id,
            "api_key_id": api_key_id,
            "input_timeout_seconds": data.input_timeout_seconds,
            "traceparent": tracing.current_traceparent(),
            "max_tokens": data.max_tokens,
            "max_cost_usd": data.max_cost_usd,
        }
        tasks = [
            {"position": i, "name": t.name, "agent_name": t.agent, "status": TaskStatus.PENDING}
            for i, t in enumerate(config.tasks)
        ]
        message = f"Queued {name!r}" + (f" (retry of {parent_id})" if parent_id else "")
        row = await self._launches.submit(Launch(workspace_id, values, tasks, message))
        return execution_of(row)

    async def _store(
        self, uow: UnitOfWork, launches: list[Launch]
    ) -> list[dict[str, Any] | Exception]:
        return [*await record_launches(uow, self.bus, launches)]

    # ================================================================ reading

    async def get_execution(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID
    ) -> ExecutionResponse:
        found = await self.executions_by_ids(workspace_id, [execution_id])
        if execution_id not in found:
            raise NotFound("Execution", execution_id)
        return found[execution_id]

    async def executions_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, ExecutionResponse]:
        async with self._read_uow() as uow:
            rows = await uow.executions.get_many(workspace_id, ids)
        return {i: execution_of(r) for i, r in rows.items()}

    async def list_executions(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        where: ListFilter = EVERYTHING,
        **only: Unpack[ExecutionFilter],
    ) -> Page[ExecutionResponse]:
        async with self._read_uow() as uow:
            rows = await uow.executions.list(workspace_id, page, where, **only)
        return Page(
            [execution_of(r) for r in rows.items], rows.has_next_page, rows.has_previous_page
        )

    async def status_counts(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID | None = None
    ) -> dict[ExecutionStatus, int]:
        async with self._read_uow() as uow:
            counts = await uow.executions.status_counts(workspace_id, crew_id)
        return {status: counts.get(status.value, 0) for status in ExecutionStatus}

    async def queue_stats(self) -> tuple[int, datetime | None]:
        """QUEUED executions of every workspace and the oldest one's creation (for metrics)."""
        async with self._read_uow() as uow:
            return await uow.queue.queued_stats()

    async def tasks_of(
        self, workspace_id: uuid.UUID, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ExecutionTaskResponse]]:
        async with self._read_uow() as uow:
            rows = await uow.executions.tasks(workspace_id, execution_ids)
        return {i: [task_of(r) for r in rs] for i, rs in rows.items()}

    async def retries_of(
        self, workspace_id: uuid.UUID, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ExecutionResponse]]:
        async with self._read_uow() as uow:
            rows = await uow.executions.children(workspace_id, execution_ids)
        return group_by(execution_ids, rows, attrgetter("parent_id"), execution_of)

    async def events_of_many(
        self,
        workspace_id: uuid.UUID,
        execution_ids: Sequence[uuid.UUID],
        *,
        after: int = 0,
        limit: int = 100,
    ) -> dict[uuid.UUID, list[ExecutionEventResponse]]:
        async with self._read_uow() as uow:
            rows = await uow.executions.events_of_many(
                workspace_id, execution_ids, after=after, limit=limit
            )
        return group_by(execution_ids, rows, attrgetter("execution_id"), event_of)

    async def events(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, **window: Unpack[EventWindow]
    ) -> list[ExecutionEventResponse]:
        async with self._read_uow() as uow:
            rows = await uow.executions.events(workspace_id, execution_id, **window)
        return [event_of(r) for r in rows]

    # ================================================================ cancelling

    async def cancel_execution(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, *, force: bool = False
    ) -> ExecutionResponse:
        async with self._uow() as uow:
            row = await uow.executions.get_for_update(workspace_id, execution_id)
            if row is None:
                raise NotFound("Execution", execution_id)
            current = S(row.status)
            how = "forced" if force else "graceful"
            if current in (S.QUEUED, S.WAITING_FOR_INPUT):
                # Nothing runs: cancelled at once. (A resumed one is QUEUED with a start time.)
                reason = {
                    S.WAITING_FOR_INPUT: "Cancelled while waiting for input.",
                    S.QUEUED: "Cancelled before it resumed."
                    if row.started_at is not None
                    else "Cancelled before it started.",
                }[current]
                row = await record_cancelled(
                    uow, self.bus, row, reason, input_deadline_at=None, input_response=None
                )
            elif current == S.RUNNING or (
                current == S.CANCELLING and force and not row.cancel_force
            ):
                # Asked to stop, or asked again with force: the runner hears it from the event.
                asked = current == S.RUNNING
                message = f"Cancellation requested ({how})." if asked else "Cancellation forced."
                values = {"cancel_force": force} | ({"cancel_requested": True} if asked else {})
                cancelling = Event(EventType.EXECUTION_CANCELLING, message, data={"force": force})
                row = await record(uow, self.bus, row, S.CANCELLING, [cancelling], **values)
            elif current != S.CANCELLING:
                execution_status.check(execution_id, current, S.CANCELLED)
        return execution_of(row)
