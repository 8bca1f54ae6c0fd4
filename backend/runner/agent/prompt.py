"""What an agent is told: its instructions (role, goal, backstory) and the task's prompt
(description and expected output with the inputs filled in, then its context tasks' outputs)."""

from __future__ import annotations

from typing import Any

from backend.schemas import AgentConfig, TaskConfig
from backend.services.execution_config import fill


def instructions(agent: AgentConfig, inputs: dict[str, Any]) -> str:
    return (
        f"You are {agent.name}, {fill(agent.role, inputs)}.\n"
        f"Your goal: {fill(agent.goal, inputs)}."
        + (f"\nBackstory: {fill(agent.backstory, inputs)}" if agent.backstory else "")
    )


def task_prompt(task: TaskConfig, inputs: dict[str, Any], context: list[tuple[str, str]]) -> str:
    parts = [
        f"Task: {fill(task.description, inputs)}",
        f"Expected output: {fill(task.expected_output, inputs)}",
    ]
    for name, output in context:
        parts.append(f"Context from task {name!r}:\n{output}")
    return "\n\n".join(parts)
