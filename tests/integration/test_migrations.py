"""Migrations on both databases: upgrade, downgrade, upgrade again; models and migrations agree."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Column, inspect, text
from sqlalchemy.engine import Connection

from backend.db.base import Base
from backend.db.engine import create_engine
from backend.db.migrate import downgrade, head_revision, upgrade
from backend.models import DEFAULT_WORKSPACE_ID
from tests.support.databases import make_settings

TABLES = {"workspaces", "agents", "tasks", "task_context", "crews", "crew_tasks"}


async def tables_and_revision(url: str) -> tuple[set[str], str | None]:
    engine = create_engine(make_settings(url))
    try:
        async with engine.connect() as connection:

            def read(sync: Connection) -> tuple[set[str], str | None]:
                names = set(inspect(sync).get_table_names()) - {"alembic_version"}
                return names, MigrationContext.configure(sync).get_current_revision()

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    await asyncio.to_thread(upgrade, url)
    tables, revision = await tables_and_revision(url)
    assert tables >= TABLES
    assert revision == head_revision(url)
    await asyncio.to_thread(downgrade, url, "base")
    tables, revision = await tables_and_revision(url)
    assert tables == set()
    assert revision is None
    await asyncio.to_thread(upgrade, url)
    tables, revision = await tables_and_revision(url)
    assert tables >= TABLES
    engine = create_engine(make_settings(url))
    try:
        async with engine.connect() as connection:
            name = await connection.scalar(
                text("SELECT name FROM workspaces WHERE id = :id"),
                {"id": DEFAULT_WORKSPACE_ID.hex if "sqlite" in url else DEFAULT_WORKSPACE_ID},
            )
        assert name == "default"
    finally:
        await engine.dispose()


def same_default(
    context: object,
    inspected: object,
    metadata: Column[Any],
    inspected_default: str | None,
    metadata_default: object,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic's own comparison, except for JSON columns with a default: it compares defaults
    with `=` in SQL, and PostgreSQL's json has no equality operator. Those compare as text."""
    if isinstance(metadata.type, JSON) and rendered_metadata_default and inspected_default:
        normal = [
            d.split("::")[0].strip("'\"") for d in (inspected_default, rendered_metadata_default)
        ]
        return normal[0] != normal[1]
    return None


async def test_models_and_migrations_agree(database_url: str) -> None:
    """Autogenerate against the migrated database finds nothing to add, drop or alter."""
    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as connection:

            def diff(sync: Connection) -> list[object]:
                context = MigrationContext.configure(
                    sync, opts={"compare_type": True, "compare_server_default": same_default}
                )
                return list(compare_metadata(context, Base.metadata))

            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []
