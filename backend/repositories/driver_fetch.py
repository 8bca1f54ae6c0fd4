"""Running one read statement on the driver itself, with SQLAlchemy's own converters.

The crew read path (`CrewRepository.graph_rows`) runs one statement per request. Through
SQLAlchemy's result machinery that statement costs more than the query itself on a page of 100
crews, so, when nothing watches statements, it runs on the driver's connection of the unit of
work's pooled connection (asyncpg `fetch`, aiosqlite `execute_fetchall`: one call) or, on a
SQLite file, on a plain `sqlite3` connection on the event-loop thread (db/sqlite_reader.py).
Only the columns that need it are converted, with the processors SQLAlchemy itself would apply,
obtained through public API (`TypeEngine.dialect_impl(dialect).bind_processor(dialect)` and
`.result_processor(dialect, coltype)`). No driver-level library does this (SQLAlchemy's own
result path is what is being skipped), hence this module; tests/integration/
test_crew_read_path.py checks that it reads what a plain ORM read does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from backend.db.sqlite_reader import Busy, sync_reader

Convert = Callable[[Any], Any]


async def fetch_rows(
    session: AsyncSession, stmt: Select[Any], params: dict[str, Any], *, fast: bool = True
) -> list[Sequence[Any]]:
    """The statement's rows as sequences of converted values; `fast=False` (or statements
    being watched) runs it through SQLAlchemy instead. `stmt` must live for the process (its
    compiled form is cached by its id)."""
    bind = session.bind
    if fast and isinstance(bind, AsyncEngine) and not _observed(bind.sync_engine):
        reader = sync_reader(bind)
        if reader is not None:
            compiled = _compiled(stmt, bind.sync_engine.dialect)
            try:
                # sqlite3 reports no column types: SQLAlchemy converts with coltype None too.
                return compiled.converted(
                    reader.fetch(compiled.sql, compiled.arguments(params)), None
                )
            except Busy:
                pass  # a lock to wait for: not on the event loop (see db/sqlite_reader.py)
    connection = await session.connection()
    dialect = connection.dialect
    sync = connection.sync_connection
    if not fast or dialect.name not in _DRIVER_FETCH or sync is None or _observed(sync):
        return list((await connection.execute(stmt, params)).all())
    compiled = _compiled(stmt, dialect)
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    arguments = compiled.arguments(params)
    try:
        records, coltypes = await _DRIVER_FETCH[dialect.name](driver, compiled, arguments)
    except Exception as error:
        lost = isinstance(error, OSError) or getattr(driver, "is_closed", lambda: False)()
        if not lost:
            raise
        # As SQLAlchemy does for a lost connection: drop it, and say so, so that the
        # service's retry checks out another (the pool's idle ping vets the rest).
        await connection.invalidate(error)
        raise DBAPIError(compiled.sql, arguments, error, connection_invalidated=True) from error
    return compiled.converted(records, coltypes)


def _observed(connectable: Connection | Engine) -> bool:
    """Statements are being logged (`database_echo`) or watched (cursor event listeners, as the
    statement-count tests use): then SQLAlchemy runs them, so that the watchers see them."""
    engine = connectable.engine
    dispatch = engine.dispatch
    return bool(engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute)


_UNSEEN = object()


class _Compiled:
    """A statement's SQL for one dialect, its bind converters, and its result converters for
    the column types the driver reports (DBAPI type codes are constants, so few sets exist)."""

    __slots__ = ("binds", "dialect", "results", "sql", "types")

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.dialect = dialect
        # (name, value unless given, converter) in placeholder order
        self.binds = tuple(
            (
                name,
                compiled.binds[name].value,  # what the statement carries (SQLite: OFFSET 0)
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in compiled.positiontup or []
        )
        self.types = [column.type.dialect_impl(dialect) for column in stmt.selected_columns]
        self.results: dict[Any, tuple[tuple[int, Convert], ...]] = {}

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        return [
            value if convert is None else convert(value)
            for value, convert in ((params.get(n, v), c) for n, v, c in self.binds)
        ]

    def converters(self, coltypes: Sequence[Any] | None) -> tuple[tuple[int, Convert], ...]:
        key = None if coltypes is None else tuple(coltypes)
        found = self.results.get(key)
        if found is None:
            codes = coltypes or [None] * len(self.types)
            found = self.results[key] = tuple(
                (index, convert)
                for index, (impl, code) in enumerate(zip(self.types, codes, strict=True))
                if (convert := impl.result_processor(self.dialect, code)) is not None
            )
        return found

    def converted(self, records: list[Any], coltypes: Sequence[Any] | None) -> list[Sequence[Any]]:
        """Driver rows with the columns that need it converted as SQLAlchemy would.

        A joined row repeats its crew's, task's and agent's values (a page of 100 crews: 400
        rows, about 600 distinct ids among 2,400), so each distinct stored value is converted
        once and the (immutable) result shared."""
        converters = self.converters(coltypes)
        if not converters:
            return records
        memos: list[tuple[int, Convert, dict[Any, Any]]] = [
            (index, convert, {}) for index, convert in converters
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


_COMPILED: dict[tuple[int, str], _Compiled] = {}
# asyncpg: the type OIDs of a statement's columns, learnt once from a prepared statement.
_OIDS: dict[str, tuple[int, ...]] = {}


def _compiled(stmt: Select[Any], dialect: Dialect) -> _Compiled:
    key = (id(stmt), dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = _Compiled(stmt, dialect)
    return found


async def _fetch_asyncpg(
    driver: Any, compiled: _Compiled, arguments: list[Any]
) -> tuple[list[Any], Sequence[Any] | None]:
    """SQLAlchemy chooses some converters by the type OID the driver reports (asyncpg's float
    and numeric ones refuse to choose without it), so the OIDs are learnt once per statement."""
    oids = _OIDS.get(compiled.sql)
    if oids is None:
        prepared = await driver.prepare(compiled.sql)
        oids = _OIDS[compiled.sql] = tuple(a.type.oid for a in prepared.get_attributes())
        return await prepared.fetch(*arguments), oids
    return await driver.fetch(compiled.sql, *arguments), oids


async def _fetch_aiosqlite(
    driver: Any, compiled: _Compiled, arguments: list[Any]
) -> tuple[list[Any], Sequence[Any] | None]:
    # One hop to aiosqlite's thread (execute, fetchall and close together) instead of four.
    return list(await driver.execute_fetchall(compiled.sql, arguments)), None


_DRIVER_FETCH = {"postgresql": _fetch_asyncpg, "sqlite": _fetch_aiosqlite}
