"""The per-key cap on running executions: the claim query leaves a capped key's further
executions QUEUED and still claims everybody else's (no starvation), on both databases."""

from __future__ import annotations

import uuid

import pytest

from backend.config.settings import Settings
from backend.core.identity import Role
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import CrewConfig, ExecutionCreate, ExecutionStatus
from backend.services.bundle import Services
from tests.support.auth import make_key
from tests.support.databases import make_settings

CONFIG = CrewConfig.model_validate(
    {
        "name": "c",
        "agents": [{"name": "a", "role": "r", "goal": "g"}],
        "tasks": [{"name": "t", "description": "d", "expected_output": "e", "agent": "a"}],
    }
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, max_running_executions_per_key=2)


async def key_id(services: Services, name: str) -> uuid.UUID:
    await make_key(services, WS, Role.EDITOR, name)
    keys = await services.auth.list_keys(WS)
    return next(k.id for k in keys if k.name == name)


async def launch(services: Services, api_key_id: uuid.UUID | None) -> uuid.UUID:
    created = await services.executions.create_execution(
        WS, ExecutionCreate(crew=CONFIG), api_key_id=api_key_id
    )
    return created.id


async def test_a_key_runs_at_most_its_cap_and_others_are_not_starved(
    services: Services,
) -> None:
    busy = await key_id(services, "busy")
    quiet = await key_id(services, "quiet")
    busy_runs = [await launch(services, busy) for _ in range(5)]
    quiet_run = await launch(services, quiet)
    local_run = await launch(services, None)  # authentication off: no cap

    claimed = {run.id for run in await services.lifecycle.claim("w1", 10)}
    assert claimed == {*busy_runs[:2], quiet_run, local_run}
    # Another worker, later: the busy key is at its cap, its others stay QUEUED.
    assert await services.lifecycle.claim("w2", 10) == []
    for execution_id in busy_runs[2:]:
        found = await services.executions.get_execution(WS, execution_id)
        assert found.status == ExecutionStatus.QUEUED
    running = await services.executions.get_execution(WS, busy_runs[0])
    assert running.status == ExecutionStatus.RUNNING


async def test_finishing_frees_a_slot(services: Services) -> None:
    busy = await key_id(services, "busy")
    runs = [await launch(services, busy) for _ in range(3)]
    first = await services.lifecycle.claim("w1", 10)
    assert {h.id for h in first} == set(runs[:2])
    await services.lifecycle.fail(first[0], "stopped by the test")
    second = await services.lifecycle.claim("w2", 10)
    assert [h.id for h in second] == [runs[2]]
