"""OpenTelemetry traces, recorded with the SDK's in-memory exporter, on both databases: the
request span continues the caller's trace and holds the SQL spans; an execution's run is a trace
of its own with task spans, linked to the createExecution request through the traceparent stored
with the execution; documents and argument values stay out of spans unless allowed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.main import create_app
from backend.observability import tracing
from tests.conftest import _clean
from tests.support.executions import wait_for
from tests.support.graphql import GraphQLClient

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
LAUNCH = """mutation Launch($input: ExecutionCreateInput!) {
  createExecution(input: $input) { ... on Execution { id } } }"""
SECRET_INPUT = "do-not-trace-this-value"
CREW = {
    "name": "Traced",
    "agents": [{"name": "Solo", "role": "r", "goal": "g", "llm": "simulated"}],
    "tasks": [
        {"name": "One", "description": "Say {q}", "expectedOutput": "x", "agent": "Solo"},
        {"name": "Two", "description": "Again", "expectedOutput": "x", "agent": "Solo"},
    ],
}

_EXPORTER = InMemorySpanExporter()
_ATTACHED: list[bool] = []


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """One in-memory exporter on the process's tracer provider (set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not _ATTACHED:  # once per process, though pytest may set the fixture up again
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _ATTACHED.append(True)
    return _EXPORTER


@pytest.fixture
async def traced(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[Any]:
    made: list[Starlette] = []

    async def build(**overrides: Any) -> tuple[Starlette, httpx.AsyncClient]:
        app = create_app(
            settings.model_copy(update={"tracing": True, "simulated_delay_seconds": 0, **overrides})
        )
        made.append(app)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        return app, http

    exporter.clear()
    yield build
    for app in made:
        await _clean(app)
        await app.state.engine.dispose()
    tracing.configure(False, "api", False)


def spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def attributes_text(found: list[ReadableSpan]) -> str:
    return " ".join(k + "=" + str(v) for s in found for k, v in (s.attributes or {}).items())


async def test_request_continues_the_callers_trace_with_sql_spans(
    traced: Any, exporter: InMemorySpanExporter
) -> None:
    _, http = await traced()
    async with http:
        response = await GraphQLClient(http).post(
            LAUNCH,
            {"input": {"crew": CREW, "inputs": {"q": SECRET_INPUT}}},
            headers={"traceparent": TRACEPARENT},
        )
    assert response.status_code == 200, response.text
    found = spans(exporter)
    in_trace = [s for s in found if format(s.context.trace_id, "032x") == TRACE_ID]
    operation = [s for s in in_trace if s.name == "GraphQL Query: Launch"]
    assert len(operation) == 1
    assert operation[0].parent is not None  # the caller's span
    assert format(operation[0].parent.span_id, "016x") == "00f067aa0ba902b7"
    sql = [s for s in in_trace if (s.attributes or {}).get("db.system")]
    assert sql, "no SQL span in the request's trace"
    assert any("INSERT" in s.name for s in sql)
    text_of_spans = attributes_text(found)
    assert SECRET_INPUT not in text_of_spans  # neither the document nor the argument values
    assert "createExecution(input" not in text_of_spans


async def test_execution_run_is_a_trace_linked_to_its_launch(
    traced: Any, exporter: InMemorySpanExporter
) -> None:
    app, http = await traced()
    async with http, app.router.lifespan_context(app):
        client = GraphQLClient(http)
        response = await client.post(
            LAUNCH,
            {"input": {"crew": CREW, "inputs": {"q": "tides"}}},
            headers={"traceparent": TRACEPARENT},
        )
        execution_id = response.json()["data"]["createExecution"]["id"]
        await wait_for(client, execution_id)
        async with app.state.engine.connect() as connection:
            stored = (
                await connection.execute(
                    text("SELECT traceparent FROM executions WHERE id = :id"),
                    {
                        "id": execution_id.replace("-", "")
                        if app.state.engine.dialect.name == "sqlite"
                        else execution_id
                    },
                )
            ).scalar_one()
    assert stored is not None
    assert stored.split("-")[1] == TRACE_ID  # the launching request's trace, kept in the row
    for _ in range(50):
        runs = [s for s in spans(exporter) if s.name == "crewql.execution"]
        if runs:
            break
        await asyncio.sleep(0.05)
    (run,) = runs
    assert format(run.context.trace_id, "032x") != TRACE_ID  # a trace of its own
    assert run.parent is None
    assert [format(link.context.trace_id, "032x") for link in run.links] == [TRACE_ID]
    assert (run.attributes or {})["crewql.execution.status"] == "COMPLETED"
    tasks = [s for s in spans(exporter) if s.name.startswith("crewql.task")]
    assert sorted(s.name for s in tasks) == ["crewql.task One", "crewql.task Two"]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in tasks)
    run_sql = [
        s
        for s in spans(exporter)
        if s.context.trace_id == run.context.trace_id and (s.attributes or {}).get("db.system")
    ]
    assert run_sql, "the run's writes are SQL spans in its trace"


async def test_content_is_recorded_only_when_allowed(
    traced: Any, exporter: InMemorySpanExporter
) -> None:
    _, http = await traced(trace_content=True)
    async with http:
        await GraphQLClient(http).post(
            LAUNCH, {"input": {"crew": CREW, "inputs": {"q": SECRET_INPUT}}}
        )
    operation = [s for s in spans(exporter) if s.name == "GraphQL Query: Launch"]
    assert "createExecution(input" in str((operation[0].attributes or {}).get("query"))


async def test_agent_spans_nest_under_the_task_span(exporter: InMemorySpanExporter) -> None:
    """An agents runtime's model requests (PydanticAI, instrumented by `configure`) land in the
    execution's trace, under the span of the task that made them."""
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    exporter.clear()
    assert tracing.configure(True, "api", False)
    try:
        with tracing.execution_run("e-1", "run", "crew", None) as run:
            run.task_started(0, "Draft", "Writer")
            await Agent(TestModel(custom_output_text="ok")).run("write")
            run.task_finished(0, "COMPLETED")
            run.finished("COMPLETED")
    finally:
        tracing.configure(False, "api", False)
    found = spans(exporter)
    (task,) = [s for s in found if s.name == "crewql.task Draft"]
    agent_spans = [
        s for s in found if s.parent is not None and s.parent.span_id == task.context.span_id
    ]
    assert agent_spans, [s.name for s in found]
    assert "write" not in attributes_text(found)  # the prompt stays out without content


async def test_a_directly_asked_task_has_its_model_request_span_under_the_task_span(
    exporter: InMemorySpanExporter,
) -> None:
    """A task without tools is one direct model request (no agent run span): the request's span
    is still in the execution's trace, under its task."""
    from tests.support.agent_runs import Recorder, crew, engine_for, job, settings_for

    exporter.clear()
    engine, models = engine_for(settings_for())
    assert tracing.configure(True, "api", False)
    try:
        with tracing.execution_run("e-2", "run", "crew", None) as run:
            run.task_started(0, "T0", "Clerk")
            await engine.run(job(crew("simulated")), Recorder())
            run.task_finished(0, "COMPLETED")
            run.finished("COMPLETED")
    finally:
        tracing.configure(False, "api", False)
        await models.aclose()
    found = spans(exporter)
    (task,) = [s for s in found if s.name == "crewql.task T0"]
    under = [s for s in found if s.parent is not None and s.parent.span_id == task.context.span_id]
    assert [s.name for s in under] == ["chat simulated"], [s.name for s in found]
    assert "What time is it" not in attributes_text(found)  # no content without permission
