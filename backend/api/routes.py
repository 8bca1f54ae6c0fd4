"""Operational endpoints: liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from loguru import logger
from starlette.requests import Request
from starlette.responses import JSONResponse

from backend.db.migrate import current_revision

# A database that accepts connections but never answers would hold a probe for the driver's own
# connect timeout (a minute on asyncpg); an orchestrator wants "not ready", soon.
READINESS_TIMEOUT_SECONDS = 5.0


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving; says nothing about the database on purpose."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and is migrated to the revision this code expects."""
    state = request.app.state
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            # Reading the revision needs a connection: it is the reachability check too.
            revision = await current_revision(state.engine)
    except Exception as exc:  # readiness reports any failure instead of raising it
        logger.warning("readiness check failed: database unreachable: {!r}", exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if revision != state.head_revision:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "not migrated",
                "revision": revision,
                "expected": state.head_revision,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "revision": revision})
