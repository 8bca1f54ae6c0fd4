"""A throw-away PostgreSQL database for one bench run: created at start, dropped at the end."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


async def _execute(server_url: URL, statement: str, connect_timeout: float) -> None:
    engine = create_async_engine(
        server_url, isolation_level="AUTOCOMMIT", connect_args={"timeout": connect_timeout}
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def unreachable_reason(server_url: str, timeout: float = 3.0) -> str | None:
    """None when the server answers; otherwise one line that says why not."""
    try:
        asyncio.run(asyncio.wait_for(_execute(make_url(server_url), "SELECT 1", timeout), timeout))
    except Exception as exc:  # any failure means: no PostgreSQL for this run
        return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return None


def new_database_url(server_url: str) -> str:
    """The URL of a fresh `crewql_bench_<random>` database on that server (not created yet)."""
    name = f"crewql_bench_{uuid.uuid4().hex[:12]}"
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def create_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    asyncio.run(_execute(make_url(server_url), f'CREATE DATABASE "{name}"', 10.0))


def drop_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    if not name or not name.startswith("crewql_bench_"):
        raise ValueError(f"refusing to drop {name!r}: not a bench database")
    # FORCE (PostgreSQL 13+) ends connections a killed server may have left behind.
    asyncio.run(
        _execute(make_url(server_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 10.0)
    )
