"""Liveness and readiness: what a load balancer or orchestrator is told, on both databases.

/healthz says the process serves; /readyz says the database answers and is at the revision this
code expects, and answers 503 (never an exception, never a hang) when it is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

import backend.services.health_service
from backend.db.migrate import head_revision, upgrade_async
from tests.conftest import app_http
from tests.support.databases import (
    make_settings,
    sqlite_url,
)
from tests.support.live_server import free_port


def http_for(database_url: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """An app on that database, as a replica that does not migrate at start-up would run."""
    return app_http(make_settings(database_url, migrate_on_start=False))


@pytest.fixture
def unreachable_database_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return sqlite_url(tmp_path / "no" / "such" / "directory")
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/crewql"


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_migrated(http: httpx.AsyncClient, database_url: str) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    revision = head_revision(database_url)
    assert revision is not None
    assert response.json() == {"status": "ok", "database": "ok", "revision": revision}


async def test_readyz_on_a_database_never_migrated(empty_database_url: str) -> None:
    async with http_for(empty_database_url) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "database": "not migrated",
            "revision": None,
            "expected": head_revision(empty_database_url),
        }
        assert (await http.get("/healthz")).status_code == 200  # alive, just not ready

        await upgrade_async(empty_database_url)
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text  # checked on every probe, not remembered


async def test_readyz_when_the_database_is_unreachable(unreachable_database_url: str) -> None:
    async with http_for(unreachable_database_url) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}
        assert (await http.get("/healthz")).status_code == 200


@pytest.fixture
async def silent_database_url() -> AsyncIterator[str]:
    """A server that accepts connections and never says a word (a hung or firewalled database)."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/crewql"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_readyz_gives_up_on_a_database_that_never_answers(
    silent_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend.services.health_service, "READINESS_TIMEOUT_SECONDS", 0.2)
    async with http_for(silent_database_url) as http:
        # asyncpg alone would wait a minute; without the probe's own timeout this fails.
        response = await asyncio.wait_for(http.get("/readyz"), timeout=10)
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}
