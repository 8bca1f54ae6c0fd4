"""An engine's progress as steps, and how a batch of steps becomes task updates and events.

The runner reports progress in batches (at most every `output_flush_interval_seconds`, and at
the end), so a fast execution costs a couple of transactions instead of one per step, while each
task's state and the events that describe it still commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from backend.schemas import CrewConfig, EventType, TaskStatus


class StepKind(StrEnum):
    STARTED = "started"
    OUTPUT = "output"
    COMPLETED = "completed"
    FAILED = "failed"
    MODEL_REQUEST = "model_request"
    TOOL_STARTED = "tool_started"
    TOOL_COMPLETED = "tool_completed"
    TOOL_FAILED = "tool_failed"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    position: int
    text: str = ""  # an output chunk, or the error of a failed task
    output: str = ""  # the task's whole output, when it ends
    # Model requests and tool calls: the event's data; for a model request it also carries the
    # task's usage so far (`taskUsage`), which the task's row takes.
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProgressEvent:
    type: EventType
    message: str
    task_position: int
    data: dict[str, Any]


@dataclass
class TaskWrite:
    values: dict[str, Any] = field(default_factory=dict)
    append: str = ""


def plan(
    config: CrewConfig, steps: list[Step], now: datetime
) -> tuple[dict[int, TaskWrite], list[ProgressEvent]]:
    writes: dict[int, TaskWrite] = {}
    events: list[ProgressEvent] = []
    for step in steps:
        task = config.tasks[step.position]
        write = writes.setdefault(step.position, TaskWrite())
        if step.kind == StepKind.STARTED:
            write.values.update(status=TaskStatus.RUNNING, started_at=now)
            events.append(
                ProgressEvent(
                    EventType.TASK_STARTED,
                    f"Task {task.name!r} started ({task.agent}).",
                    step.position,
                    {"task": task.name, "agent": task.agent},
                )
            )
        elif step.kind == StepKind.OUTPUT:
            write.append += step.text
            events.append(
                ProgressEvent(EventType.TASK_OUTPUT, step.text, step.position, {"text": step.text})
            )
        elif step.kind == StepKind.COMPLETED:
            write.values.update(status=TaskStatus.COMPLETED, output=step.output, finished_at=now)
            write.append = ""  # the whole output replaces what was appended
            structured = step.data is not None and "outputJson" in step.data
            if structured:
                write.values["output_json"] = step.data["outputJson"]  # type: ignore[index]
            events.append(
                ProgressEvent(
                    EventType.TASK_COMPLETED,
                    f"Task {task.name!r} completed.",
                    step.position,
                    {"task": task.name, "outputChars": len(step.output)}
                    | ({"structured": True} if structured else {}),
                )
            )
        elif step.kind == StepKind.FAILED:
            write.values.update(
                status=TaskStatus.FAILED, output=step.output, error=step.text, finished_at=now
            )
            write.append = ""
            events.append(
                ProgressEvent(
                    EventType.TASK_FAILED,
                    f"Task {task.name!r} failed: {step.text}",
                    step.position,
                    {"task": task.name, "error": step.text},
                )
            )
        else:
            events.append(_agent_event(step, write))
    return writes, events


def _agent_event(step: Step, write: TaskWrite) -> ProgressEvent:
    """A model request (its usage goes to the task's row) or a tool call."""
    data = dict(step.data or {})
    if step.kind == StepKind.MODEL_REQUEST:
        total = data.pop("taskUsage")
        write.values.update(
            model=data["model"],
            input_tokens=total["inputTokens"],
            output_tokens=total["outputTokens"],
            requests=total["requests"],
            cost_usd=total["costUsd"],
        )
        cost = "" if data["costUsd"] is None else f", ${data['costUsd']:.6f}"
        message = (
            f"Model request {data['request']} to {data['model']}: {data['inputTokens']} input "
            f"and {data['outputTokens']} output tokens{cost}."
        )
        return ProgressEvent(EventType.LLM_REQUEST, message, step.position, data)
    if step.kind == StepKind.TOOL_STARTED:
        message = f"Calling tool {data['tool']}."
        return ProgressEvent(EventType.TOOL_CALL_STARTED, message, step.position, data)
    if step.kind == StepKind.TOOL_COMPLETED:
        message = f"Tool {data['tool']} answered in {data['durationMs']:g} ms."
        return ProgressEvent(EventType.TOOL_CALL_COMPLETED, message, step.position, data)
    message = f"Tool {data['tool']} failed: {data.get('error', '')}"
    return ProgressEvent(EventType.TOOL_CALL_FAILED, message, step.position, data)
