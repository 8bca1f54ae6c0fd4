"""CrewService's rules, called as the service (no GraphQL): context cycles, the order a crew runs
its tasks in, deletes of what is in use, names, and the order in which problems are reported."""

from __future__ import annotations

import uuid

import pytest

from backend.core.errors import Conflict, InUse, NotFound, ValidationFailed
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import (
    AgentCreate,
    AgentUpdate,
    CrewCreate,
    CrewUpdate,
    TaskCreate,
    TaskResponse,
    TaskUpdate,
)
from backend.services.bundle import Services
from backend.services.crew_service import CrewService


async def task(
    crews: CrewService, name: str, agent_id: uuid.UUID, context: list[uuid.UUID] | None = None
) -> TaskResponse:
    return await crews.create_task(
        WS,
        TaskCreate(
            name=name,
            description="d",
            expected_output="o",
            agent_id=agent_id,
            context_task_ids=context or [],
        ),
    )


def fields(error: ValidationFailed) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in error.problems]


async def test_context_may_not_close_a_cycle(services: Services) -> None:
    crews = services.crews
    agent = await crews.create_agent(WS, AgentCreate(name="a", role="r", goal="g"))
    first = await task(crews, "first", agent.id)
    second = await task(crews, "second", agent.id, [first.id])
    third = await task(crews, "third", agent.id, [second.id])
    with pytest.raises(ValidationFailed) as refused:
        await crews.update_task(WS, first.id, TaskUpdate(context_task_ids=[third.id]))
    assert fields(refused.value) == [("context_task_ids", "this context would create a cycle")]
    with pytest.raises(ValidationFailed) as itself:
        await crews.update_task(WS, first.id, TaskUpdate(context_task_ids=[first.id]))
    assert ("context_task_ids", "a task cannot be its own context") in fields(itself.value)
    assert (await crews.get_task(WS, first.id)).context_task_ids == []


async def test_context_lists_each_task_once_and_only_existing_ones(services: Services) -> None:
    crews = services.crews
    agent = await crews.create_agent(WS, AgentCreate(name="a", role="r", goal="g"))
    first = await task(crews, "first", agent.id)
    missing = uuid.uuid4()
    with pytest.raises(ValidationFailed) as refused:
        await task(crews, "second", agent.id, [first.id, first.id, missing])
    assert fields(refused.value) == [
        ("context_task_ids", f"task {first.id} is listed more than once"),
        ("context_task_ids", f"no task with id {missing} in this workspace"),
    ]


async def test_a_crew_runs_a_tasks_context_before_it(services: Services) -> None:
    crews = services.crews
    agent = await crews.create_agent(WS, AgentCreate(name="a", role="r", goal="g"))
    first = await task(crews, "first", agent.id)
    second = await task(crews, "second", agent.id, [first.id])
    with pytest.raises(ValidationFailed) as refused:
        await crews.create_crew(WS, CrewCreate(name="c", task_ids=[second.id, first.id]))
    assert fields(refused.value) == [
        (
            "task_ids",
            f"task 'second' reads task {first.id} as context, which must come earlier in the crew",
        )
    ]
    crew = await crews.create_crew(WS, CrewCreate(name="c", task_ids=[first.id, second.id]))
    assert crew.task_ids == [first.id, second.id]
    # Reordering an existing crew follows the same rule; the stored order is unchanged.
    with pytest.raises(ValidationFailed):
        await crews.update_crew(WS, crew.id, CrewUpdate(task_ids=[second.id, first.id]))
    assert (await crews.get_crew(WS, crew.id)).task_ids == [first.id, second.id]


async def test_new_context_must_run_earlier_in_every_crew_holding_the_task(
    services: Services,
) -> None:
    crews = services.crews
    agent = await crews.create_agent(WS, AgentCreate(name="a", role="r", goal="g"))
    first = await task(crews, "first", agent.id)
    second = await task(crews, "second", agent.id)
    await crews.create_crew(WS, CrewCreate(name="late", task_ids=[first.id, second.id]))
    with pytest.raises(ValidationFailed) as refused:
        await crews.update_task(WS, first.id, TaskUpdate(context_task_ids=[second.id]))
    ((field, message),) = fields(refused.value)
    assert field == "context_task_ids"
    assert message.startswith("in crew 'late', context task(s)")
    # Where it does run earlier, the same context is accepted.
    updated = await crews.update_task(WS, second.id, TaskUpdate(context_task_ids=[first.id]))
    assert updated.context_task_ids == [first.id]


async def test_nothing_in_use_is_deleted(services: Services) -> None:
    crews = services.crews
    agent = await crews.create_agent(WS, AgentCreate(name="a", role="r", goal="g"))
    first = await task(crews, "first", agent.id)
    second = await task(crews, "second", agent.id, [first.id])
    crew = await crews.create_crew(WS, CrewCreate(name="c", task_ids=[first.id, second.id]))
    with pytest.raises(InUse) as agent_used:
        await crews.delete_agent(WS, agent.id)
    assert agent_used.value.used_by == ["task 'first'", "task 'second'"]
    with pytest.raises(InUse) as task_used:
        await crews.delete_task(WS, first.id)
    assert task_used.value.used_by == ["crew 'c'", "task 'second' (as context)"]
    # Take it apart from the top: each delete frees what the next one needs.
    assert await crews.delete_crew(WS, crew.id) == crew.id
    assert await crews.delete_task(WS, second.id) == second.id
    assert await crews.delete_task(WS, first.id) == first.id
    assert await crews.delete_agent(WS, agent.id) == agent.id
    with pytest.raises(NotFound):
        await crews.delete_agent(WS, agent.id)


async def test_not_found_comes_before_name_conflicts_and_those_before_rules(
    services: Services,
) -> None:
    crews = services.crews
    agent = await crews.create_agent(WS, AgentCreate(name="a", role="r", goal="g"))
    other = await crews.create_agent(WS, AgentCreate(name="b", role="r", goal="g"))
    with pytest.raises(NotFound):
        await crews.update_agent(WS, uuid.uuid4(), AgentUpdate(name="b"))
    with pytest.raises(Conflict, match="An agent named 'b' already exists"):
        await crews.update_agent(WS, agent.id, AgentUpdate(name="b"))
    first = await task(crews, "first", other.id)
    with pytest.raises(Conflict, match="A task named 'first'"):
        await task(crews, "first", uuid.uuid4())  # the name is checked before the agent
    with pytest.raises(ValidationFailed) as nulls:
        await crews.update_task(WS, first.id, TaskUpdate(name=None, agent_id=None))
    assert {field for field, _ in fields(nulls.value)} == {"name", "agent_id"}
