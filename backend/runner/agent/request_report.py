"""What both ways of running a task say about one model request: its streamed text, as it
comes, and once it ended its usage and cost (LLM_REQUEST), counted in the task's usage and the
metrics. One place, so the direct path and the agent loop cannot drift apart."""

from __future__ import annotations

import time

from pydantic_ai.messages import (
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)

from backend.observability import metrics
from backend.runner.agent.task_spec import TaskProgress, TaskRun, TaskSink
from backend.runner.agent.usage import priced


def text_of(event: object) -> str:
    """The text a stream event adds to the answer ('' for any other event)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


async def streamed(chunk: str, sink: TaskSink, progress: TaskProgress) -> None:
    """A piece of the answer as it arrives; a graceful cancellation is seen here."""
    sink.check_cancelled()
    progress.output += chunk
    await sink.output(chunk)


async def request_ended(
    spec: TaskRun,
    sink: TaskSink,
    progress: TaskProgress,
    number: int,
    response: ModelResponse,
    began: float,
) -> None:
    """Request `number` of the task ended with `response` (`began`: its `time.monotonic()`)."""
    request = priced(
        spec.prices, spec.model.price_key, response.usage.input_tokens, response.usage.output_tokens
    )
    progress.usage = progress.usage + request
    metrics.record_model_usage(
        spec.model.price_key,
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens,
        cost_usd=request.cost_usd or 0.0,
    )
    await sink.model_request(
        number,
        request,
        {
            "model": spec.model.price_key,
            "request": number,
            "inputTokens": request.input_tokens,
            "outputTokens": request.output_tokens,
            "costUsd": request.cost_usd,
            "durationMs": round((time.monotonic() - began) * 1000, 1),
        },
    )
