"""Real uvicorn servers for tests that need a socket: browsers, websockets, client libraries.

`LiveServer` runs the app in its own thread and event loop; `LoopLiveServer` lets a test reach
that loop; `fresh_live_server` starts one over a new, migrated database of its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import uvicorn

from backend.config.server import transport_options
from backend.config.settings import Settings
from backend.db.migrate import upgrade
from backend.main import create_app
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    make_settings,
    postgres_server_url,
    sqlite_url,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn server in its own thread and event loop (browser and websocket tests)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="on",
            **transport_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


_T = TypeVar("_T")


class LoopLiveServer(LiveServer):
    """A LiveServer whose event loop a test can reach.

    The app's state (the bus, the runner) belongs to the server's loop and thread; `call` runs a
    function there, so a test reads it without racing the code that mutates it.
    """

    loop: asyncio.AbstractEventLoop | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def __enter__(self) -> LoopLiveServer:
        super().__enter__()
        return self

    async def call(self, function: Callable[[], _T], within: float = 5.0) -> _T:
        """`function()` evaluated on the server's loop."""
        assert self.loop is not None, "the server is not running"

        async def run() -> _T:
            return function()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), within)


@asynccontextmanager
async def fresh_live_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> AsyncIterator[LoopLiveServer]:
    """A running server (embedded runner on) over a new database that nothing else uses,
    migrated with Alembic before start-up; the database is dropped afterwards (PostgreSQL)."""
    pg_server: str | None = None
    if backend == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("live-fresh"))
    else:
        pg_server = postgres_server_url()
        assert pg_server is not None
        url = await create_postgres_database(pg_server)
    try:
        await asyncio.to_thread(upgrade, url)
        with LoopLiveServer(make_settings(url, **overrides)) as server:
            yield server
    finally:
        if pg_server is not None:
            await drop_postgres_database(pg_server, url)
