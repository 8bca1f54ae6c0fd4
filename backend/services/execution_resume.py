"""Where a resumed execution starts, rebuilt from its stored task rows.

An execution that waited for human input is run again by whichever runner claims it; the tasks
already done are context for the rest, not work, and a task the person sent feedback on is
redone with its previous answer and the feedback. Everything needed is in the execution's task
rows and its recorded response, so no process has to remember anything across the wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row

from backend.schemas import EventType, TaskConfig, TaskStatus
from backend.services.execution_record import Event

# What the end of a wait does (CREWQL_INPUT_TIMEOUT_ACTION).
TimeoutAction = Literal["fail", "approve"]


class AwaitingInput(Exception):
    """Raised by the engine once a task that asks for human input has answered."""

    def __init__(self, position: int) -> None:
        super().__init__(f"task {position} waits for human input")
        self.position = position


@dataclass(frozen=True)
class Redo:
    """A task to run again: its previous answer and what the person said about it."""

    position: int
    answer: str
    feedback: str


@dataclass(frozen=True)
class Resume:
    """Where a resumed run starts: the answers of the tasks already done, by position (they are
    context, not work), and the task to redo, if the person asked for it."""

    outputs: dict[int, str] = field(default_factory=dict)
    redo: Redo | None = None
    # The structured answers among them (tasks with an output schema), by position.
    json: dict[int, Any] = field(default_factory=dict)


def resume_of(task_rows: Sequence[Row[Any]], response: dict[str, Any] | None) -> Resume:
    done = [t for t in task_rows if t.status == TaskStatus.COMPLETED]
    outputs = {t.position: t.output for t in done}
    structured = {t.position: t.output_json for t in done if t.output_json is not None}
    redo = None
    if response and response.get("feedback"):
        redo = Redo(int(response["position"]), str(response["answer"]), str(response["feedback"]))
    return Resume(outputs, redo, structured)


def waiting_position(task_rows: Sequence[Row[Any]]) -> int:
    """The task whose answer waits: tasks complete in order and the run stops right after it."""
    done = [t.position for t in task_rows if t.status == TaskStatus.COMPLETED]
    return max(done) if done else 0


def feedback_prompt(feedback: str) -> str:
    """What the model reads after its previous answer when a person asked for another."""
    return (
        "A person reviewed your answer above and asks you to do the task again, taking this "
        f"feedback into account:\n{feedback}\n\nGive your whole new answer."
    )


def input_requested(
    task: TaskConfig, position: int, answer: str, deadline: datetime, on_timeout: TimeoutAction
) -> Event:
    """The INPUT_REQUESTED event: the answer, what is asked, and how the wait ends by itself."""
    return Event(
        EventType.INPUT_REQUESTED,
        f"Task {task.name!r} waits for a person: approve its answer, or send feedback to have "
        "it redone.",
        position,
        {
            "task": task.name,
            "answer": answer,
            "question": f"Approve the answer of task {task.name!r}? It was asked for: "
            f"{task.expected_output}",
            "deadline": deadline.isoformat(),
            "onTimeout": on_timeout,
        },
    )
