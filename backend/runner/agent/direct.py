"""A task asked in one model request, without the agent loop.

Most tasks have no tools and no output schema: the agent loop would make one request and take
its text as the answer, and building an agent and driving its graph costs ten times the request
itself. Such a task is asked with PydanticAI's direct API (`model_request_stream`): the same
model, messages (instructions, history, prompt) and settings, the same streamed text and report
of the request. Only an answer the loop takes as it is ends the task here; anything else (a tool
call, nothing usable) goes to the agent loop, which starts from that answer (replay.py).
"""

from __future__ import annotations

import time

from pydantic_ai.direct import model_request_stream
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    UserPromptPart,
)
from pydantic_ai.settings import ModelSettings

from backend.runner.agent.request_report import request_ended, streamed, text_of
from backend.runner.agent.task_spec import TaskProgress, TaskRun, TaskSink


def can_ask_directly(spec: TaskRun) -> bool:
    """Whether the agent loop has nothing to add to the task's first request: no tools to run,
    no answer to validate, a request allowed."""
    return (
        spec.direct
        and not spec.toolsets
        and spec.output_schema is None
        and spec.limits.max_requests >= 1
    )


def _messages(spec: TaskRun) -> list[ModelMessage]:
    """What the agent loop sends first: the history, then the instructions with the prompt."""
    prompt, history = spec.conversation()
    return [*history, ModelRequest(parts=[UserPromptPart(prompt)], instructions=spec.instructions)]


async def ask(spec: TaskRun, sink: TaskSink, progress: TaskProgress) -> ModelResponse:
    """Makes the task's first model request, streaming and reporting it as the loop would
    (request 1). Raises what the model raises, or what the sink raised."""
    settings = ModelSettings(temperature=spec.temperature) if spec.temperature is not None else None
    began = time.monotonic()
    async with model_request_stream(
        spec.model.model, _messages(spec), model_settings=settings
    ) as stream:
        async for event in stream:
            chunk = text_of(event)
            if chunk:
                await streamed(chunk, sink, progress)
        response = stream.get()
    await request_ended(spec, sink, progress, 1, response, began)
    return response


def final_text(response: ModelResponse) -> str | None:
    """The task's answer, when the agent loop would end the run on `response` as it is: a
    complete response of text (and thinking) with some text. None: the loop must decide."""
    if response.state != "complete":
        return None
    if not all(isinstance(part, TextPart | ThinkingPart) for part in response.parts):
        return None
    text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    return text or None
