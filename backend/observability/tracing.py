"""OpenTelemetry traces (the optional `otel` extra), configured by the standard OTEL_* variables.

What is traced:
- every GraphQL operation, over HTTP (continuing the caller's `traceparent` when it sends one)
  or a websocket: Strawberry's OpenTelemetry extension, one span per operation and per resolver;
- every SQL statement (the SQLAlchemy instrumentation), under whatever span issued it;
- every execution run: a trace of its own (`crewql.execution`, with one `crewql.task` span per
  task) that *links* to the span of the `createExecution` request. The request's W3C
  `traceparent` is stored with the execution, so the link holds when another process (a scaled
  worker) runs it. Model-request and tool-call spans of an agents runtime that emits them
  (PydanticAI's instrumentation) nest under the task span, which is current while it runs.

What is not recorded unless CREWQL_TRACE_CONTENT=true: GraphQL documents and argument values
(other than ids and paging), execution inputs, prompts and outputs. Secrets never are.

Without the extra installed, or with tracing off, every function here is a cheap no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - the otel extra is not installed
    trace = None  # type: ignore[assignment]

TRACER_NAME = "crewql"
# Resolver arguments kept on spans without CREWQL_TRACE_CONTENT: they identify, never carry data.
SAFE_ARGUMENTS = frozenset({"id", "executionId", "crewId", "first", "after", "force", "approve"})

_state: dict[str, Any] = {"on": False, "content": False}


def available() -> bool:
    return trace is not None


def wanted(setting: bool | None) -> bool:
    """CREWQL_TRACING, or when unset: whether the standard variables ask for an exporter."""
    if not available() or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if setting is not None:
        return setting
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint) or (bool(exporter) and exporter != "none")


def enabled() -> bool:
    return bool(_state["on"])


def configure(setting: bool | None, service: str, record_content: bool) -> bool:
    """Turns tracing on for this process when wanted; True when it is on. A tracer provider set
    before (by the process's own OpenTelemetry set-up, or a test) is kept as it is."""
    if not wanted(setting):
        if _state["on"]:
            _instrument_agents(None)
        _state["on"] = False
        return False
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": f"crewql-{service}"}).merge(
            OTELResourceDetector().detect()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
        trace.set_tracer_provider(provider)
    _state["on"] = True
    _state["content"] = record_content
    _instrument_agents(record_content)
    return True


def _instrument_agents(record_content: bool | None) -> None:
    """PydanticAI's own spans (agent runs, model requests, tool calls, GenAI semantic
    conventions) for every agent, with prompts and answers only when content may be recorded;
    None turns them off again."""
    try:
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings
    except ImportError:  # pragma: no cover - no agents runtime in this install
        return
    if record_content is None:
        Agent.instrument_all(False)
        return
    Agent.instrument_all(
        InstrumentationSettings(include_content=record_content, include_binary_content=False)
    )


def _exporter() -> Any:
    """The exporter OTEL_TRACES_EXPORTER names: otlp (HTTP/protobuf, the default) or console."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_* variables


def instrument_engine(engine: Any) -> None:
    """SQL spans for every statement of this SQLAlchemy (async) engine."""
    if not enabled():
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()  # one per process: a process has one engine
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # an earlier app of this process (tests build several)
    # The instrumentation declares SQLAlchemy < 2.1; 2.1's engine events are the ones it uses
    # (tests/integration/test_tracing.py checks the spans), so its version check is skipped.
    instrumentor.instrument(engine=engine.sync_engine, enable_commenter=False, skip_dep_check=True)


def record_content() -> bool:
    return bool(_state["content"])


def argument_filter(arguments: dict[str, Any], _info: Any) -> dict[str, Any]:
    """Which resolver arguments go on spans (Strawberry's `arg_filter`)."""
    if record_content():
        return arguments
    return {k: v for k, v in arguments.items() if k in SAFE_ARGUMENTS}


@contextmanager
def incoming(headers: Mapping[str, str]) -> Iterator[None]:
    """Continues the caller's trace (W3C `traceparent`) for the duration of a request."""
    if not enabled():
        yield
        return
    token = otel_context.attach(propagate.extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (None when there is none)."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


class ExecutionTrace:
    """The spans of one execution run. Task spans are made current while their task runs (the
    engine awaits its model in the same asyncio task), so spans of model requests and tool calls
    nest under them."""

    def __init__(self, span: Any) -> None:
        self.span = span
        self._tasks: dict[int, tuple[Any, Any]] = {}

    def task_started(self, position: int, name: str, agent: str) -> None:
        if self.span is None:
            return
        tracer = trace.get_tracer(TRACER_NAME)
        span = tracer.start_span(
            f"crewql.task {name}",
            context=trace.set_span_in_context(self.span),
            attributes={"crewql.task.position": position, "crewql.task.agent": agent},
        )
        self._tasks[position] = (span, otel_context.attach(trace.set_span_in_context(span)))

    def task_finished(self, position: int, status: str, error: str | None = None) -> None:
        span, token = self._tasks.pop(position, (None, None))
        if span is None:
            return
        span.set_attribute("crewql.task.status", status)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error if record_content() else None))
        span.end()
        otel_context.detach(token)

    def finished(self, status: str, error: str | None = None) -> None:
        for position in list(self._tasks):
            self.task_finished(position, "STOPPED")
        if self.span is None:
            return
        self.span.set_attribute("crewql.execution.status", status)
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error if record_content() else None))


@contextmanager
def execution_run(
    execution_id: str, name: str, crew: str, traceparent: str | None
) -> Iterator[ExecutionTrace]:
    """A new trace for one run of an execution, linked to the request that launched it."""
    if not enabled():
        yield ExecutionTrace(None)
        return
    links = []
    if traceparent:
        launched = trace.get_current_span(propagate.extract({"traceparent": traceparent}))
        if launched.get_span_context().is_valid:
            links.append(Link(launched.get_span_context(), {"crewql.link": "createExecution"}))
    tracer = trace.get_tracer(TRACER_NAME)
    attributes = {"crewql.execution.id": execution_id, "crewql.crew": crew}
    if record_content():
        attributes["crewql.execution.name"] = name
    with tracer.start_as_current_span(
        "crewql.execution",
        context=otel_context.Context(),  # a root: the run is its own trace
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    ) as span:
        yield ExecutionTrace(span)
