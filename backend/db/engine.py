"""One async engine and sessionmaker factory for both dialects.

SQLite gets WAL, foreign keys and a busy timeout on every connection, so that concurrent writers
wait for each other instead of failing with "database is locked"; the driver's own transaction
handling is switched off and we emit BEGIN ourselves, the SQLAlchemy-documented recipe that makes
SAVEPOINTs and predictable locking work with pysqlite on Python 3.11.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.config.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    # Statements are logged through the `sqlalchemy.engine` logger (routed into loguru), not
    # SQLAlchemy's own stdout handler: see config/logging.py.
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        kwargs["pool_size"] = settings.database_pool_size
        kwargs["max_overflow"] = 0
        engine = create_async_engine(url, **kwargs)
        _install_sqlite_hooks(engine, settings.sqlite_busy_timeout_ms)
        return engine
    kwargs["pool_size"] = settings.database_pool_size
    kwargs["max_overflow"] = settings.database_pool_size
    kwargs["pool_recycle"] = POOL_RECYCLE_SECONDS
    # Last in, first out: below the pool's size the same few connections serve every checkout, so
    # they stay warm (each keeps its own prepared statements) and the rest sit idle, instead of
    # every pooled connection in turn going idle long enough to need the ping below.
    kwargs["pool_use_lifo"] = True
    engine = create_async_engine(url, **kwargs)
    _install_idle_ping(engine)
    return engine


# A pooled connection is pinged before use only when it sat idle this long. `pool_pre_ping` pings
# on every checkout: a round trip, a fifth of the CPU of a small query (docs/performance.md).
# What pre-ping guards against (a server restart, a proxy or firewall dropping idle connections)
# happens to connections that sat in the pool; one reused milliseconds ago is alive. A connection
# that breaks while busy invalidates the whole pool (SQLAlchemy's disconnect handling), and the
# read path retries once (`UnitOfWork` callers in services/crew_service.py).
IDLE_PING_SECONDS = 5.0
POOL_RECYCLE_SECONDS = 1800


def _install_idle_ping(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("checked_in")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return  # new (just connected) or in use moments ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's own error for a dead connection
            raise exc.DisconnectionError() from error
        if not alive:
            raise exc.DisconnectionError()


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue on busy_timeout instead of
        # one failing with SQLITE_BUSY when it upgrades a read lock mid-transaction.
        # `sqlite_begin=None` is for reads of one statement: SQLite runs it in its own implicit
        # transaction (one consistent snapshot), so BEGIN and COMMIT would be two extra driver
        # calls, each a hop to aiosqlite's thread, for nothing.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode is not None:
            connection.exec_driver_sql(f"BEGIN {mode}")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
