"""One async engine and sessionmaker factory for both dialects.

SQLite gets WAL, foreign keys and a busy timeout on every connection, so that concurrent writers
wait for each other instead of failing with "database is locked"; the driver's own transaction
handling is switched off and we emit BEGIN ourselves, the SQLAlchemy-documented recipe that makes
SAVEPOINTs and predictable locking work with pysqlite on Python 3.11.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
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
    kwargs["pool_pre_ping"] = True
    return create_async_engine(url, **kwargs)


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
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
