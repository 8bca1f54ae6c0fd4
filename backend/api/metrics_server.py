"""`crewql worker --metrics-port`: the worker has no HTTP API, so it serves /metrics alone.

The same endpoint and the same scrape rules as the API's (`metrics_route`), on a small uvicorn
server inside the worker's event loop, so the database-wide gauges are read with its own engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from backend.api.metrics_route import metrics_endpoint
from backend.config.settings import Settings
from backend.services.bundle import Services


@asynccontextmanager
async def metrics_server(
    settings: Settings, services: Services, engine: AsyncEngine, port: int
) -> AsyncIterator[uvicorn.Server]:
    app = Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET"])])
    app.state.settings = settings
    app.state.services = services
    app.state.engine = engine
    config = uvicorn.Config(
        app, host=settings.host, port=port, log_config=None, lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    # Bound here, before serving: a taken port fails the worker's start with its own error.
    sock = config.bind_socket()
    sock.listen(config.backlog)  # scrapes from now on wait in the backlog until it serves
    task = asyncio.create_task(server.serve(sockets=[sock]), name="metrics-server")
    logger.info("worker metrics on http://{}:{}/metrics", settings.host, port)
    try:
        yield server
    finally:
        server.should_exit = True
        await task
