"""Execution queries, mutations and subscriptions: parse, call ExecutionService, shape."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.direct import DIRECT
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.errors import ClientError
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import (
    argument_id,
    connection,
    filter_id,
    known_id,
    list_filter,
    load_by_id,
    page_request,
    parse_id,
)
from backend.api.graphql.types.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from backend.api.graphql.types.execution import (
    Execution,
    ExecutionEvent,
    event_type,
    execution_type,
)
from backend.api.graphql.types.inputs import ExecutionCreateInput
from backend.api.graphql.types.pagination import Connection
from backend.core.errors import Conflict, InvalidTransition, NotFound, Unavailable, ValidationFailed
from backend.observability import metrics
from backend.schemas import ExecutionCreate, ExecutionEventResponse, ExecutionStatus

CreateExecutionResult = Annotated[
    Execution | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CreateExecutionResult"),
]
CancelExecutionResult = Annotated[
    Execution | NotFoundError | InvalidTransitionError | ConflictError,
    strawberry.union("CancelExecutionResult"),
]
RespondToExecutionResult = Annotated[
    Execution | NotFoundError | InvalidTransitionError | ValidationError | ConflictError,
    strawberry.union("RespondToExecutionResult"),
]
RetryExecutionResult = Annotated[
    Execution | NotFoundError | InvalidTransitionError | ConflictError,
    strawberry.union("RetryExecutionResult"),
]


@strawberry.input(description="Narrows executions; all given conditions must hold.")
class ExecutionFilter:
    statuses: list[ExecutionStatus] | None = strawberry.field(
        default=None, description="Any of these statuses."
    )
    crew_id: strawberry.ID | None = strawberry.field(
        default=None, description="Launched from this crew."
    )
    created_after: datetime | None = None
    created_before: datetime | None = None


@strawberry.input(description="Which executions' status changes a dashboard receives.")
class ExecutionUpdatesFilter:
    statuses: list[ExecutionStatus] | None = strawberry.field(
        default=None, description="Only changes into any of these statuses."
    )
    crew_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only executions launched from this crew."
    )


@strawberry.type
class ExecutionQuery:
    @strawberry.field(description="One execution of your workspace, or null if there is none.")
    async def execution(self, info: Info, id: strawberry.ID) -> Execution | None:
        found = await load_by_id(info.context.loaders.execution, id)
        return None if found is None else execution_type(found)

    @strawberry.field(description="Executions of your workspace, newest first.")
    async def executions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: ExecutionFilter | None = None,
    ) -> Connection[Execution]:
        ctx = info.context
        flt = filter or ExecutionFilter()
        page = await ctx.services.executions.list_executions(
            ctx.workspace_id,
            page_request(ctx.settings, first, after),
            list_filter(flt),
            statuses=flt.statuses or (),
            crew_id=filter_id(flt.crew_id, "crewId"),
        )
        return connection([execution_type(e) for e in page.items], page)


@strawberry.type(description="How many executions are in one status.")
class ExecutionStatusCount:
    status: ExecutionStatus
    count: int


@strawberry.type
class ExecutionCountQuery:
    @strawberry.field(
        description="How many executions of your workspace (of one crew) are in each status."
    )
    async def execution_status_counts(
        self, info: Info, crew_id: strawberry.ID | None = None
    ) -> list[ExecutionStatusCount]:
        ctx = info.context
        parsed = argument_id(crew_id, "crewId", "crewId")
        counts = await ctx.services.executions.status_counts(ctx.workspace_id, parsed)
        return [ExecutionStatusCount(status=s, count=n) for s, n in counts.items()]


@strawberry.type
class ExecutionMutation:
    @strawberry.mutation(description="Launch a crew; watch it with executionEvents.")
    @domain_result(ValidationFailed, NotFound, Conflict)
    async def create_execution(
        self, info: Info, input: ExecutionCreateInput
    ) -> CreateExecutionResult:
        ctx = info.context
        execution = await ctx.services.executions.create_execution(
            ctx.workspace_id, to_schema(ExecutionCreate, input), api_key_id=ctx.api_key_id
        )
        return execution_type(execution)

    @strawberry.mutation(
        description="Cancel: a queued execution at once, a running one at its next step "
        "(or at once with force)."
    )
    @domain_result(NotFound, Conflict, InvalidTransition)
    async def cancel_execution(
        self, info: Info, id: strawberry.ID, force: bool = False
    ) -> CancelExecutionResult:
        ctx = info.context
        execution = await ctx.services.executions.cancel_execution(
            ctx.workspace_id, known_id(id, "Execution"), force=force
        )
        return execution_type(execution)

    @strawberry.mutation(description="Run a finished execution's config again, as a new one.")
    @domain_result(NotFound, Conflict, InvalidTransition)
    async def retry_execution(self, info: Info, id: strawberry.ID) -> RetryExecutionResult:
        ctx = info.context
        execution = await ctx.services.executions.retry_execution(
            ctx.workspace_id, known_id(id, "Execution"), api_key_id=ctx.api_key_id
        )
        return execution_type(execution)

    @strawberry.mutation(
        description="Answer an execution that waits for input (WAITING_FOR_INPUT): approve keeps "
        "the task's answer and goes on; approve false with feedback runs the task again with "
        "the feedback; approve false without feedback fails it (code REJECTED)."
    )
    @domain_result(ValidationFailed, NotFound, Conflict, InvalidTransition)
    async def respond_to_execution(
        self, info: Info, id: strawberry.ID, approve: bool, feedback: str | None = None
    ) -> RespondToExecutionResult:
        ctx = info.context
        by = ctx.principal.key_prefix if ctx.principal is not None else "unknown"
        execution = await ctx.services.inputs.respond(
            ctx.workspace_id,
            known_id(id, "Execution"),
            approve=approve,
            feedback=feedback,
            by=by,
        )
        return execution_type(execution)


@strawberry.type
class ExecutionSubscription:
    @strawberry.subscription(
        description="Every event of one execution in order: the stored ones after `after`, then "
        "live ones; no gap, no duplicate. Completes after the terminal event."
    )
    async def execution_events(
        self, info: Info, execution_id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[ExecutionEvent, None]:
        ctx = info.context
        parsed = parse_id(execution_id)
        if parsed is None:
            raise ClientError(f"Execution {execution_id} does not exist.", "NOT_FOUND")
        clock = metrics.DeliveryClock("executionEvents")
        sink = DIRECT.get()
        # On a websocket, its group's relay may deliver live events while the stream waits.
        relay = sink.relay(parsed, clock) if sink is not None else None
        stream = ctx.services.watch.stream_events(
            ctx.workspace_id, parsed, after=after or 0, relay=relay
        )
        async with aclosing(_delivered("executionEvents", stream, clock)) as events:
            async for event in events:
                yield event

    @strawberry.subscription(
        description="A live feed of status changes of your executions, for dashboards. With "
        "`after`, the changes stored at or after that instant come first (a reconnecting "
        "dashboard passes the `createdAt` of the last change it saw); events repeated across "
        "a reconnect have the same `executionId` and `seq`."
    )
    async def execution_updates(
        self,
        info: Info,
        filter: ExecutionUpdatesFilter | None = None,
        after: datetime | None = None,
    ) -> AsyncGenerator[ExecutionEvent, None]:
        ctx = info.context
        flt = filter or ExecutionUpdatesFilter()
        stream = ctx.services.watch.stream_updates(
            ctx.workspace_id,
            statuses=flt.statuses or (),
            crew_id=filter_id(flt.crew_id, "crewId"),
            after=after,
        )
        async with aclosing(_delivered("executionUpdates", stream)) as events:
            async for event in events:
                yield event


async def _delivered(
    field: str,
    stream: AsyncGenerator[ExecutionEventResponse, None],
    clock: metrics.DeliveryClock | None = None,
) -> AsyncGenerator[ExecutionEvent, None]:
    """A subscription's events on their way to its client, timed and counted. On a websocket
    the operation's direct sink may take an event (its group's frames then go straight out) and
    nothing is yielded; a stream that cannot go on (its execution is gone, the database cannot
    be reached) ends as the client's error, with the domain error's code."""
    clock = clock or metrics.DeliveryClock(field)
    sink = DIRECT.get()
    try:
        with metrics.subscription_open(field):
            async for event in stream:
                clock.delivered(event.created_at)
                if sink is None or not await sink.offer(event.execution_id, event.seq):
                    yield event_type(event)
    except (NotFound, Unavailable) as error:
        raise ClientError(error.message, error.code) from None
    finally:
        await stream.aclose()
