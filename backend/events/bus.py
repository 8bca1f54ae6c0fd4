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
from typing import Protocol

from backend.schemas import EventType, ExecutionEventResponse

# Events that change an execution's status: what a dashboard's feed carries.
STATUS_EVENTS = frozenset(
    {
        EventType.EXECUTION_QUEUED,
        EventType.EXECUTION_STARTED,
        EventType.EXECUTION_CANCELLING,
        EventType.EXECUTION_COMPLETED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_CRASHED,
    }
)


@dataclass(frozen=True)
class BusEvent:
    """A stored event plus what subscribers filter on."""

    workspace_id: uuid.UUID
    crew_id: uuid.UUID | None
    event: ExecutionEventResponse


class Subscription:
    """One subscriber's bounded buffer of events for one execution, in arrival order."""

    def __init__(self, execution_id: uuid.UUID, capacity: int) -> None:
        self.execution_id = execution_id
        self._queue: asyncio.Queue[BusEvent] = asyncio.Queue(maxsize=capacity)
        self.lagged = False
        self.wakeup = asyncio.Event()

    def offer(self, item: BusEvent) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagged = True  # the subscriber re-reads the table; nothing waits on it
        self.wakeup.set()

    def resync_needed(self) -> None:
        """Called by a bus that may have missed events (its connection dropped)."""
        self.lagged = True
        self.wakeup.set()

    async def next_batch(self) -> list[BusEvent]:
        """Waits until something arrives (or a resync is requested) and drains the buffer."""
        await self.wakeup.wait()
        self.wakeup.clear()
        items: list[BusEvent] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    def take_lag(self) -> bool:
        lagged, self.lagged = self.lagged, False
        return lagged


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

    def offer(self, item: BusEvent) -> None:
        self._pending.append(item)
        if len(self._pending) > self._capacity:
            latest: OrderedDict[uuid.UUID, BusEvent] = OrderedDict()
            for pending in self._pending:
                latest[pending.event.execution_id] = pending
                latest.move_to_end(pending.event.execution_id)
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
    def publish(self, events: list[BusEvent]) -> None:
        """Hands committed events to subscribers; never blocks, never raises for a subscriber."""
        ...

    def subscribe(self, execution_id: uuid.UUID) -> AbstractAsyncContextManager[Subscription]:
        """Registers a subscriber for one execution until the context exits."""
        ...

    def subscribe_updates(
        self, accepts: UpdateFilter
    ) -> AbstractAsyncContextManager[UpdateSubscription]:
        """Registers a status-change feed filtered by `accepts` until the context exits."""
        ...

    @property
    def subscriber_count(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
