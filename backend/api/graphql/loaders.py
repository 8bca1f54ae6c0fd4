"""Per-operation DataLoaders: every id asked for during one operation is fetched in one batch.

Each batch is one service call, which opens its own short unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from backend.schemas import AgentResponse, CrewResponse, TaskResponse
from backend.services.container import Services

T = TypeVar("T")


def _loader(
    fetch: Callable[[uuid.UUID, Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, T]]],
    workspace_id: uuid.UUID,
) -> DataLoader[uuid.UUID, T | None]:
    async def load(keys: list[uuid.UUID]) -> list[T | None]:
        found = await fetch(workspace_id, keys)
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, services: Services, workspace_id: uuid.UUID) -> None:
        crews = services.crews
        self.agent: DataLoader[uuid.UUID, AgentResponse | None] = _loader(
            crews.agents_by_ids, workspace_id
        )
        self.task: DataLoader[uuid.UUID, TaskResponse | None] = _loader(
            crews.tasks_by_ids, workspace_id
        )
        self.crew: DataLoader[uuid.UUID, CrewResponse | None] = _loader(
            crews.crews_by_ids, workspace_id
        )
