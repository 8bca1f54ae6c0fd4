"""Fixtures shared by every test: a migrated database per backend, apps and clients.

Every test that takes `app`, `client` or `services` runs once on SQLite and once on PostgreSQL
(when `CREWQL_TEST_POSTGRES_URL` reaches one). Databases are migrated with Alembic, never
`create_all`, so the migrations are under test too. Rows are deleted after each test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.db.migrate import upgrade_async
from backend.main import create_app
from backend.models import (
    DEFAULT_WORKSPACE_ID,
    Agent,
    ApiKey,
    Crew,
    CrewTask,
    Execution,
    ExecutionEvent,
    ExecutionTask,
    McpServer,
    PersistedDocument,
    Secret,
    Task,
    TaskContext,
    Workspace,
)
from backend.services.bundle import Services
from tests.support.databases import (
    REQUIRE_POSTGRES_ENV,
    create_postgres_database,
    drop_postgres_database,
    make_settings,
    postgres_server_url,
    postgres_unavailable_reason,
    sqlite_url,
)
from tests.support.graphql import GraphQLClient
from tests.support.live_server import LiveServer, LoopLiveServer, fresh_live_server

BACKENDS = ["sqlite", "postgres"]
_postgres_problem: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _postgres_problem
    _postgres_problem = postgres_unavailable_reason()
    if _postgres_problem and os.environ.get(REQUIRE_POSTGRES_ENV):
        raise pytest.UsageError(
            f"{REQUIRE_POSTGRES_ENV} is set but PostgreSQL is unavailable: {_postgres_problem}"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL, its half of the suite is left out, and said so once (below)."""
    if _postgres_problem is None:
        return
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        is_pg = callspec is not None and callspec.params.get("backend") == "postgres"
        (left_out if is_pg or item.get_closest_marker("postgres") else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        config.stash[_skipped_pg_key] = len(left_out)


_skipped_pg_key = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    count = config.stash.get(_skipped_pg_key, 0)
    if count:
        terminalreporter.write_line(
            f"PostgreSQL tests skipped ({count}): {_postgres_problem}; "
            "set CREWQL_TEST_POSTGRES_URL=postgresql+asyncpg://user@host:5432/db to run them.",
            yellow=True,
        )


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated, empty database for the whole session (one per backend)."""
    if backend == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("sqlite"))
        await upgrade_async(url)
        yield url
        return
    server = postgres_server_url()
    assert server is not None
    url = await create_postgres_database(server)
    try:
        await upgrade_async(url)
        yield url
    finally:
        await drop_postgres_database(server, url)


@pytest.fixture
async def empty_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database that exists and was never migrated (one per test, per backend)."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
        return
    server = postgres_server_url()
    assert server is not None
    url = await create_postgres_database(server)
    try:
        yield url
    finally:
        await drop_postgres_database(server, url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    try:
        yield application
    finally:
        await _clean(application)
        await application.state.engine.dispose()


async def _clean(application: Starlette) -> None:
    """Deletes every row the test made (children first), keeping the default workspace."""
    async with application.state.engine.begin() as connection:
        for model in (
            ExecutionEvent,
            ExecutionTask,
            Execution,
            CrewTask,
            TaskContext,
            Crew,
            Task,
            Agent,
            ApiKey,
            PersistedDocument,
            McpServer,
            Secret,
        ):
            await connection.execute(delete(model))
        await connection.execute(delete(Workspace).where(Workspace.id != DEFAULT_WORKSPACE_ID))
        await connection.execute(update(Workspace).values(http_allowlist=[]))


@pytest.fixture
async def running_app(app: Starlette) -> AsyncIterator[Starlette]:
    """The app with its lifespan entered: the embedded runner claims and runs executions."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def services(app: Starlette) -> Services:
    result: Services = app.state.services
    return result


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@asynccontextmanager
async def app_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own over `settings` (another replica of a database, other settings), and
    a client for it; its engine is disposed of afterwards."""
    application = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await application.state.engine.dispose()


# ----------------------------------------------------------------------------- live servers
# The servers themselves are in tests/support/live_server.py.


@pytest.fixture(scope="session")
def live_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded (SQLite) server as `make run` starts it, migrating at start-up."""
    directory: Path = tmp_path_factory.mktemp("live")
    settings = make_settings(sqlite_url(directory))
    with LiveServer(settings) as server:
        yield server.url


@pytest.fixture(scope="module")
def live_server_overrides() -> dict[str, Any]:
    """Settings for `module_live_server`; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture(scope="module")
async def module_live_server(
    backend: str,
    live_server_overrides: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LoopLiveServer]:
    """One `fresh_live_server` per test module and backend.

    Parametrized by the session's `backend`, so its PostgreSQL half is left out like every
    other PostgreSQL test when no server is reachable.
    """
    async with fresh_live_server(backend, tmp_path_factory, **live_server_overrides) as server:
        yield server
