"""Runs one task as one PydanticAI agent run, and says what happens as it happens.

The seam between crew orchestration and the agent library: in go the agent's instructions, the
task's prompt, the model, the toolsets and the limits; out come, in order, text deltas, one
report per model request (with its usage and cost), tool calls and their results, and at the end
the output and the task's usage. Whoever calls it (the sequential engine) decides what those mean
for the execution: budgets, events, cancellation.

The run is driven node by node (`Agent.iter`), each node streamed, in the caller's asyncio task.
A graceful cancellation is seen at the next text delta or tool event (a model request or tool
call in flight finishes first; the runner forces the rest after its cancel timeout); a forced one
cancels the asyncio task, and with it the model request or tool call in flight, at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_ai import Agent, UsageLimits
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    UserPromptPart,
)
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset

from backend.config.settings import ModelPrice
from backend.core.usage import Usage
from backend.observability import metrics
from backend.runner.agent.errors import Redactor
from backend.runner.agent.models import ResolvedModel
from backend.runner.agent.structured import as_text, structured_agent
from backend.runner.agent.tool_events import ToolCallTracker
from backend.runner.agent.usage import priced


class TaskSink(Protocol):
    """Where a task run's progress goes. Any method may raise to stop the run (a cancellation,
    a budget crossed); the run is torn down and the exception comes out of `run_task`."""

    async def output(self, chunk: str) -> None: ...

    async def model_request(self, number: int, usage: Usage, data: dict[str, Any]) -> None: ...

    async def tool_started(self, data: dict[str, Any]) -> None: ...

    async def tool_finished(self, ok: bool, data: dict[str, Any]) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass(frozen=True)
class TaskLimits:
    max_requests: int
    timeout_seconds: float
    tool_preview_chars: int
    output_retries: int = 2  # answers that miss the output schema, asked again at most this often


@dataclass(frozen=True)
class TaskRun:
    """Everything one task's agent run needs."""

    agent_name: str
    instructions: str
    prompt: str
    model: ResolvedModel
    temperature: float | None
    toolsets: Sequence[AbstractToolset[Any]]
    tool_names: dict[str, str]  # the model's name of a tool -> its catalog name
    limits: TaskLimits
    prices: dict[str, ModelPrice]
    redact: Redactor
    # Redoing the task: its previous answer and what to say about it (a person's feedback). The
    # run continues that conversation: prompt, previous answer, then this.
    again: tuple[str, str] | None = None
    # The task's outputSchema: the answer is then a JSON object that validates against it.
    output_schema: dict[str, Any] | None = None

    def conversation(self) -> tuple[str, list[ModelMessage]]:
        """The user prompt of this run, and the messages before it."""
        if self.again is None:
            return self.prompt, []
        answer, follow_up = self.again
        history: list[ModelMessage] = [
            ModelRequest(parts=[UserPromptPart(self.prompt)]),
            ModelResponse(parts=[TextPart(answer)]),
        ]
        return follow_up, history


@dataclass
class TaskProgress:
    """What the run produced so far (read by the caller when it stops early, too)."""

    output: str = ""
    usage: Usage = field(default_factory=Usage)
    final: str | None = None
    final_json: Any = None  # the structured answer, when the task has an output schema


async def run_task(spec: TaskRun, sink: TaskSink, progress: TaskProgress) -> TaskProgress:
    """Runs the task; fills `progress` as it goes (so a caller that meets an exception still
    knows the output and usage so far). Raises PydanticAI's errors as they come, or what the
    sink raised."""
    sink.check_cancelled()
    settings = ModelSettings(temperature=spec.temperature) if spec.temperature is not None else None
    agent: Agent[None, Any]
    if spec.output_schema is None:
        agent = Agent(spec.model.model, instructions=spec.instructions, name=spec.agent_name)
    else:
        agent = structured_agent(
            spec.model.model,
            spec.instructions,
            spec.agent_name,
            spec.output_schema,
            spec.limits.output_retries,
        )
    tools = ToolCallTracker(spec.redact, spec.limits.tool_preview_chars, spec.tool_names)
    requests = 0
    prompt, history = spec.conversation()
    async with agent.iter(
        prompt,
        message_history=history,
        toolsets=spec.toolsets,
        model_settings=settings,
        usage_limits=UsageLimits(request_limit=spec.limits.max_requests),
        timeout=spec.limits.timeout_seconds,
    ) as run:
        async for node in run:
            if Agent.is_model_request_node(node):
                began = time.monotonic()
                async with node.stream(run.ctx) as stream:
                    async for event in stream:
                        chunk = _text(event)
                        if chunk:
                            sink.check_cancelled()
                            progress.output += chunk
                            await sink.output(chunk)
                    answered = stream.response
                requests += 1
                request = priced(
                    spec.prices,
                    spec.model.price_key,
                    answered.usage.input_tokens,
                    answered.usage.output_tokens,
                )
                progress.usage = progress.usage + request
                metrics.record_model_usage(
                    spec.model.price_key,
                    input_tokens=request.input_tokens,
                    output_tokens=request.output_tokens,
                    cost_usd=request.cost_usd or 0.0,
                )
                await sink.model_request(
                    requests,
                    request,
                    {
                        "model": spec.model.price_key,
                        "request": requests,
                        "inputTokens": request.input_tokens,
                        "outputTokens": request.output_tokens,
                        "costUsd": request.cost_usd,
                        "durationMs": round((time.monotonic() - began) * 1000, 1),
                    },
                )
            elif Agent.is_call_tools_node(node):
                async with node.stream(run.ctx) as tool_stream:
                    async for tool_event in tool_stream:
                        if isinstance(tool_event, FunctionToolCallEvent):
                            sink.check_cancelled()  # before the call: it does not start
                            await sink.tool_started(tools.started(tool_event))
                        elif isinstance(tool_event, FunctionToolResultEvent):
                            await sink.tool_finished(*tools.finished(tool_event))
                            sink.check_cancelled()  # after the result: it is recorded
        result = run.result
    assert result is not None
    if spec.output_schema is None:
        progress.final = str(result.output)
        return progress
    progress.final_json = result.output
    progress.final = as_text(result.output)
    if not progress.output:  # the answer came as a tool call: show it as the task's output
        progress.output = progress.final
        await sink.output(progress.final)
    return progress


def _text(event: object) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""
