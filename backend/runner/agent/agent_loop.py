"""A task run as one PydanticAI agent run: the loop that calls tools and validates answers.

The run is driven node by node (`Agent.iter`), each node streamed, in the caller's asyncio task.
A graceful cancellation is seen at the next text delta or tool event (a model request or tool
call in flight finishes first; the runner forces the rest after its cancel timeout); a forced one
cancels the asyncio task, and with it the model request or tool call in flight, at once.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic_ai import Agent, UsageLimits
from pydantic_ai.messages import FunctionToolCallEvent, FunctionToolResultEvent, ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from backend.runner.agent.replay import ReplayFirst
from backend.runner.agent.request_report import request_ended, streamed, text_of
from backend.runner.agent.structured import as_text, structured_agent
from backend.runner.agent.task_spec import TaskProgress, TaskRun, TaskSink
from backend.runner.agent.tool_events import ToolCallTracker


def _agent(spec: TaskRun, model: Model) -> Agent[None, Any]:
    if spec.output_schema is None:
        return Agent(model, instructions=spec.instructions, name=spec.agent_name)
    return structured_agent(
        model, spec.instructions, spec.agent_name, spec.output_schema, spec.limits.output_retries
    )


async def run_agent(
    spec: TaskRun,
    sink: TaskSink,
    progress: TaskProgress,
    *,
    time_left: float,
    replay: ModelResponse | None = None,
) -> TaskProgress:
    """Runs the task's agent loop. `replay`: the answer to its first request, received (and
    reported as request 1) before the loop was needed; the loop starts from it, asking nothing."""
    settings = ModelSettings(temperature=spec.temperature) if spec.temperature is not None else None
    model = spec.model.model if replay is None else ReplayFirst(spec.model.model, replay)
    agent = _agent(spec, model)
    tools = ToolCallTracker(spec.redact, spec.limits.tool_preview_chars, spec.tool_names)
    requests = 0
    prompt, history = spec.conversation()
    async with agent.iter(
        prompt,
        message_history=history,
        toolsets=spec.toolsets,
        model_settings=settings,
        usage_limits=UsageLimits(request_limit=spec.limits.max_requests),
        timeout=time_left,
    ) as run:
        async for node in run:
            if Agent.is_model_request_node(node):
                began = time.monotonic()
                async with node.stream(run.ctx) as stream:
                    async for event in stream:
                        chunk = text_of(event)
                        if chunk:
                            await streamed(chunk, sink, progress)
                    answered = stream.response
                requests += 1
                if requests == 1 and replay is not None:
                    continue  # reported when it arrived
                await request_ended(spec, sink, progress, requests, answered, began)
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
