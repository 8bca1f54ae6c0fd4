from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.db.sqlite_reader import Busy, sync_reader
from backend.models import Agent, Crew, CrewTask, Task, TaskContext
from backend.repositories.base import BaseRepository, escape_like
from backend.schemas.common import PageRequest


class GraphColumns:
    """Every column `graph_rows` can read for each object, in row order."""

    crew = ("id", "name", "description", "process", "created_at", "updated_at")
    task = (
        "id",
        "name",
        "description",
        "expected_output",
        "agent_id",
        "human_input",
        "output_schema",
        "created_at",
        "updated_at",
    )
    agent = (
        "id",
        "name",
        "role",
        "goal",
        "backstory",
        "llm",
        "temperature",
        "max_iterations",
        "created_at",
        "updated_at",
    )
    # Always read, whatever the selection: the ids that tie the rows together.
    keys = {"crew": ("id",), "task": ("id", "agent_id"), "agent": ("id",)}


@dataclass(frozen=True, slots=True)
class GraphLayout:
    """Which columns a `graph_rows` statement reads, and where each sits in its rows.

    row = crew columns, position, task_id, [task columns, context_task_id], [agent columns]
    """

    crew: tuple[str, ...]
    task: tuple[str, ...]
    agent: tuple[str, ...]
    with_tasks: bool
    with_agents: bool
    complete: bool  # every column of every object read (nothing left out)
    crew_end: int
    position: int
    task_id: int
    task_start: int
    task_end: int
    context_task_id: int
    agent_start: int
    agent_end: int

    @classmethod
    def of(
        cls,
        with_tasks: bool,
        with_agents: bool,
        fields: tuple[frozenset[str], frozenset[str], frozenset[str]] | None = None,
    ) -> GraphLayout:
        """The layout for a selection: `fields` are the wanted columns of crews, tasks and
        agents (None: all of them); the key columns are read in any case."""
        key = (with_tasks, with_agents and with_tasks, fields)
        layout = _LAYOUTS.get(key)
        if layout is None:
            layout = _LAYOUTS[key] = cls._build(*key)
        return layout

    @classmethod
    def _build(
        cls,
        with_tasks: bool,
        with_agents: bool,
        fields: tuple[frozenset[str], frozenset[str], frozenset[str]] | None,
    ) -> GraphLayout:
        g = GraphColumns
        chosen: list[tuple[str, ...]] = []
        for kind, every, wanted in zip(
            ("crew", "task", "agent"),
            (g.crew, g.task, g.agent),
            fields or (None, None, None),
            strict=True,
        ):
            keep = set(g.keys[kind]) | (set(every) if wanted is None else set(wanted))
            chosen.append(tuple(name for name in every if name in keep))
        crew, task, agent = chosen
        complete = (crew, task, agent) == (g.crew, g.task, g.agent)
        crew_end = len(crew)
        task_start = crew_end + 2
        task_end = task_start + (len(task) if with_tasks else 0)
        agent_start = task_end + (1 if with_tasks else 0)
        agent_end = agent_start + (len(agent) if with_agents else 0)
        return cls(
            crew=crew,
            task=task,
            agent=agent,
            with_tasks=with_tasks,
            with_agents=with_agents,
            complete=complete,
            crew_end=crew_end,
            position=crew_end,
            task_id=crew_end + 1,
            task_start=task_start,
            task_end=task_end,
            context_task_id=task_end,
            agent_start=agent_start,
            agent_end=agent_end,
        )


_LAYOUTS: dict[Any, GraphLayout] = {}


