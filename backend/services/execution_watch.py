"""Watching executions: one execution's events, and a workspace's status changes, live.

Subscriptions call these. History comes from the table (through `ExecutionService`'s reads),
live events from the bus, de-duplicated by `seq`; a gap or a lost bus connection is filled from
the table. No session is held while a caller consumes an event.

A read that fails because the database connection went away (a restart, a failover,
`pg_terminate_backend`) is retried on a new connection: each read starts after the last event
the caller got, so a retry can neither skip nor repeat one, and the stream carries on. Only after
READ_RETRY_SECONDS without the database does the stream end, with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TypeVar

from loguru import logger

from backend.core.errors import Unavailable
from backend.events.bus import STATUS_EVENTS, EventBus, Relay

# Also for the API's relay (api/graphql/relay.py), which may not import the events layer.
from backend.events.bus import BusEvent as BusEvent
from backend.events.bus import Subscription as Subscription
from backend.repositories.connection_errors import is_connection_error
from backend.repositories.unit_of_work import UnitOfWorkFactory
from backend.schemas import TERMINAL, ExecutionEventResponse, ExecutionResponse, ExecutionStatus
from backend.services.execution_record import TERMINAL_EVENTS, event_of
from backend.services.execution_service import ExecutionService
from backend.utils.coalesce import Coalescer

T = TypeVar("T")
READ_RETRY_SECONDS = 30.0
MAX_RETRY_DELAY = 1.0
WHAT, UPDATES = "executionEvents", "executionUpdates"
PAGE = 500  # events per read of the table


async def reading(read: Callable[[], Awaitable[T]], what: str) -> T:
    """`read()`, retried with backoff through lost connections for up to READ_RETRY_SECONDS."""
    delay, deadline = 0.05, time.monotonic() + READ_RETRY_SECONDS
    while True:
        try:
            return await read()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise Unavailable(
                    f"The database has been unreachable for {READ_RETRY_SECONDS:g} s; "
                    "subscribe again with `after` to resume."
                ) from exc
            logger.warning("{}: database connection lost ({!r}); retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)


class ExecutionWatch:
    def __init__(
        self, executions: ExecutionService, read_uow: UnitOfWorkFactory, bus: EventBus
    ) -> None:
        self._executions = executions
        self._read_uow = read_uow
        self.bus = bus
        # Subscribers of one execution that subscribe (or catch up) at the same moment share
        # each read of it, each still from a read begun after it asked (utils/coalesce.py).
        self._shared_reads = Coalescer()

    async def _execution(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID
    ) -> ExecutionResponse:
        return await self._shared_reads.read(
            ("execution", workspace_id, execution_id),
            lambda: self._executions.get_execution(workspace_id, execution_id),
        )

    async def _events(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, after: int, until: int | None
    ) -> list[ExecutionEventResponse]:
        """A page of PAGE events after `after` (up to `until`)."""
        return await self._shared_reads.read(
            ("events", workspace_id, execution_id, after, until),
            partial(
                self._executions.events,
                workspace_id,
                execution_id,
                after=after,
                limit=PAGE,
                until=until,
            ),
        )

    async def stream_events(
        self,
        workspace_id: uuid.UUID,
        execution_id: uuid.UUID,
        *,
        after: int = 0,
        relay: Relay | None = None,
    ) -> AsyncGenerator[ExecutionEventResponse, None]:
        """Every event with seq > after, in order, with no gap and no duplicate: the stored
        history first, then live events; ends after the terminal event.

        It subscribes before reading the history, so an event committed meanwhile is in one or
        the other (or both, and then dropped by seq). A gap in what the bus delivers (this
        subscriber lagged, or the bus lost its connection) is filled from the table. No session
        is held while the caller consumes an event.

        With a `relay`, live events may be delivered by it while this stream waits (bus.Relay);
        they are not yielded here, and the stream carries on after the last one it delivered.
        """
        # NotFound before anything else
        await reading(partial(self._execution, workspace_id, execution_id), WHAT)
        last = max(after, 0)
        async with self.bus.subscribe(execution_id) as subscription:
            try:
                while True:  # history, page by page
                    page = await reading(
                        partial(self._events, workspace_id, execution_id, last, None), WHAT
                    )
                    for event in page:
                        yield event
                        last = event.seq
                        if event.type in TERMINAL_EVENTS:
                            return
                    if len(page) < PAGE:
                        break
                # Nothing stored after `after` may come any more: the caller already has the end.
                # (The subscription is open, so anything newer than this read arrives on the bus.)
                current = await reading(partial(self._execution, workspace_id, execution_id), WHAT)
                if current.status in TERMINAL and last >= current.last_seq:
                    return
                while True:  # live
                    if relay is not None and not subscription.buffered and not subscription.lagged:
                        relay.idle(subscription, last)
                    batch = await subscription.next_batch()
                    if relay is not None:
                        last, ended = await relay.resume(subscription, last)
                        if ended:
                            return
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
            finally:
                if relay is not None:
                    relay.leave(subscription)

    async def _catch_up(
        self, workspace_id: uuid.UUID, execution_id: uuid.UUID, after: int, until: int | None
    ) -> AsyncGenerator[ExecutionEventResponse, None]:
        while True:
            page = await reading(
                partial(self._events, workspace_id, execution_id, after, until), WHAT
            )
            for event in page:
                yield event
                after = event.seq
            if len(page) < PAGE:
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
                backlog = await reading(
                    lambda: self._status_changes_since(workspace_id, after), UPDATES
                )
            while True:
                if backlog is not None:
                    batch, missed_since = [item for item in backlog if accepts(item)], None
                    backlog = None
                else:
                    batch = await feed.next_batch()
                    missed_since = feed.take_missed()
                if missed_since is not None:  # the bus lost its connection: re-read the table
                    missed = await reading(
                        partial(self._status_changes_since, workspace_id, missed_since), UPDATES
                    )
                    batch = [*missed, *batch]
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

    async def _event_at(
        self, workspace_id: uuid.UUID, item: BusEvent
    ) -> ExecutionEventResponse | None:
        found = await reading(
            lambda: self._executions.events(
                workspace_id, item.execution_id, after=item.seq - 1, limit=1
            ),
            UPDATES,
        )
        return found[0] if found else None

    async def _status_changes_since(
        self, workspace_id: uuid.UUID, since: datetime
    ) -> list[BusEvent]:
        async with self._read_uow() as uow:
            rows = await uow.executions.status_events_since(
                workspace_id, since, [t.value for t in STATUS_EVENTS]
            )
        return [BusEvent.of(row.workspace_id, row.crew_id, event_of(row)) for row in rows]
