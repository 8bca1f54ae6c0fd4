"""Test databases: a fresh SQLite file, or a fresh PostgreSQL database per test session.

PostgreSQL is used when `CREWQL_TEST_POSTGRES_URL` points at a server (CI sets it to
postgresql+asyncpg://postgres@127.0.0.1:5432/test); each session creates its own database beside
the one named there and drops it afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from backend.config.settings import Settings, load_settings

POSTGRES_ENV = "CREWQL_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "CREWQL_TEST_REQUIRE_POSTGRES"


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'crewql-test.db'}"


def postgres_server_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _postgres_reachable(url: str) -> str | None:
    try:
        connection = await asyncio.wait_for(asyncpg.connect(_dsn(url)), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


def postgres_unavailable_reason() -> str | None:
    url = postgres_server_url()
    if url is None:
        return f"{POSTGRES_ENV} is not set"
    problem = asyncio.run(_postgres_reachable(url))
    return (
        None if problem is None else f"cannot reach {make_url(url).render_as_string()}: {problem}"
    )


async def create_postgres_database(server_url: str) -> str:
    name = f"crewql_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(_dsn(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    connection = await asyncpg.connect(_dsn(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app. Authentication is off unless a test turns it on
    (`auth_enabled=True`): suites about other things act as the default workspace's admin."""
    overrides.setdefault("auth_enabled", False)
    return load_settings(database_url=database_url, log_to_files=False, **overrides)
