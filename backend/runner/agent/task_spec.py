"""What one task's run is given (`TaskRun`), where its progress goes (`TaskSink`), and what it
produced so far (`TaskProgress`): the terms both ways of running a task share (task_run.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.toolsets import AbstractToolset

from backend.config.settings import ModelPrice
from backend.core.usage import Usage
from backend.runner.agent.errors import Redactor
from backend.runner.agent.models import ResolvedModel


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
    """Everything one task's run needs."""

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
    # A task that can be answered in one model request is asked directly, without the agent
    # loop (CREWQL_AGENT_DIRECT_REQUESTS; direct.py says when).
    direct: bool = True

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
