"""Chooses the bus for the deployment mode: in memory for one process, PostgreSQL for many."""

from __future__ import annotations

from backend.config.settings import Settings
from backend.events.bus import EventBus
from backend.events.memory import InMemoryEventBus
from backend.events.postgres import PostgresEventBus


def build_bus(settings: Settings, *, hears_events: bool = True) -> EventBus:
    """`hears_events`: whether this process hears every event or only what a worker acts on
    (see postgres.py)."""
    if settings.mode == "scaled":
        return PostgresEventBus(
            settings.database_url, settings.subscriber_buffer, hears_events=hears_events
        )
    return InMemoryEventBus(settings.subscriber_buffer)
