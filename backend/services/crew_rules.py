"""The rules that tie agents, tasks and crews together, checked inside a write's unit of work.

A task's agent must exist; its context tasks exist, are listed once and never lead back to it;
a crew lists its tasks once and runs each task's context before it; names are unique per kind in
a workspace. Each check returns the problems it found (the service reports them all at once as
`ValidationFailed`), except the name check, which is a `Conflict` of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from backend.core.errors import Conflict, FieldProblem, ValidationFailed
from backend.repositories.base import BaseRepository
from backend.repositories.unit_of_work import UnitOfWork


def duplicates(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    seen: set[uuid.UUID] = set()
    return [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]


def refuse_null(changes: dict[str, Any], required: Iterable[str]) -> None:
    problems = [
        FieldProblem(name, "cannot be null; omit the field to leave it unchanged")
        for name in required
        if name in changes and changes[name] is None
    ]
    if problems:
        raise ValidationFailed(problems)


async def require_unique_name(
    repository: BaseRepository[Any],
    kind: str,
    workspace_id: uuid.UUID,
    name: str,
    *,
    exclude: uuid.UUID | None = None,
) -> None:
    """`kind`: what the message calls the object ("agent", "task", "crew")."""
    if await repository.name_taken(workspace_id, name, exclude_id=exclude):
        article = "An" if kind[0] in "aeiou" else "A"
        raise Conflict(f"{article} {kind} named {name!r} already exists in this workspace.", "name")


async def check_agent(
    uow: UnitOfWork, workspace_id: uuid.UUID, agent_id: uuid.UUID
) -> list[FieldProblem]:
    if await uow.agents.get(workspace_id, agent_id) is None:
        return [FieldProblem("agent_id", f"no agent with id {agent_id} in this workspace")]
    return []


async def check_context(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID | None,
    context_ids: Sequence[uuid.UUID],
) -> list[FieldProblem]:
    """Context tasks exist here, are listed once, and following them never leads back."""
    problems = [
        FieldProblem("context_task_ids", f"task {dup} is listed more than once")
        for dup in duplicates(context_ids)
    ]
    if task_id is not None and task_id in context_ids:
        problems.append(FieldProblem("context_task_ids", "a task cannot be its own context"))
    found = await uow.tasks.get_many(workspace_id, context_ids)
    problems += [
        FieldProblem("context_task_ids", f"no task with id {cid} in this workspace")
        for cid in context_ids
        if cid not in found
    ]
    if problems or task_id is None:
        return problems
    # Walk the context graph from the new context; reaching task_id would close a cycle.
    seen: set[uuid.UUID] = set()
    frontier = set(context_ids)
    while frontier:
        seen |= frontier
        edges = await uow.tasks.context_ids(workspace_id, list(frontier))
        nxt = {cid for ids in edges.values() for cid in ids}
        if task_id in nxt:
            return [FieldProblem("context_task_ids", "this context would create a cycle")]
        frontier = nxt - seen
    return []


async def check_crews_accept_context(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID,
    context_ids: Sequence[uuid.UUID],
) -> list[FieldProblem]:
    """A crew runs tasks in order, so a task may only read tasks that run before it there."""
    crews = await uow.tasks.crews_containing(workspace_id, task_id)
    if not crews:
        return []
    orders = await uow.crews.task_ids(workspace_id, [crew_id for crew_id, _ in crews])
    problems = []
    for crew_id, crew_name in crews:
        order = orders[crew_id]
        earlier = set(order[: order.index(task_id)])
        late = [cid for cid in context_ids if cid not in earlier]
        if late:
            problems.append(
                FieldProblem(
                    "context_task_ids",
                    f"in crew {crew_name!r}, context task(s) {', '.join(map(str, late))} "
                    "do not run before this task",
                )
            )
    return problems


async def check_crew_tasks(
    uow: UnitOfWork, workspace_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
) -> list[FieldProblem]:
    problems = [
        FieldProblem("task_ids", f"task {dup} is listed more than once")
        for dup in duplicates(task_ids)
    ]
    found = await uow.tasks.get_many(workspace_id, task_ids)
    problems += [
        FieldProblem("task_ids", f"no task with id {tid} in this workspace")
        for tid in task_ids
        if tid not in found
    ]
    if problems:
        return problems
    context = await uow.tasks.context_ids(workspace_id, list(task_ids))
    for position, tid in enumerate(task_ids):
        earlier = set(task_ids[:position])
        for cid in context[tid]:
            if cid not in earlier:
                problems.append(
                    FieldProblem(
                        "task_ids",
                        f"task {found[tid].name!r} reads task {cid} as context, "
                        "which must come earlier in the crew",
                    )
                )
    return problems
