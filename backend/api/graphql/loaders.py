"""Per-operation DataLoaders: every id asked for during one operation is fetched in one batch.

Each batch is one service call, which opens its own short unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from backend.schemas import (
    AgentResponse,
    CrewResponse,
    ExecutionResponse,
    ExecutionTaskResponse,
    TaskResponse,
)
from backend.services.container import Services

T = TypeVar("T")
D = TypeVar("D")


def _loader(
    fetch: Callable[[uuid.UUID, Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, T]]],
    workspace_id: uuid.UUID,
    missing: Callable[[], D],
) -> DataLoader[uuid.UUID, T | D]:
    async def load(keys: list[uuid.UUID]) -> list[T | D]:
        found = await fetch(workspace_id, keys)
        return [found[key] if key in found else missing() for key in keys]

    return DataLoader(load_fn=load)


def _none() -> None:
    return None


class Loaders:
    def __init__(self, services: Services, workspace_id: uuid.UUID) -> None:
        crews = services.crews
        executions = services.executions
        self.agent: DataLoader[uuid.UUID, AgentResponse | None] = _loader(
            crews.agents_by_ids, workspace_id, _none
        )
        self.task: DataLoader[uuid.UUID, TaskResponse | None] = _loader(
            crews.tasks_by_ids, workspace_id, _none
        )
        self.crew: DataLoader[uuid.UUID, CrewResponse | None] = _loader(
            crews.crews_by_ids, workspace_id, _none
        )
        self.execution: DataLoader[uuid.UUID, ExecutionResponse | None] = _loader(
            executions.executions_by_ids, workspace_id, _none
        )
        self.execution_tasks: DataLoader[uuid.UUID, list[ExecutionTaskResponse]] = _loader(
            executions.tasks_of, workspace_id, list
        )
        self.retries: DataLoader[uuid.UUID, list[ExecutionResponse]] = _loader(
            executions.retries_of, workspace_id, list
        )