class CrewRepository(BaseRepository[Crew]):
    model = Crew

    async def task_ids(
        self, workspace_id: uuid.UUID, crew_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each crew's tasks in running order; every asked id gets an entry."""
        found: dict[uuid.UUID, list[uuid.UUID]] = {crew_id: [] for crew_id in crew_ids}
        if not crew_ids:
            return found
        stmt = (
            select(CrewTask.crew_id, CrewTask.task_id)
            .join(Crew, Crew.id == CrewTask.crew_id)
            .where(Crew.workspace_id == workspace_id, CrewTask.crew_id.in_(set(crew_ids)))
            .order_by(CrewTask.crew_id, CrewTask.position)
        )
        for crew_id, task_id in await self.session.execute(stmt):
            found[crew_id].append(task_id)
        return found

    async def set_tasks(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
    ) -> None:
        """Replaces a crew's task list (the task ids were validated by the service)."""
        if await self.get(workspace_id, crew_id) is None:
            raise LookupError(f"crew {crew_id} is not in workspace {workspace_id}")
        await self.session.execute(delete(CrewTask).where(CrewTask.crew_id == crew_id))
        await self.session.execute(
            insert(CrewTask),
            [{"crew_id": crew_id, "position": i, "task_id": tid} for i, tid in enumerate(task_ids)],
        )

    async def graph_rows(
        self,
        workspace_id: uuid.UUID,
        *,
        layout: GraphLayout,
        crew_ids: Sequence[uuid.UUID] | None = None,
        page: PageRequest | None = None,
        name_contains: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[Sequence[Any]]:
        """Rows of the crews asked for (by id, or a page of `first + 1`, newest first) with
        their tasks, each task's context ids and the tasks' agents, in one statement; `layout`
        says which columns (and so which relations) are read and where they sit in a row.

        The read path of `crew`/`crews`: crews ⟕ crew_tasks ⟕ tasks ⟕ task_context ⟕ agents,
        ordered by crew (newest first), task position and context position. One statement is
        one consistent snapshot without BEGIN/COMMIT and one round trip whatever the page size.
        Each shape of statement is built and compiled once; it runs on the driver's connection
        (one call, no SQLAlchemy result machinery), and only the columns it reads are converted,
        with the converters SQLAlchemy itself would use.
        """
        params: dict[str, Any] = {"workspace_id": workspace_id}
        if crew_ids is not None:
            if not crew_ids:
                return []
            ids = list(dict.fromkeys(crew_ids))
            if len(ids) == 1:
                params["crew_id"] = ids[0]
            else:
                params["crew_ids"] = ids
            shape: tuple[Any, ...] = ("one" if len(ids) == 1 else "many",)
        else:
            assert page is not None
            params["limit"] = page.first + 1
            if page.after is not None:
                params["after"] = page.after
            if name_contains:
                params["name_like"] = f"%{escape_like(name_contains)}%"
            if created_after is not None:
                params["created_after"] = created_after
            if created_before is not None:
                params["created_before"] = created_before
            shape = ("page", *sorted(params))
        stmt = _graph_statement((*shape, layout))
        bind = self.session.bind
        if shape[0] != "many" and isinstance(bind, AsyncEngine) and not _observed(bind.sync_engine):
            reader = sync_reader(bind)
            if reader is not None:
                compiled = _compiled(stmt, bind.sync_engine.dialect)
                try:
                    return _converted(
                        reader.fetch(compiled.sql, compiled.arguments(params)), compiled
                    )
                except Busy:
                    pass  # a lock to wait for: not on the event loop (see db/sqlite_reader.py)
        connection = await self.session.connection()
        dialect = connection.dialect
        sync = connection.sync_connection
        if (
            shape[0] == "many"  # an expanding IN: SQLAlchemy renders it per call
            or dialect.name not in _DRIVER_FETCH
            or sync is None
            or _observed(sync)
        ):
            return list((await connection.execute(stmt, params)).all())
        compiled = _compiled(stmt, dialect)
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        arguments = compiled.arguments(params)
        try:
            records = await _DRIVER_FETCH[dialect.name](driver, compiled.sql, arguments)
        except Exception as error:
            lost = isinstance(error, OSError) or getattr(driver, "is_closed", lambda: False)()
            if not lost:
                raise
            # As SQLAlchemy does for a lost connection: drop it, and say so, so that the
            # service's retry checks out another (the pool's idle ping vets the rest).
            await connection.invalidate(error)
            raise DBAPIError(compiled.sql, arguments, error, connection_invalidated=True) from error
        return _converted(records, compiled)


def _observed(connectable: Connection | Engine) -> bool:
    """Statements are being logged (`database_echo`) or watched (cursor event listeners, as the
    statement-count tests use): then SQLAlchemy runs them, so that the watchers see them."""
    dispatch = connectable.dispatch
    return bool(
        connectable._echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute
    )


def _converted(records: list[Any], compiled: _Compiled) -> list[Sequence[Any]]:
    """Driver rows with the columns that need it converted as SQLAlchemy would.

    A joined row repeats its crew's, task's and agent's values (a page of 100 crews: 400 rows,
    about 600 distinct ids among 2,400), so each distinct stored value is converted once and the
    (immutable) result shared."""
    if not compiled.results:
        return records
    memos: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = [
        (index, convert, {}) for index, convert in compiled.results
    ]
    rows: list[Sequence[Any]] = []
    for record in records:
        row = list(record)
        for index, convert, memo in memos:
            stored = row[index]
            value = memo.get(stored, _UNSEEN)
            if value is _UNSEEN:
                value = memo[stored] = convert(stored)
            row[index] = value
        rows.append(row)
    return rows


_UNSEEN = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # (name, value unless given, converter) in placeholder order
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # columns that need converting

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        return [
            value if convert is None else convert(value)
            for value, convert in ((params.get(n, v), c) for n, v, c in self.binds)
        ]


async def _fetch_asyncpg(driver: Any, sql: str, arguments: list[Any]) -> list[Any]:
    return await driver.fetch(sql, *arguments)  # type: ignore[no-any-return]


async def _fetch_aiosqlite(driver: Any, sql: str, arguments: list[Any]) -> list[Any]:
    # One hop to aiosqlite's thread (execute, fetchall and close together) instead of four.
    return list(await driver.execute_fetchall(sql, arguments))


_DRIVER_FETCH = {"postgresql": _fetch_asyncpg, "sqlite": _fetch_aiosqlite}

_GRAPH_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
_COMPILED: dict[tuple[int, str], _Compiled] = {}


def _graph_statement(key: tuple[Any, ...]) -> Select[Any]:
    stmt = _GRAPH_STATEMENTS.get(key)
    if stmt is None:
        stmt = _GRAPH_STATEMENTS[key] = _build_graph_statement(key)
    return stmt


def _compiled(stmt: Select[Any], dialect: Dialect) -> _Compiled:
    """The statement's SQL for this dialect, with SQLAlchemy's own bind and result converters
    (statements live for the process in `_GRAPH_STATEMENTS`, so their ids stay unique)."""
    key = (id(stmt), dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        compiled = stmt.compile(dialect=dialect)
        names = compiled.positiontup or []
        binds = tuple(
            (
                name,
                compiled.binds[name].value,  # what the statement carries (SQLite: OFFSET 0)
                compiled.binds[name].type._cached_bind_processor(dialect),
            )
            for name in names
        )
        results = tuple(
            (index, convert)
            for index, column in enumerate(stmt.selected_columns)
            if (convert := column.type._cached_result_processor(dialect, None)) is not None
        )
        found = _COMPILED[key] = _Compiled(compiled.string, binds, results)
    return found


def _build_graph_statement(key: tuple[Any, ...]) -> Select[Any]:
    mode, *rest = key
    *names, layout = rest
    with_tasks, with_agents = layout.with_tasks, layout.with_agents
    crews = cast(Table, Crew.__table__)
    crew_tasks = cast(Table, CrewTask.__table__)
    tasks = cast(Table, Task.__table__)
    context = cast(Table, TaskContext.__table__)
    agents = cast(Table, Agent.__table__)
    id_type = crews.c.id.type
    columns: list[Any] = [crews.c[name] for name in layout.crew]
    columns += [crew_tasks.c.position, crew_tasks.c.task_id]
    source: Any = crews.outerjoin(crew_tasks, crew_tasks.c.crew_id == crews.c.id)
    order: list[Any] = [crews.c.id.desc(), crew_tasks.c.position]
    if with_tasks:
        columns += [tasks.c[name] for name in layout.task]
        columns.append(context.c.context_task_id)
        source = source.outerjoin(
            tasks,
            and_(tasks.c.id == crew_tasks.c.task_id, tasks.c.workspace_id == crews.c.workspace_id),
        ).outerjoin(context, context.c.task_id == tasks.c.id)
        order.append(context.c.position)
        if with_agents:
            columns += [agents.c[name] for name in layout.agent]
            source = source.outerjoin(
                agents,
                and_(
                    agents.c.id == tasks.c.agent_id, agents.c.workspace_id == crews.c.workspace_id
                ),
            )
    workspace = bindparam("workspace_id", type_=id_type)
    if mode == "one":
        where: Any = and_(
            crews.c.workspace_id == workspace, crews.c.id == bindparam("crew_id", type_=id_type)
        )
    elif mode == "many":
        where = and_(
            crews.c.workspace_id == workspace,
            crews.c.id.in_(bindparam("crew_ids", expanding=True, type_=id_type)),
        )
    else:
        page = select(crews.c.id).where(crews.c.workspace_id == workspace)
        if "after" in names:
            page = page.where(crews.c.id < bindparam("after", type_=id_type))
        if "name_like" in names:
            page = page.where(
                crews.c.name.ilike(bindparam("name_like", type_=String()), escape="\\")
            )
        if "created_after" in names:
            page = page.where(
                crews.c.created_at >= bindparam("created_after", type_=crews.c.created_at.type)
            )
        if "created_before" in names:
            page = page.where(
                crews.c.created_at < bindparam("created_before", type_=crews.c.created_at.type)
            )
        page_ids = (
            page.order_by(crews.c.id.desc()).limit(bindparam("limit", type_=Integer())).subquery()
        )
        where = crews.c.id.in_(select(page_ids.c.id))
    return select(*columns).select_from(source).where(where).order_by(*order)
