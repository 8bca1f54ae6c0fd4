"""The built-in sequential engine (CrewAI's "sequential" process).

Each task's prompt is made from its agent (role, goal, backstory), its description and expected
output with the inputs filled in, and the outputs of its context tasks; the task's output is the
model's answer. The engine reports everything through a Reporter (which goes to
ExecutionLifecycle) and checks for cancellation at every chunk.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from backend.runner.providers.base import ChatMessage, ModelCall, ProviderError, parse_llm
from backend.runner.providers.registry import ProviderRegistry
from backend.schemas import AgentConfig, CrewConfig, TaskConfig
from backend.services.execution_config import fill
from backend.services.execution_resume import AwaitingInput, Resume, feedback_prompt

__all__ = ["AwaitingInput", "Cancelled", "SequentialEngine", "TaskFailed"]


class Cancelled(Exception):
    """Raised at an await point once a graceful cancellation was requested."""


class TaskFailed(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


class Reporter(Protocol):
    async def task_started(self, position: int) -> None: ...

    async def output(self, position: int, chunk: str) -> None: ...

    async def task_completed(self, position: int, output: str) -> None: ...

    async def task_failed(self, position: int, error: str, output: str) -> None: ...

    def check_cancelled(self) -> None: ...


def build_messages(
    agent: AgentConfig,
    task: TaskConfig,
    inputs: dict[str, Any],
    context: list[tuple[str, str]],
) -> list[ChatMessage]:
    system = (
        f"You are {agent.name}, {fill(agent.role, inputs)}.\n"
        f"Your goal: {fill(agent.goal, inputs)}."
        + (f"\nBackstory: {fill(agent.backstory, inputs)}" if agent.backstory else "")
    )
    parts = [
        f"Task: {fill(task.description, inputs)}",
        f"Expected output: {fill(task.expected_output, inputs)}",
    ]
    for name, output in context:
        parts.append(f"Context from task {name!r}:\n{output}")
    return [ChatMessage("system", system), ChatMessage("user", "\n\n".join(parts))]


class SequentialEngine:
    def __init__(self, providers: ProviderRegistry) -> None:
        self.providers = providers

    async def run(
        self,
        config: CrewConfig,
        inputs: dict[str, Any],
        reporter: Reporter,
        resume: Resume | None = None,
    ) -> dict[str, Any]:
        """Runs the tasks in order; after a wait for human input, `resume` gives the answers
        already approved (context, not work) and the task to redo with a person's feedback.
        A task with `human_input` stops the run after its answer (AwaitingInput)."""
        resume = resume or Resume()
        outputs: dict[str, str] = {}
        for position, task in enumerate(config.tasks):
            if position in resume.outputs:
                outputs[task.name] = resume.outputs[position]
                continue
            reporter.check_cancelled()
            agent = config.agent(task.agent)
            await reporter.task_started(position)
            context = [(name, outputs[name]) for name in task.context]
            provider_name, model = parse_llm(agent.llm)
            messages = build_messages(agent, task, inputs, context)
            redo = resume.redo
            if redo is not None and redo.position == position:
                messages.append(ChatMessage("assistant", redo.answer))
                messages.append(ChatMessage("user", feedback_prompt(redo.feedback)))
            call = ModelCall(
                provider=provider_name,
                model=model,
                messages=messages,
                temperature=agent.temperature,
            )
            output = ""
            try:
                provider = self.providers.get(provider_name)
                # aclosing: a cancellation between chunks closes the model's HTTP response now.
                async with contextlib.aclosing(provider.stream(call)) as chunks:
                    async for chunk in chunks:
                        reporter.check_cancelled()
                        output += chunk
                        await reporter.output(position, chunk)
            except ProviderError as exc:
                await reporter.task_failed(position, str(exc), output)
                raise TaskFailed(position, f"task {task.name!r} failed: {exc}") from exc
            outputs[task.name] = output
            await reporter.task_completed(position, output)
            if task.human_input:
                raise AwaitingInput(position)
        return {
            "tasks": [{"name": t.name, "output": outputs[t.name]} for t in config.tasks],
            "final": outputs[config.tasks[-1].name],
        }
