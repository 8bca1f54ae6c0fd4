"""A model whose first request answers with a response already received, then asks the real one.

When a task asked directly (direct.py) gets an answer that only the agent loop knows what to do
with (a tool call, nothing usable), the agent run that takes over must not ask the model again:
its first request is answered with that response, as if it had just arrived, and the loop goes
on from there exactly as it would have had it made the request itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings


class ReplayFirst(WrapperModel):
    def __init__(self, wrapped: Model, first: ModelResponse) -> None:
        super().__init__(wrapped)
        self._first: ModelResponse | None = first

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        first, self._first = self._first, None
        if first is not None:
            # No events: its text was streamed (and reported) when it first arrived.
            yield CompletedStreamedResponse(
                first, model_request_parameters=model_request_parameters
            )
            return
        async with super().request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as stream:
            yield stream
