"""The in-memory bus of the embedded mode: one process, so publishing is a function call."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger

from backend.events.bus import (
    STATUS_EVENTS,
    BusEvent,
    Subscription,
    UpdateFilter,
    UpdateSubscription,
)


class InMemoryEventBus:
    def __init__(self, buffer_size: int) -> None:
        self._buffer_size = buffer_size
        self._by_execution: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._updates: set[UpdateSubscription] = set()

    def publish(self, events: list[BusEvent]) -> None:
        for item in events:
            for subscription in self._by_execution.get(item.event.execution_id, ()):
                subscription.offer(item)
            if item.event.type in STATUS_EVENTS:
                for feed in self._updates:
                    try:
                        if feed.accepts(item):
                            feed.offer(item)
                    except Exception:  # a broken filter must not stop delivery to others
                        logger.exception("update subscriber filter failed")

    @asynccontextmanager
    async def subscribe(self, execution_id: uuid.UUID) -> AsyncIterator[Subscription]:
        subscription = Subscription(execution_id, self._buffer_size)
        self._by_execution[execution_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._by_execution.get(execution_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._by_execution[execution_id]

    @asynccontextmanager
    async def subscribe_updates(self, accepts: UpdateFilter) -> AsyncIterator[UpdateSubscription]:
        feed = UpdateSubscription(accepts, self._buffer_size * 4)
        self._updates.add(feed)
        try:
            yield feed
        finally:
            self._updates.discard(feed)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_execution.values()) + len(self._updates)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
