"""The event bus interface, and the bounded per-subscriber buffer both implementations share.

Events are published after their transaction commits. Publishing never waits for a subscriber:
each subscriber has a bounded buffer, and one that falls behind is flagged as `lagged` and
catches up by reading the event table, so a slow dashboard never slows the runner, other
subscribers, or loses events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from backend.schemas import EventType, ExecutionEventResponse, ExecutionStatus

if TYPE_CHECKING:
    from backend.repositories.unit_of_work import UnitOfWork

# Events that change an execution's status: what a dashboard's feed carries.
STATUS_EVENTS = frozenset(
    {
        EventType.EXECUTION_QUEUED,
        EventType.EXECUTION_STARTED,
        EventType.EXECUTION_CANCELLING,
        EventType.INPUT_REQUESTED,
        EventType.INPUT_RECEIVED,
        EventType.EXECUTION_COMPLETED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_CRASHED,
    }
)


@dataclass(frozen=True)
class BusEvent:
    """A committed event as the bus carries it: what subscribers filter on, plus the event
    itself when the bus has it (in memory). A bus that only carries notices (PostgreSQL
    NOTIFY) leaves `event` None, and subscribers read the row from the event table."""

    workspace_id: uuid.UUID
    crew_id: uuid.UUID | None
    execution_id: uuid.UUID
    seq: int
    type: EventType
    status: ExecutionStatus
    force: bool = False
    event: ExecutionEventResponse | None = None

    @classmethod
    def of(
        cls, workspace_id: uuid.UUID, crew_id: uuid.UUID | None, event: ExecutionEventResponse
    ) -> BusEvent:
        return cls(
            workspace_id=workspace_id,
            crew_id=crew_id,
            execution_id=event.execution_id,
            seq=event.seq,
            type=event.type,
            status=event.status,
            force=bool(event.data.get("force")),
            event=event,
        )


class Subscription:
    """One subscriber's bounded buffer of events for one execution, in arrival order.

    A list and one future, not an asyncio.Queue and an Event: the bus offers every event to
    every subscriber of its execution, so this is paid subscribers x events times (a Queue's
    put and get, and an Event's set, wait and clear, were about 8 % of a 1,000-subscriber
    fan-out's CPU)."""

    __slots__ = ("_items", "_waiter", "capacity", "execution_id", "lagged", "relay")

    def __init__(self, execution_id: uuid.UUID, capacity: int) -> None:
        self.execution_id = execution_id
        self.capacity = capacity
        self._items: list[BusEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self.lagged = False
        # While its reader waits with nothing buffered, a Relay may take its events (and
        # deliver them) instead of waking it; the first event it does not take detaches it.
        self.relay: Relay | None = None

    def offer(self, item: BusEvent) -> None:
        relay = self.relay
        if relay is not None:
            if relay.take(self, item):
                return
            self.relay = None
        if len(self._items) < self.capacity:
            self._items.append(item)
        else:
            self.lagged = True  # the subscriber re-reads the table; nothing waits on it
        self.wake()

    def resync_needed(self) -> None:
        """Called by a bus that may have missed events (its connection dropped), or by a relay
        that stopped delivering for this subscriber."""
        self.relay = None
        self.lagged = True
        self.wake()

    def wake(self) -> None:
        """Wakes the reader if it waits (a relay that delivered its last event)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def buffered(self) -> int:
        return len(self._items)

    async def next_batch(self) -> list[BusEvent]:
        """Waits until something arrives (or a resync is requested) and drains the buffer."""
        if not self._items and not self.lagged:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:  # cancelled while waiting
                    self._waiter = None
        items, self._items = self._items, []
        return items

    def take_lag(self) -> bool:
        lagged, self.lagged = self.lagged, False
        return lagged


class Relay(Protocol):
    """Delivers a waiting subscriber's live events for it, so that its reader is not woken for
    each one (the API's direct delivery: one sender per group of identical subscriptions).

    The reader (ExecutionWatch) calls `idle` before it waits with nothing buffered and nothing
    to re-read, `resume` when it wakes, and `leave` when it stops. In between, the subscription
    asks `take` for each event; the first one refused is buffered as usual and wakes the reader,
    which then continues from what `resume` says the relay delivered."""

    def idle(self, subscription: Subscription, last: int) -> None:
        """The reader has delivered everything up to `last` and is about to wait."""
        ...

    def take(self, subscription: Subscription, item: BusEvent) -> bool:
        """True when the relay will deliver `item` for this subscriber (never waits)."""
        ...

    async def resume(self, subscription: Subscription, last: int) -> tuple[int, bool]:
        """Waits until everything taken for this subscriber is out (or given up: the relay then
        flags the subscription as lagged, so the reader re-reads the table); returns the seq
        of the last event the relay delivered for it (or `last`), and whether that event was
        the terminal one (the stream then ends)."""
        ...

    def leave(self, subscription: Subscription) -> None:
        """The reader stops: nothing more is delivered for it."""
        ...


UpdateFilter = Callable[[BusEvent], bool]


class UpdateSubscription:
    """A dashboard's feed of status changes: every change while it keeps up; when it falls
    `capacity` changes behind, only the newest change per execution is kept.

    That bounds memory by the number of executions in flight, and a slow dashboard still ends
    up with every execution's current status. If even that exceeds the capacity, the oldest
    executions are dropped and counted in `dropped`.
    """

    def __init__(self, accepts: UpdateFilter, capacity: int) -> None:
        self.accepts = accepts
        self._capacity = capacity
        self._pending: list[BusEvent] = []
        self.wakeup = asyncio.Event()
        self.dropped = 0
        # Set by a bus that lost its connection: changes after this instant may be missing and
        # are re-read from the event table.
        self.missed_since: datetime | None = None

    def resync_needed(self, since: datetime) -> None:
        if self.missed_since is None or since < self.missed_since:
            self.missed_since = since
        self.wakeup.set()

    def take_missed(self) -> datetime | None:
        since, self.missed_since = self.missed_since, None
        return since

    def offer(self, item: BusEvent) -> None:
        self._pending.append(item)
        if len(self._pending) > self._capacity:
            latest: OrderedDict[uuid.UUID, BusEvent] = OrderedDict()
            for pending in self._pending:
                latest[pending.execution_id] = pending
                latest.move_to_end(pending.execution_id)
            while len(latest) > self._capacity:
                latest.popitem(last=False)
                self.dropped += 1
            self._pending = list(latest.values())
        self.wakeup.set()

    async def next_batch(self) -> list[BusEvent]:
        await self.wakeup.wait()
        self.wakeup.clear()
        items, self._pending = self._pending, []
        return items


class EventBus(Protocol):
    async def stage(self, uow: UnitOfWork, events: list[BusEvent]) -> None:
        """Arranges for `events` (of one execution, in order), written in `uow`'s transaction,
        to reach subscribers once (and only if) that transaction commits. Never waits for a
        subscriber."""
        ...

    def subscribe(self, execution_id: uuid.UUID) -> AbstractAsyncContextManager[Subscription]:
        """Registers a subscriber for one execution until the context exits."""
        ...

    def subscribe_updates(
        self, accepts: UpdateFilter, *, internal: bool = False
    ) -> AbstractAsyncContextManager[UpdateSubscription]:
        """Registers a status-change feed filtered by `accepts` until the context exits."""
        ...

    @property
    def subscriber_count(self) -> int: ...

    async def announce(self, name: str, available: bool) -> None:
        """Tells the processes sharing this bus that runner `name` is alive, and whether it has
        free slots (presence: best effort, repeated every few seconds)."""
        ...

    async def depart(self, name: str) -> None:
        """Tells the processes sharing this bus that runner `name` is leaving (best effort)."""
        ...

    def on_turn(self, callback: Callable[[uuid.UUID], None]) -> None:
        """Registers this process's runner: `callback(execution_id)` when it may claim that
        queued execution now (every one in embedded mode; its turns in scaled mode)."""
        ...

    def peers(self) -> dict[str, bool] | None:
        """The runners heard announcing lately (this one included), each with whether it has
        free slots; None when the bus serves one process only (embedded mode)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
