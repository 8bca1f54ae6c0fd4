"""Operational endpoints: liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from backend.services.bundle import Services


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving; says nothing about the database on purpose."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and is migrated to the revision this code expects."""
    services: Services = request.app.state.services
    readiness = await services.health.readiness()
    if readiness.database == "unreachable":
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if not readiness.ready:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": readiness.database,
                "revision": readiness.revision,
                "expected": readiness.expected,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "revision": readiness.revision})
