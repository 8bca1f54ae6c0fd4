"""Delivery to this process's subscribers, shared by both buses.

A bus decides how committed events reach this process (a function call in embedded mode, a
PostgreSQL notification in scaled mode); this class hands them to the local subscribers, each
into its own bounded buffer, without ever waiting for one.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from loguru import logger

from backend.events.bus import (
    STATUS_EVENTS,
    BusEvent,
    Subscription,
    UpdateFilter,
    UpdateSubscription,
)


class LocalFanout:
    def __init__(self, buffer_size: int) -> None:
        self._buffer_size = buffer_size
        self._by_execution: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._updates: set[UpdateSubscription] = set()
        self._internal: set[UpdateSubscription] = set()
        self._turn: Callable[[uuid.UUID], None] | None = None

    def on_turn(self, callback: Callable[[uuid.UUID], None]) -> None:
        """`callback(execution_id)`: this process's runner may claim a queued execution now."""
        self._turn = callback

    def take_turn(self, execution_id: uuid.UUID) -> None:
        if self._turn is not None:
            self._turn(execution_id)

    def deliver(self, events: list[BusEvent]) -> None:
        for item in events:
            for subscription in self._by_execution.get(item.execution_id, ()):
                subscription.offer(item)
            if item.type in STATUS_EVENTS:
                for feed in self._updates:
                    try:
                        if feed.accepts(item):
                            feed.offer(item)
                    except Exception:  # a broken filter must not stop delivery to others
                        logger.exception("update subscriber filter failed")

    def resync_all(self, since: datetime) -> None:
        """Everything after `since` may have been missed: every subscriber re-reads the table."""
        for subscriptions in self._by_execution.values():
            for subscription in subscriptions:
                subscription.resync_needed()
        for feed in self._updates:
            feed.resync_needed(since)

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
    async def subscribe_updates(
        self, accepts: UpdateFilter, *, internal: bool = False
    ) -> AsyncIterator[UpdateSubscription]:
        feed = UpdateSubscription(accepts, self._buffer_size * 4)
        self._updates.add(feed)
        if internal:
            self._internal.add(feed)
        try:
            yield feed
        finally:
            self._updates.discard(feed)
            self._internal.discard(feed)

    @property
    def subscriber_count(self) -> int:
        """Clients' subscriptions (the runner's own feed is not counted)."""
        clients = len(self._updates) - len(self._internal)
        return sum(len(s) for s in self._by_execution.values()) + clients
