"""Concurrent writers wait for each other instead of failing ("database is locked" on SQLite)."""

from __future__ import annotations

import asyncio

from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas import AgentCreate, PageRequest
from backend.services.bundle import Services


async def test_concurrent_creates_all_land(services: Services) -> None:
    async def make(i: int) -> None:
        await services.crews.create_agent(
            DEFAULT_WORKSPACE_ID, AgentCreate(name=f"agent {i}", role="r", goal="g")
        )

    await asyncio.gather(*(make(i) for i in range(40)))
    page = await services.crews.list_agents(DEFAULT_WORKSPACE_ID, PageRequest(first=100))
    assert len(page.items) == 40


async def test_racing_duplicate_names_leave_one_row(services: Services) -> None:
    async def make() -> str:
        try:
            await services.crews.create_agent(
                DEFAULT_WORKSPACE_ID, AgentCreate(name="same", role="r", goal="g")
            )
        except Exception as exc:  # the loser must get a typed conflict, nothing else
            return type(exc).__name__
        return "created"

    outcomes = await asyncio.gather(*(make() for _ in range(8)))
    assert outcomes.count("created") == 1
    assert set(outcomes) == {"created", "Conflict"}
    page = await services.crews.list_agents(DEFAULT_WORKSPACE_ID, PageRequest(first=100))
    assert [a.name for a in page.items] == ["same"]
