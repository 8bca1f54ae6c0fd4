"""Running Alembic from the application: `crewql migrate`, `make run` and the tests all come here.

Alembic's API is synchronous and our env.py calls `asyncio.run`, so from async code it runs in a
worker thread with its own event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# Inside the package, so an installed crewql (a wheel, `pip install .`) can migrate too.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def stored_revision(database_url: str) -> str | None:
    """The revision a database is at (None: never migrated), from synchronous code."""
    from backend.config.settings import load_settings
    from backend.db.engine import create_engine

    async def read() -> str | None:
        engine = create_engine(load_settings(database_url=database_url, log_to_files=False))
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def revision_of(connection: Connection) -> str | None:
    """The revision the database behind `connection` is at; None when it was never migrated."""
    return MigrationContext.configure(connection, opts={"as_sql": False}).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(revision_of)
