"""Chooses the bus for the deployment mode: in memory for one process, PostgreSQL for many."""

from __future__ import annotations

from backend.config.settings import Settings
from backend.events.bus import EventBus
from backend.events.memory import InMemoryEventBus
from backend.events.postgres import PostgresEventBus


def build_bus(settings: Settings, *, progress: bool = True) -> EventBus:
    """`progress`: whether this process hears events that change no status (see postgres.py)."""
    if settings.mode == "scaled":
        return PostgresEventBus(
            settings.database_url, settings.subscriber_buffer, progress=progress
        )
    return InMemoryEventBus(settings.subscriber_buffer)
