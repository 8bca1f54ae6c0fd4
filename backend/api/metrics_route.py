"""`GET /metrics`: the process's Prometheus metrics, refreshed with the database-wide gauges.

Who may scrape: anyone while authentication is off (the loopback-only quick start); with it on,
an admin key of any workspace or the dedicated `CREWQL_METRICS_TOKEN` (a scraper should not need
a key that can also create keys). Metrics hold no ids and no workspace data, but queue depth and
traffic are still an operator's business, hence not public.
"""

from __future__ import annotations

import asyncio
import hmac

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from backend.api.graphql.authentication import authenticate
from backend.config.settings import Settings
from backend.core.auth import Unauthenticated, bearer_token
from backend.core.identity import Role
from backend.observability import metrics
from backend.services.bundle import Services

# A scrape must not hang on a database that does not answer: the gauges keep their last value.
DATABASE_READ_TIMEOUT_SECONDS = 2.0


async def refresh_database_gauges(services: Services, engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    checked_out, size = getattr(pool, "checkedout", None), getattr(pool, "size", None)
    if callable(checked_out) and callable(size):
        metrics.record_pool(checked_out(), size())
    try:
        async with asyncio.timeout(DATABASE_READ_TIMEOUT_SECONDS):
            depth, oldest = await services.executions.queue_stats()
    except Exception as exc:  # a scrape reports what it can; /readyz reports the database
        logger.warning("metrics: reading the queue failed: {!r}", exc)
        return
    metrics.record_queue(depth, oldest)


async def may_scrape(request: Request, settings: Settings, services: Services) -> Response | None:
    """None when the caller may read the metrics, else the 401/403 answer."""
    if not settings.auth_enabled:
        return None
    header = request.headers.get("authorization")
    expected = settings.metrics_token
    if expected is not None:
        token = bearer_token(header)
        if token and hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
            return None
    try:
        principal = await authenticate(services, settings, header, "metrics")
    except Unauthenticated as error:
        return JSONResponse(
            {"error": error.message, "code": error.code},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not principal.may(Role.ADMIN):
        return JSONResponse(
            {"error": "Metrics need an admin key or CREWQL_METRICS_TOKEN.", "code": "FORBIDDEN"},
            status_code=403,
        )
    return None


async def metrics_endpoint(request: Request) -> Response:
    state = request.app.state
    refusal = await may_scrape(request, state.settings, state.services)
    if refusal is not None:
        return refusal
    await refresh_database_gauges(state.services, state.engine)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
