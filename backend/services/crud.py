"""One read/create/update/delete path for the named objects of a workspace (agents, tasks, crews).

What differs between the three is data, gathered in a `Kind`: the repository, how a row becomes a
response schema, which fields an update may not null, the ordered id list kept beside the row (a
task's context, a crew's tasks), the rules a write must pass, and what blocks a delete. The order
of the steps, which is what the API promises (NotFound, then a name Conflict, then every
ValidationFailed problem at once; InUse before a delete), is written once, here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Row

from backend.core.errors import FieldProblem, InUse, NotFound, ValidationFailed
from backend.repositories.base import BaseRepository
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import EVERYTHING, ListFilter, Page, PageRequest
from backend.services.crew_rules import refuse_null, require_unique_name
from backend.utils.time import utcnow

ResponseT = TypeVar("ResponseT", bound=BaseModel)
Ids = list[uuid.UUID]
# (uow, workspace, the object's id or None on create, the changed fields, its new id list or None)
Check = Callable[
    [UnitOfWork, uuid.UUID, uuid.UUID | None, dict[str, Any], Sequence[uuid.UUID] | None],
    Awaitable[list[FieldProblem]],
]
# A check that needs no transaction (it may call other servers: an MCP server's tool list), run
# before the unit of work opens; its problems join the ones `Kind.check` finds.
OutsideCheck = Callable[[uuid.UUID, dict[str, Any]], Awaitable[list[FieldProblem]]]


async def _no_problems(*_: Any) -> list[FieldProblem]:
    return []


@dataclass(frozen=True)
class Children:
    """The ordered id list stored beside each row (in its own table) and named `field`."""

    field: str
    read: Callable[[UnitOfWork, uuid.UUID, Ids], Awaitable[dict[uuid.UUID, Ids]]]
    write: Callable[[UnitOfWork, uuid.UUID, uuid.UUID, Sequence[uuid.UUID]], Awaitable[None]]


@dataclass(frozen=True)
class Kind(Generic[ResponseT]):
    entity: str  # "Agent": what NotFound and InUse name
    repository: Callable[[UnitOfWork], BaseRepository[Any]]
    response: Callable[[Row[Any], Ids], ResponseT]
    required: tuple[str, ...]  # fields an update may leave out but not set to null
    check: Check = _no_problems
    # What uses an object (and so blocks its delete), as phrases like "task 'x'".
    users: Callable[[UnitOfWork, uuid.UUID, uuid.UUID], Awaitable[list[str]]] | None = None
    children: Children | None = None


class Records(Generic[ResponseT]):
    def __init__(
        self,
        kind: Kind[ResponseT],
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory,
        outside_check: OutsideCheck | None = None,
    ) -> None:
        self.kind = kind
        self._uow = uow
        self._read_uow = read_uow
        self._outside_check = outside_check or _no_problems

    async def _children(self, uow: UnitOfWork, workspace_id: uuid.UUID, ids: Ids) -> dict[Any, Ids]:
        children = self.kind.children
        if children is None:
            return {i: [] for i in ids}
        return await children.read(uow, workspace_id, ids)

    async def get(self, workspace_id: uuid.UUID, id_: uuid.UUID) -> ResponseT:
        found = await self.by_ids(workspace_id, [id_])
        if id_ not in found:
            raise NotFound(self.kind.entity, id_)
        return found[id_]

    async def by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, ResponseT]:
        async with self._read_uow() as uow:
            rows = await self.kind.repository(uow).get_many(workspace_id, ids)
            children = await self._children(uow, workspace_id, list(rows))
        return {i: self.kind.response(row, children[i]) for i, row in rows.items()}

    async def list(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        where: ListFilter = EVERYTHING,
        **filters: Any,
    ) -> Page[ResponseT]:
        """`filters`: the repository's own typed filters (a task's `agent_id`)."""
        async with self._read_uow() as uow:
            rows = await self.kind.repository(uow).list(workspace_id, page, where, **filters)
            children = await self._children(uow, workspace_id, [r.id for r in rows.items])
        items = [self.kind.response(r, children[r.id]) for r in rows.items]
        return Page(items, rows.has_next_page, rows.has_previous_page)

    async def create(self, workspace_id: uuid.UUID, data: BaseModel) -> ResponseT:
        kind, field = self.kind, self.kind.children and self.kind.children.field
        values = data.model_dump()
        ids: list[uuid.UUID] | None = values.pop(field) if field else None
        outside = await self._outside_check(workspace_id, values)
        async with self._uow() as uow:
            repository = kind.repository(uow)
            await require_unique_name(repository, kind.entity.lower(), workspace_id, values["name"])
            problems = outside + await kind.check(uow, workspace_id, None, values, ids)
            if problems:
                raise ValidationFailed(problems)
            row = await repository.add(workspace_id, values)
            if kind.children is not None and ids is not None:
                await kind.children.write(uow, workspace_id, row.id, ids)
        return kind.response(row, list(ids or ()))

    async def update(self, workspace_id: uuid.UUID, id_: uuid.UUID, data: BaseModel) -> ResponseT:
        """Only the fields sent change; a field sent as null is refused when it is required."""
        kind, field = self.kind, self.kind.children and self.kind.children.field
        changes = data.model_dump(exclude_unset=True)
        refuse_null(changes, kind.required)
        ids: list[uuid.UUID] | None = changes.pop(field, None) if field else None
        outside = await self._outside_check(workspace_id, changes)
        async with self._uow() as uow:
            repository = kind.repository(uow)
            if await repository.get(workspace_id, id_) is None:
                raise NotFound(kind.entity, id_)
            if "name" in changes:
                await require_unique_name(
                    repository, kind.entity.lower(), workspace_id, changes["name"], exclude=id_
                )
            problems = outside + await kind.check(uow, workspace_id, id_, changes, ids)
            if problems:
                raise ValidationFailed(problems)
            row = await repository.update(workspace_id, id_, {**changes, "updated_at": utcnow()})
            assert row is not None
            stored: Ids = []
            if kind.children is not None:
                if ids is not None:
                    await kind.children.write(uow, workspace_id, id_, ids)
                stored = (await kind.children.read(uow, workspace_id, [id_]))[id_]
        return kind.response(row, stored)

    async def delete(self, workspace_id: uuid.UUID, id_: uuid.UUID) -> uuid.UUID:
        """Refused with InUse while anything uses the object (nothing uses a missing one)."""
        async with self._uow() as uow:
            if self.kind.users is not None:
                users = await self.kind.users(uow, workspace_id, id_)
                if users:
                    raise InUse(self.kind.entity, id_, users)
            if not await self.kind.repository(uow).delete(workspace_id, id_):
                raise NotFound(self.kind.entity, id_)
        return id_
