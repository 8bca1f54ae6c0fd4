"""A synchronous SQLite connection for reads of one statement, run on the event-loop thread.

Every aiosqlite call is a hop to its connection's thread and back; a read of one statement
through SQLAlchemy takes several (checkout, execute, fetch, close, the reset on return). A plain
`sqlite3` connection used on the event-loop thread answers the same statement in one call. In WAL
mode a reader does not wait for writers (it reads the last committed snapshot), so such a call
blocks the loop for as long as SQLite needs to run the statement, not for as long as a writer
holds its lock. The rare cases where a reader would wait (WAL recovery after a crash, a
checkpoint resetting the log) answer SQLITE_BUSY at once (`busy_timeout` 0): `Busy` is raised,
and the caller reads through its async connection instead.

The connection runs in autocommit mode, so a statement's snapshot ends with the statement (no
stale reads), and with `query_only`, so it cannot write. One per engine (per pool: disposing an
engine drops it), opened on first use, for files only (a `:memory:` database is private to its
connection).
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine


class Busy(Exception):
    """The statement would have to wait for a lock: run it on the async connection instead."""


class SyncReader:
    def __init__(self, path: str, *, uri: bool) -> None:
        self._path = path
        self._uri = uri
        self._connection: sqlite3.Connection | None = None

    def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        connection = self._connection or self._open()
        try:
            return connection.execute(sql, arguments).fetchall()
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", None) in BUSY_CODES:
                raise Busy() from error
            raise

    def _open(self) -> sqlite3.Connection:
        # check_same_thread=False: created and used on the event-loop thread only, but the
        # finalizer that closes it may run elsewhere.
        connection = sqlite3.connect(
            self._path, timeout=0, isolation_level=None, check_same_thread=False, uri=self._uri
        )
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("PRAGMA query_only=ON")
        self._connection = connection
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_READERS: weakref.WeakKeyDictionary[Any, SyncReader] = weakref.WeakKeyDictionary()


def sync_reader(engine: AsyncEngine) -> SyncReader | None:
    """The engine's synchronous reader, or None when it has none (not SQLite, or in memory)."""
    pool = engine.sync_engine.pool
    reader = _READERS.get(pool)
    if reader is None:
        url = engine.url
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return None
        uri = bool(url.query.get("uri"))
        if uri and "mode=memory" in database:
            return None
        reader = _READERS[pool] = SyncReader(database, uri=uri)
    return reader
