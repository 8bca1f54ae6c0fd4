"""The application factory: settings in, a Starlette app out.

Everything the process shares (engine, services, schema) is built here once and torn down by
the lifespan, so tests can build as many independent apps as they like.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from backend.api.dashboard import STATIC_DIR as DASHBOARD_STATIC
from backend.api.dashboard import dashboard_page, root_redirect
from backend.api.graphiql import STATIC_DIR
from backend.api.graphql.schema import build_schema
from backend.api.graphql.view import GraphQLView
from backend.api.instrumentation import Instrumented
from backend.api.metrics_route import metrics_endpoint
from backend.api.routes import healthz, readyz
from backend.api.transport import HeaderLimits, KeepAsgiSend
from backend.config.settings import Settings, get_settings
from backend.container import build_runner, build_services
from backend.db.engine import create_engine
from backend.db.migrate import head_revision, upgrade_async
from backend.observability import tracing
from backend.runner.agent.models import ModelFactory

# Young-generation threshold while serving: a page of 100 crews allocates about 250,000 objects,
# and with the default (700) collections ran over and over during one request.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> tuple[int, int, int]:
    """After start-up: move everything imported and built so far out of the collector's sight
    (`gc.freeze`: full collections no longer walk it) and collect the young generation less often.
    Measured under the bench: (b) on PostgreSQL 13.1 → 18.0 req/s, (a) 160 → 184 (performance.md).
    Returns the previous thresholds, which the lifespan restores on shutdown."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    return previous


async def preflight(settings: Settings) -> None:
    """Checks that need the database before a server or worker starts, so that a refusal is one
    line from `crewql` rather than a failed lifespan's traceback (SecretsKeyRequired)."""
    engine = create_engine(settings)
    try:
        await build_services(engine, settings).secrets.check_key()
    finally:
        await engine.dispose()


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    tracing.configure(settings.tracing, settings.service_name, settings.trace_content)
    engine = create_engine(settings)
    tracing.instrument_engine(engine)
    services = build_services(engine, settings)
    view = GraphQLView(build_schema(settings), settings, services)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.should_migrate_on_start:
            logger.info("migrating the database to the latest revision")
            await upgrade_async(settings.database_url)
        await services.secrets.check_key()
        await services.bus.start()
        models = ModelFactory(settings)
        runner = None
        if settings.runner_enabled:
            runner = build_runner(services, models, settings)
            await runner.start()
        app.state.runner = runner
        if not settings.auth_enabled:
            logger.warning(
                "authentication is OFF: every request acts as admin of the default workspace "
                "(loopback only: {}); set CREWQL_AUTH_ENABLED=true and create keys with "
                "`crewql apikey create` to turn it on",
                settings.host,
            )
        thresholds = tune_gc()
        logger.info(
            "crewql ready: GraphQL at /graphql on {} ({}, runner {})",
            engine.url.render_as_string(hide_password=True),
            "GraphiQL on" if settings.graphiql else "GraphiQL off",
            "on" if runner else "off",
        )
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            await view.revocations.stop()
            await models.aclose()
            await services.bus.stop()
            await engine.dispose()
            gc.unfreeze()
            gc.set_threshold(*thresholds)
            logger.info("crewql stopped")

    app = Starlette(
        routes=[
            Route("/graphql", Instrumented(view)),
            WebSocketRoute("/graphql", Instrumented(view)),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *(
                [Route("/metrics", metrics_endpoint, methods=["GET"])]
                if settings.metrics_enabled
                else []
            ),
            Mount("/graphiql/static", StaticFiles(directory=STATIC_DIR), name="graphiql-static"),
            Route("/dashboard", dashboard_page, methods=["GET"]),
            Mount("/dashboard/static", StaticFiles(directory=DASHBOARD_STATIC), name="dashboard"),
            *([Route("/", root_redirect, methods=["GET"])] if settings.graphiql else []),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(
                HeaderLimits,
                max_headers=settings.max_headers,
                max_header_bytes=settings.max_header_bytes,
            ),
            Middleware(KeepAsgiSend),
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.shared_events = view.shared_events  # what subscribers shared (tests, bench)
    app.state.services = services
    app.state.head_revision = head_revision(settings.database_url)
    return app
