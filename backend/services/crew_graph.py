"""The crew read path's result: crews with their tasks and agents, folded from joined rows.

`CrewRepository.graph_rows` reads a page of crews with everything their tasks need in one
statement (one row per crew, task and context entry); `fold_rows` turns those rows into shared
response schemas, each task and agent built once however many crews hold it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from backend.repositories.crew import GraphLayout
from backend.schemas import AgentResponse, CrewResponse, TaskResponse

# The fields of crews, tasks and agents a read needs (see `CrewService.crew_graph`).
GraphFields = tuple[frozenset[str], frozenset[str], frozenset[str]]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _trusted(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """A response schema from stored values that carry every field: `model_construct` without
    its per-field loop (defaults, aliases), about 4 times cheaper; the read path builds one per
    row (600 for a page of 100 crews). Nothing is validated, as with `model_construct`."""
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


@dataclass(slots=True)
class CrewGraph:
    """Crews with everything their tasks need, read in one statement: what a page shows.

    `tasks` and `agents` hold every task and agent of those crews (when asked for), shared
    between crews; a task's context tasks are ids, found in `tasks` when a crew runs them.
    When `complete` is false, only the fields asked for were read (ids always): the objects
    carry those fields only, and are for the operation that asked, not for sharing.
    """

    crews: list[CrewResponse]
    tasks: dict[uuid.UUID, TaskResponse] = field(default_factory=dict)
    agents: dict[uuid.UUID, AgentResponse] = field(default_factory=dict)
    has_next_page: bool = False
    has_previous_page: bool = False
    complete: bool = True


def fold_rows(rows: Sequence[Sequence[Any]], g: GraphLayout) -> CrewGraph:
    """Folds the joined rows (one per crew, task and context entry) into shared objects."""
    crew_names, task_names, agent_names = g.crew, g.task, g.agent
    crew_end, position, task_id_at, context_at = (
        g.crew_end,
        g.position,
        g.task_id,
        g.context_task_id,
    )
    task_start, task_end, agent_start, agent_end = (
        g.task_start,
        g.task_end,
        g.agent_start,
        g.agent_end,
    )
    with_tasks, with_agents = g.with_tasks, g.with_agents
    crews: dict[uuid.UUID, dict[str, Any]] = {}
    tasks: dict[uuid.UUID, dict[str, Any]] = {}
    agents: dict[uuid.UUID, AgentResponse] = {}
    last: tuple[Any, Any] | None = None
    filling: list[uuid.UUID] | None = None  # context list of a task seen for the first time
    for row in rows:
        crew_id = row[0]
        crew = crews.get(crew_id)
        if crew is None:
            crew = crews[crew_id] = dict(zip(crew_names, row[:crew_end], strict=True))
            crew["task_ids"] = []
        task_id = row[task_id_at]
        if task_id is None:
            continue
        slot = (crew_id, row[position])
        if slot != last:  # a new task of this crew (further rows of a slot are its context)
            last = slot
            crew["task_ids"].append(task_id)
            filling = None
            if with_tasks and task_id not in tasks and row[task_start] is not None:
                task = tasks[task_id] = dict(zip(task_names, row[task_start:task_end], strict=True))
                filling = task["context_task_ids"] = []
                if with_agents:
                    agent_id = row[agent_start]
                    if agent_id is not None and agent_id not in agents:
                        agents[agent_id] = _trusted(
                            AgentResponse,
                            dict(zip(agent_names, row[agent_start:agent_end], strict=True)),
                        )
        if filling is not None and row[context_at] is not None:
            filling.append(row[context_at])
    return CrewGraph(
        crews=[_trusted(CrewResponse, values) for values in crews.values()],
        tasks={task_id: _trusted(TaskResponse, values) for task_id, values in tasks.items()},
        agents=agents,
        complete=g.complete,
    )
