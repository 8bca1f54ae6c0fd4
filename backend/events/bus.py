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
    """A dashboard's feed: the latest status change per execution, coalesced when it lags.

    Holding only the newest event per execution bounds memory by the number of executions in
    flight, and a slow dashboard sees every execution's current status, skipping what it was too
    slow to see in between.
    """

    def __init__(self, accepts: UpdateFilter, capacity: int) -> None:
        self.accepts = accepts
        self._capacity = capacity
        self._pending: OrderedDict[uuid.UUID, BusEvent] = OrderedDict()
        self.wakeup = asyncio.Event()
        self.dropped = 0

    def offer(self, item: BusEvent) -> None:
        key = item.event.execution_id
        current = self._pending.get(key)
        if current is not None and current.event.seq >= item.event.seq:
            return
        self._pending[key] = item
        self._pending.move_to_end(key)
        while len(self._pending) > self._capacity:
            self._pending.popitem(last=False)
            self.dropped += 1
        self.wakeup.set()

    async def next_batch(self) -> list[BusEvent]:
        await self.wakeup.wait()
        self.wakeup.clear()
        items = list(self._pending.values())
        self._pending.clear()
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
