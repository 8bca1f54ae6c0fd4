"""`crewql worker`: a runner without HTTP, for the scaled mode.

It claims queued executions from PostgreSQL (SKIP LOCKED: no execution runs twice), renews a
lease on those it runs, and reports through ExecutionLifecycle; API replicas and other workers
see its events through the PostgreSQL bus. SIGTERM or SIGINT stop it gracefully: it stops
claiming, lets running executions finish within the grace period, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack

from loguru import logger

from backend.api.metrics_server import metrics_server
from backend.config.settings import Settings
from backend.container import build_runner, build_services
from backend.db.engine import create_engine
from backend.observability import tracing
from backend.runner.agent.models import ModelFactory


async def run_worker(settings: Settings) -> None:
    tracing.configure(settings.tracing, "worker", settings.trace_content)
    engine = create_engine(settings)
    tracing.instrument_engine(engine)
    services = build_services(engine, settings, serves_subscribers=False)
    models = ModelFactory(settings)
    runner = build_runner(services, models, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    exits = AsyncExitStack()
    if settings.metrics_enabled and settings.metrics_port:
        await exits.enter_async_context(
            metrics_server(settings, services, engine, settings.metrics_port)
        )
    await services.bus.start()
    await runner.start()
    logger.info(
        "crewql worker {} ready ({} mode, up to {} executions at once)",
        runner.worker_id,
        settings.mode,
        settings.runner_concurrency,
    )
    try:
        await stop.wait()
        logger.info("crewql worker {} stopping", runner.worker_id)
    finally:
        await runner.stop()
        await exits.aclose()
        await models.aclose()
        await services.bus.stop()
        await engine.dispose()
        logger.info("crewql worker stopped")
