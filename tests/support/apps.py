"""An app with its lifespan running (the embedded runner on), and a GraphQL client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from backend.config.settings import Settings
from backend.main import create_app
from tests.conftest import _clean
from tests.support.graphql import GraphQLClient


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """Rows the test made are deleted afterwards."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t") as http,
            app.router.lifespan_context(app),
        ):
            yield GraphQLClient(http)
    finally:
        await _clean(app)
        await app.state.engine.dispose()
