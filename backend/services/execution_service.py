"""ExecutionService: creating, running, tracking, cancelling, retrying and naming executions.

Consolidated as the seed describes. Resolvers call the first half (launch, read, cancel, retry);
the runner calls the second half to report what an engine does. Either way every status change
goes through `execution_status.check` and is written together with the events that describe it,
in one transaction; the events reach the bus only after that transaction commits.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Row

from backend.core.errors import Conflict, DomainError, NotFound, ValidationFailed
from backend.core.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.events.bus import STATUS_EVENTS, BusEvent, EventBus, UpdateSubscription
from backend.observability import metrics
from backend.schemas import (
    TERMINAL,
    CrewConfig,
    EventType,
    ExecutionCreate,
    ExecutionEventResponse,
    ExecutionResponse,
    ExecutionStatus,
    ExecutionTaskResponse,
    Page,
    PageRequest,
    TaskStatus,
    TimeRange,
)
from backend.services import execution_status
from backend.services.crew_service import CrewService
from backend.services.execution_config import (
    descriptive_name,
    missing_inputs,
    request_hash,
    unknown_providers,
)
from backend.services.execution_progress import Step, StepKind, plan
from backend.services.execution_resume import Resume, resume_of
from backend.utils.time import utcnow

S = ExecutionStatus
ANY_TIME = TimeRange()
TERMINAL_EVENTS = frozenset(
    {
        EventType.EXECUTION_COMPLETED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_CRASHED,
    }
)


class ExecutionGone(DomainError):
    """The execution was finished elsewhere (cancelled, crashed by a reaper): stop running it."""

    code = "EXECUTION_GONE"


@dataclass(frozen=True)
class Event:
    type: EventType
    message: str = ""
    task_position: int | None = None
    data: dict[str, Any] | None = None
    # The status an event reports; None: the status the write leaves the execution in. Set for
    # progress written in the same statement as a final status (it happened before it).
    status: ExecutionStatus | None = None


@dataclass(frozen=True)
class RunHandle:
    """What the runner needs to run one claimed execution."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    config: CrewConfig
    inputs: dict[str, Any]
    # Where it starts: from the top, or after a wait for human input (execution_resume.py).
    resume: Resume = field(default_factory=Resume)


def _execution(row: Row[Any]) -> ExecutionResponse:
    return ExecutionResponse.model_construct(**row._mapping)


def _task(row: Row[Any]) -> ExecutionTaskResponse:
    return ExecutionTaskResponse.model_construct(**row._mapping)


def _event(row: Row[Any] | dict[str, Any]) -> ExecutionEventResponse:
    values = row if isinstance(row, dict) else row._mapping
    return ExecutionEventResponse.model_construct(**{k: values[k] for k in _EVENT_FIELDS})


_EVENT_FIELDS = tuple(ExecutionEventResponse.model_fields)


class ExecutionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory,
        crews: CrewService,
        bus: EventBus,
        known_providers: Callable[[], Iterable[str]],
        lease_seconds: float = 30.0,
        max_running_per_key: int = 0,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow
        self._crews = crews
        self.bus = bus
        self._known_providers = known_providers
        self._lease = timedelta(seconds=lease_seconds)
        self._max_running_per_key = max_running_per_key

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
        problems = unknown_providers(config, self._known_providers(), field + ".agents.{index}.llm")
        problems += missing_inputs(config, data.inputs)
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
        return _execution(row)

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
        async with self._uow() as uow:
            row = await uow.executions.add(
                workspace_id,
                {
                    "name": name,
                    "status": S.QUEUED,
                    "crew_id": crew_id,
                    "crew_name": crew_name or config.name,
                    "config": config.model_dump(mode="json"),
                    "inputs": data.inputs,
                    "idempotency_key": data.idempotency_key,
                    "request_hash": digest,
                    "parent_id": parent_id,
                    "api_key_id": api_key_id,
                    "input_timeout_seconds": data.input_timeout_seconds,
                },
            )
            await uow.executions.add_tasks(
                row.id,
                [
                    {
                        "position": i,
                        "name": t.name,
                        "agent_name": t.agent,
                        "status": TaskStatus.PENDING,
                    }
                    for i, t in enumerate(config.tasks)
                ],
            )
            message = f"Queued {name!r}" + (f" (retry of {parent_id})" if parent_id else "")
            row = await self._record(
                uow, row, S.QUEUED, [Event(EventType.EXECUTION_QUEUED, message)]
            )
        return _execution(row)

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
        return {i: _execution(r) for i, r in rows.items()}

    async def list_executions(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        *,
        statuses: Sequence[ExecutionStatus] = (),
        crew_id: uuid.UUID | None = None,
        created: TimeRange = ANY_TIME,
    ) -> Page[ExecutionResponse]:
        async with self._read_uow() as uow:
            c = uow.executions.table.c
            extra: list[ColumnElement[bool]] = []
            if statuses:
                extra.append(c.status.in_([s.value for s in statuses]))
            if crew_id is not None:
                extra.append(c.crew_id == crew_id)
            rows = await uow.executions.list(
                workspace_id,
                page,
                created_after=created.created_after,
                created_before=created.created_before,
                extra=extra,
            )
        return Page([_execution(r) for r in rows.items], rows.has_next_page, rows.has_previous_page)

    async def status_counts(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID | None = None
    ) -> dict[ExecutionStatus, int]:
        async with self._read_uow() as uow:
            counts = await uow.executions.status_counts(workspace_id, crew_id)
        return {status: counts.get(status.value, 0) for status in ExecutionStatus}

    async def tasks_of(
        self, workspace_id: uuid.UUID, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ExecutionTaskResponse]]:
        async with self._read_uow() as uow:
            rows = await uow.executions.tasks(workspace_id, execution_ids)
        return {i: [_task(r) for r in rs] for i, rs in rows.items()}

    async def retries_of(
        self, workspace_id: uuid.UUID, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ExecutionResponse]]:
        async with self._read_uow() as uow:
            rows = await uow.executions.children(workspace_id, execution_ids)
        found: dict[uuid.UUID, list[ExecutionResponse]] = {i: [] for i in execution_ids}
        for row in rows:
            found[row.parent_id].append(_execution(row))
        return found

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
        found: dict[uuid.UUID, list[ExecutionEventResponse]] = {i: [] for i in execution_ids}
        for row in rows:
            found[row.execution_id].append(_event(row))
        return found

    async def events(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        *,
        after: int = 0,
        limit: int = 100,
        until: int | None = None,
    ) -> list[ExecutionEventResponse]:
        async with self._read_uow() as uow:
            rows = await uow.executions.events(
                workspace_id, execution_id, after=after, limit=limit, until=until
            )
        return [_event(r) for r in rows]

    # ================================================================ watching

    async def stream_events(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, *, after: int = 0
    ) -> AsyncGenerator[ExecutionEventResponse, None]:
        """Every event with seq > after, in order, with no gap and no duplicate: the stored
        history first, then live events; ends after the terminal event.

        It subscribes before reading the history, so an event committed meanwhile is in one or
        the other (or both, and then dropped by seq). A gap in what the bus delivers (this
        subscriber lagged, or the bus lost its connection) is filled from the table. No session
        is held while the caller consumes an event.
        """
        await self.get_execution(workspace_id, execution_id)  # NotFound before anything else
        last = max(after, 0)
        async with self.bus.subscribe(execution_id) as subscription:
            while True:  # history, page by page
                page = await self.events(workspace_id, execution_id, after=last, limit=500)
                for event in page:
                    yield event
                    last = event.seq
                    if event.type in TERMINAL_EVENTS:
                        return
                if len(page) < 500:
                    break
            # Nothing stored after `after` may come any more: the caller already has the end.
            # (The subscription is open, so anything newer than this read arrives on the bus.)
            current = await self.get_execution(workspace_id, execution_id)
            if current.status in TERMINAL and last >= current.last_seq:
                return
            while True:  # live
                batch = await subscription.next_batch()
                if subscription.take_lag():
                    batch = []  # everything after `last` is re-read from the table
                    async for event in self._catch_up(workspace_id, execution_id, last, None):
                        yield event
                        last = event.seq
                        if event.type in TERMINAL_EVENTS:
                            return
                for item in batch:
                    if item.seq <= last:
                        if item.type in TERMINAL_EVENTS:
                            return  # the end, which the caller already had (after >= it)
                        continue
                    if item.event is None or item.seq > last + 1:
                        # A notice without the event, or a gap: read up to it from the table.
                        async for stored in self._catch_up(
                            workspace_id, execution_id, last, item.seq
                        ):
                            yield stored
                            last = stored.seq
                            if stored.type in TERMINAL_EVENTS:
                                return
                        continue
                    yield item.event
                    last = item.seq
                    if item.type in TERMINAL_EVENTS:
                        return

    async def _catch_up(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, after: int, until: int | None
    ) -> AsyncGenerator[ExecutionEventResponse, None]:
        while True:
            page = await self.events(
                workspace_id, execution_id, after=after, limit=500, until=until
            )
            for event in page:
                yield event
                after = event.seq
            if len(page) < 500:
                return

    async def stream_updates(
        self,
        workspace_id: uuid.UUID,
        *,
        statuses: Sequence[ExecutionStatus] = (),
        crew_id: uuid.UUID | None = None,
        after: datetime | None = None,
    ) -> AsyncGenerator[ExecutionEventResponse, None]:
        """Status changes of this workspace's executions that match, for as long as the caller
        stays (a dashboard). A lagging caller gets the latest status of each execution.

        With `after`, the changes stored since then come first (read once the feed is
        subscribed, so none falls between the two): a reconnecting dashboard misses nothing."""
        wanted = {s.value for s in statuses}

        def accepts(item: BusEvent) -> bool:
            return (
                item.workspace_id == workspace_id
                and (not wanted or item.status in wanted)
                and (crew_id is None or item.crew_id == crew_id)
            )

        delivered: OrderedDict[uuid.UUID, int] = OrderedDict()  # execution -> last seq sent
        async with self.bus.subscribe_updates(accepts) as feed:
            backlog: list[BusEvent] | None = None
            if after is not None:
                backlog = await self._status_changes_since(workspace_id, after)
            while True:
                if backlog is not None:
                    batch, missed_since = [item for item in backlog if accepts(item)], None
                    backlog = None
                else:
                    batch = await feed.next_batch()
                    missed_since = feed.take_missed()
                if missed_since is not None:  # the bus lost its connection: re-read the table
                    batch = [*await self._status_changes_since(workspace_id, missed_since), *batch]
                    batch = [item for item in batch if accepts(item)]
                for item in batch:
                    if item.seq <= delivered.get(item.execution_id, 0):
                        continue  # already sent (a resync re-reads what may have arrived)
                    delivered[item.execution_id] = item.seq
                    delivered.move_to_end(item.execution_id)
                    if len(delivered) > 10_000:
                        delivered.popitem(last=False)
                    event = item.event or await self._event_at(workspace_id, item)
                    if event is not None:
                        yield event

    def runner_feed(self) -> AbstractAsyncContextManager[UpdateSubscription]:
        """What runners listen to, in every workspace: new work (EXECUTION_QUEUED) and
        cancellation requests (EXECUTION_CANCELLING, with `force`). In scaled mode these reach
        the worker process that runs the execution through the bus."""
        wanted = {EventType.EXECUTION_QUEUED, EventType.EXECUTION_CANCELLING}
        return self.bus.subscribe_updates(lambda item: item.type in wanted, internal=True)

    async def _event_at(
        self, workspace_id: uuid.UUID, item: BusEvent
    ) -> ExecutionEventResponse | None:
        found = await self.events(workspace_id, item.execution_id, after=item.seq - 1, limit=1)
        return found[0] if found else None

    async def _status_changes_since(
        self, workspace_id: uuid.UUID, since: datetime
    ) -> list[BusEvent]:
        async with self._read_uow() as uow:
            rows = await uow.executions.status_events_since(
                workspace_id, since, [t.value for t in STATUS_EVENTS]
            )
        return [BusEvent.of(row.workspace_id, row.crew_id, _event(row)) for row in rows]

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
                row = await self._finish_tasks(uow, row, TaskStatus.CANCELLED)
                row = await self._record(
                    uow,
                    row,
                    S.CANCELLED,
                    [Event(EventType.EXECUTION_CANCELLED, reason)],
                    finished_at=utcnow(),
                    error=reason,
                    input_deadline_at=None,
                    input_response=None,
                )
            elif current == S.RUNNING:
                row = await self._record(
                    uow,
                    row,
                    S.CANCELLING,
                    [
                        Event(
                            EventType.EXECUTION_CANCELLING,
                            f"Cancellation requested ({how}).",
                            data={"force": force},
                        )
                    ],
                    cancel_requested=True,
                    cancel_force=force,
                )
            elif current == S.CANCELLING and force and not row.cancel_force:
                row = await self._record(
                    uow,
                    row,
                    S.CANCELLING,
                    [
                        Event(
                            EventType.EXECUTION_CANCELLING,
                            "Cancellation forced.",
                            data={"force": True},
                        )
                    ],
                    cancel_force=True,
                )
            elif current != S.CANCELLING:
                execution_status.check(execution_id, current, S.CANCELLED)
        return _execution(row)

    # ================================================================ the runner's side

    async def claim(self, worker_id: str, limit: int) -> list[RunHandle]:
        """Moves up to `limit` of the oldest QUEUED executions to RUNNING for this worker."""
        now = utcnow()
        handles = []
        async with self._uow() as uow:
            for queued in await uow.queue.lock_queued(limit, self._max_running_per_key):
                row = await uow.executions.get(queued.workspace_id, queued.id)
                assert row is not None
                # Started before: it waited for human input and was answered (execution_input).
                resumed = row.started_at is not None
                resume = Resume()
                if resumed:
                    tasks = await uow.executions.tasks(row.workspace_id, [row.id])
                    resume = resume_of(tasks[row.id], row.input_response)
                started = Event(
                    EventType.EXECUTION_STARTED,
                    f"{'Resumed' if resumed else 'Started'} on {worker_id}.",
                    data={"worker": worker_id, **({"resumed": True} if resumed else {})},
                )
                row = await self._record(
                    uow,
                    row,
                    S.RUNNING,
                    [started],
                    worker_id=worker_id,
                    started_at=row.started_at or now,
                    heartbeat_at=now,
                    lease_expires_at=now + self._lease,
                    input_response=None,
                )
                handles.append(
                    RunHandle(
                        row.id,
                        row.workspace_id,
                        row.name,
                        CrewConfig.model_validate(row.config),
                        dict(row.inputs),
                        resume,
                    )
                )
        return handles

    async def queue_stats(self) -> tuple[int, datetime | None]:
        """QUEUED executions of every workspace and the oldest one's creation (for metrics)."""
        async with self._read_uow() as uow:
            return await uow.queue.queued_stats()

    async def heartbeat(self, worker_id: str, execution_ids: Sequence[uuid.UUID]) -> None:
        now = utcnow()
        async with self._uow() as uow:
            await uow.queue.heartbeat(worker_id, execution_ids, now, now + self._lease)

    async def record_progress(self, run: RunHandle, steps: list[Step]) -> None:
        """Writes a batch of an engine's steps (task states and their events) at once."""
        if not steps:
            return
        async with self._uow() as uow:
            row = await self._running_row(uow, run)
            await self._apply_steps(uow, row, run, steps)

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
        return await self._finish(
            run,
            S.COMPLETED,
            Event(EventType.EXECUTION_COMPLETED, "Execution completed."),
            steps=steps,
            result=result,
        )

    async def fail(self, run: RunHandle, error: str, steps: Sequence[Step] = ()) -> ExecutionStatus:
        return await self._finish(
            run,
            S.FAILED,
            Event(EventType.EXECUTION_FAILED, f"Execution failed: {error}"),
            steps=steps,
            error=error,
            task_status=TaskStatus.SKIPPED,
        )

    async def cancelled(
        self, run: RunHandle, reason: str, steps: Sequence[Step] = ()
    ) -> ExecutionStatus:
        """Records that the engine stopped; from RUNNING it passes through CANCELLING first."""
        async with self._uow() as uow:
            row = await uow.executions.get_for_update(run.workspace_id, run.id)
            if row is None or S(row.status) in TERMINAL:
                return S(row.status) if row else S.CANCELLED
            row = await self._apply_steps(uow, row, run, list(steps))
            if S(row.status) == S.RUNNING:
                row = await self._record(
                    uow,
                    row,
                    S.CANCELLING,
                    [Event(EventType.EXECUTION_CANCELLING, reason, data={"force": True})],
                )
            row = await self._finish_tasks(uow, row, TaskStatus.CANCELLED)
            row = await self._record(
                uow,
                row,
                S.CANCELLED,
                [Event(EventType.EXECUTION_CANCELLED, reason)],
                finished_at=utcnow(),
                error=reason,
            )
        return S.CANCELLED

    async def _apply_steps(
        self, uow: UnitOfWork, row: Row[Any], run: RunHandle, steps: list[Step]
    ) -> Row[Any]:
        progress = await self._write_steps(uow, row, run, steps)
        if not progress:
            return row
        return await self._record(uow, row, S(row.status), progress)

    async def _write_steps(
        self, uow: UnitOfWork, row: Row[Any], run: RunHandle, steps: list[Step]
    ) -> list[Event]:
        """Writes the steps' task states; returns their events (stamped with the current
        status) for the caller to record in the same transaction."""
        if not steps:
            return []
        writes, events = plan(run.config, steps, utcnow())
        for position, write in writes.items():
            if write.values or write.append:
                await uow.executions.update_task(
                    run.workspace_id,
                    run.id,
                    position,
                    write.values,
                    append_output=write.append or None,
                )
        current = S(row.status)
        return [Event(e.type, e.message, e.task_position, e.data, current) for e in events]

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
                row = await self._finish_tasks(uow, row, TaskStatus.FAILED, error=reason)
                await self._record(
                    uow,
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

    # ================================================================ internals

    async def _finish(
        self,
        run: RunHandle,
        target: ExecutionStatus,
        event: Event,
        *,
        steps: Sequence[Step] = (),
        task_status: TaskStatus = TaskStatus.SKIPPED,
        **values: Any,
    ) -> ExecutionStatus:
        async with self._uow() as uow:
            row = await uow.executions.get_for_update(run.workspace_id, run.id)
            if row is None:
                raise ExecutionGone(f"Execution {run.id} no longer exists.")
            if S(row.status) in TERMINAL:
                raise ExecutionGone(f"Execution {run.id} is already {row.status}.")
            progress = await self._write_steps(uow, row, run, list(steps))
            if target != S.COMPLETED:  # a completed execution has no open task left
                row = await self._finish_tasks(uow, row, task_status)
            await self._record(uow, row, target, [*progress, event], finished_at=utcnow(), **values)
        return target

    async def _running_row(self, uow: UnitOfWork, run: RunHandle) -> Row[Any]:
        row = await uow.executions.get_for_update(run.workspace_id, run.id)
        if row is None or S(row.status) not in (S.RUNNING, S.CANCELLING):
            status = "deleted" if row is None else row.status
            raise ExecutionGone(f"Execution {run.id} is {status}; it stops here.")
        return row

    async def _finish_tasks(
        self, uow: UnitOfWork, row: Row[Any], status: TaskStatus, error: str | None = None
    ) -> Row[Any]:
        """Tasks that never ran are SKIPPED; a task that was running takes `status`."""
        now = utcnow()
        values: dict[str, Any] = {"status": status, "finished_at": now}
        if error is not None:
            values["error"] = error
        await uow.executions.update_open_tasks(
            row.workspace_id, row.id, [TaskStatus.RUNNING], values
        )
        skipped = TaskStatus.CANCELLED if status == TaskStatus.CANCELLED else TaskStatus.SKIPPED
        await uow.executions.update_open_tasks(
            row.workspace_id, row.id, [TaskStatus.PENDING], {"status": skipped}
        )
        return row

    async def _record(
        self,
        uow: UnitOfWork,
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
        await self.bus.stage(
            uow, [BusEvent.of(row.workspace_id, row.crew_id, _event(e)) for e in stored]
        )
        return updated
