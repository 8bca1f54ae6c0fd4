"""What a workspace's executions used, summed by day, model or crew.

The tasks' rows hold each task's tokens, requests and cost (written by the runner as each model
request ends); this adds them up. A group in which some task's model has no price has no total
cost (null): counting that task as free would understate what the group cost.
"""

from __future__ import annotations

import uuid

from backend.repositories.unit_of_work import UnitOfWorkFactory
from backend.schemas import UsageResponse
from backend.schemas.usage import UsageFilter, UsageGroup, UsageGroupBy


class UsageService:
    def __init__(self, read_uow: UnitOfWorkFactory) -> None:
        self._read_uow = read_uow

    async def usage(
        self, workspace_id: uuid.UUID, flt: UsageFilter, group_by: UsageGroupBy
    ) -> list[UsageGroup]:
        async with self._read_uow() as uow:
            rows = await uow.executions.usage_groups(workspace_id, flt, group_by)
        groups = []
        for row in rows:
            key = row.key
            usage = UsageResponse(
                input_tokens=int(row.input_tokens or 0),
                output_tokens=int(row.output_tokens or 0),
                requests=int(row.requests or 0),
                cost_usd=None if row.unpriced else float(row.cost_usd or 0.0),
            )
            crew_id = key if group_by == UsageGroupBy.CREW else None
            if crew_id is not None and not isinstance(crew_id, uuid.UUID):
                crew_id = uuid.UUID(str(crew_id))
            groups.append(
                UsageGroup(
                    key=str(key) if key is not None else "inline",
                    day=str(key) if group_by == UsageGroupBy.DAY else None,
                    model=str(key) if group_by == UsageGroupBy.MODEL else None,
                    crew_id=crew_id,
                    crew_name=row.crew_name if group_by == UsageGroupBy.CREW else None,
                    executions=int(row.executions),
                    usage=usage,
                )
            )
        return groups
