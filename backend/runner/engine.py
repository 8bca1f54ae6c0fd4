"""The built-in sequential engine (CrewAI's "sequential" process).

Each task runs as one direct model request or one agent run (runner/agent/task_run.py) with the
agent's model and tools; the task's output is the answer and is context for later tasks. The
engine reports everything through a Reporter (which goes to the execution's event log), keeps the
execution's usage against the launch's budget, and turns what stops a task into a task failure
with a code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_ai.exceptions import RunTimedOut, UnexpectedModelBehavior, UsageLimitExceeded

from backend.config.settings import Settings
from backend.core.usage import Usage
from backend.runner.agent.errors import describe_failure
from backend.runner.agent.models import ModelFactory, UnknownProvider
from backend.runner.agent.setup import SecretReader, TaskSetup, catalog_tools
from backend.runner.agent.task_run import TaskProgress, TaskRun, run_task
from backend.runner.agent.usage import Budget, BudgetExceeded
from backend.runner.tools import ToolSource
from backend.schemas import CrewConfig
from backend.services.execution_resume import AwaitingInput, Resume, feedback_prompt
from backend.services.secret_service import SecretMissing

__all__ = ["AwaitingInput", "Cancelled", "Job", "SequentialEngine", "TaskFailed"]


class Cancelled(Exception):
    """Raised at an await point once a graceful cancellation was requested."""


class TaskFailed(Exception):
    def __init__(
        self,
        position: int,
        message: str,
        code: str = "TASK_FAILED",
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.position = position
        self.code = code
        self.data = data or {}


class Reporter(Protocol):
    async def task_started(self, position: int) -> None: ...

    async def output(self, position: int, chunk: str) -> None: ...

    async def model_request(
        self, position: int, task_usage: Usage, data: dict[str, Any]
    ) -> None: ...

    async def tool_call(self, position: int, ok: bool | None, data: dict[str, Any]) -> None: ...

    async def task_completed(self, position: int, output: str, output_json: Any = None) -> None: ...

    async def task_failed(self, position: int, error: str, output: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass(frozen=True)
class Job:
    """One execution as the engine sees it."""

    workspace_id: uuid.UUID
    config: CrewConfig
    inputs: dict[str, Any]
    budget: Budget = field(default_factory=Budget)
    resume: Resume = field(default_factory=Resume)
    # What tasks used before a wait for human input, by position: it counts against the budget.
    used: dict[int, Usage] = field(default_factory=dict)


class _BudgetStop(Exception):
    def __init__(self, exceeded: BudgetExceeded) -> None:
        super().__init__(exceeded.message())
        self.exceeded = exceeded


class _Sink:
    """One task's progress, to the reporter; checks the budget after each model request."""

    def __init__(
        self,
        reporter: Reporter,
        position: int,
        spent_before: Usage,
        budget: Budget,
        task_usage: Usage,
    ) -> None:
        self.reporter = reporter
        self.position = position
        self.spent_before = spent_before  # by the other tasks
        self.budget = budget
        self.task_usage = task_usage

    async def output(self, chunk: str) -> None:
        await self.reporter.output(self.position, chunk)

    async def model_request(self, number: int, usage: Usage, data: dict[str, Any]) -> None:
        self.task_usage = self.task_usage + usage
        await self.reporter.model_request(self.position, self.task_usage, data)
        exceeded = self.budget.check(self.spent_before + self.task_usage)
        if exceeded is not None:
            raise _BudgetStop(exceeded)

    async def tool_started(self, data: dict[str, Any]) -> None:
        await self.reporter.tool_call(self.position, None, data)

    async def tool_finished(self, ok: bool, data: dict[str, Any]) -> None:
        await self.reporter.tool_call(self.position, ok, data)

    def check_cancelled(self) -> None:
        self.reporter.check_cancelled()


class SequentialEngine:
    def __init__(self, setup: TaskSetup) -> None:
        self.setup = setup
        self.settings = setup.settings

    @classmethod
    def serving(
        cls, models: ModelFactory, settings: Settings, tools: ToolSource, secrets: SecretReader
    ) -> SequentialEngine:
        """The engine of a server or worker: tools from the catalog, keys from secrets."""
        return cls(TaskSetup(models, settings, catalog_tools(tools, settings), secrets))

    async def run(self, job: Job, reporter: Reporter) -> dict[str, Any]:
        """Runs the tasks in order; after a wait for human input, `job.resume` gives the
        answers already approved (context, not work) and the task to redo with a person's
        feedback. A task with `human_input` stops the run after its answer (AwaitingInput)."""
        resume = job.resume
        outputs: dict[str, str] = {}
        # Structured answers (tasks with an output schema); their text is the JSON, which is
        # what later tasks read as context.
        jsons: dict[str, Any] = {job.config.tasks[p].name: v for p, v in resume.json.items()}
        this_run = Usage()
        for position, task in enumerate(job.config.tasks):
            if position in resume.outputs:
                outputs[task.name] = resume.outputs[position]
                continue
            reporter.check_cancelled()
            agent = job.config.agent(task.agent)
            await reporter.task_started(position)
            context = [(name, outputs[name]) for name in task.context]
            progress = TaskProgress()
            redo = resume.redo
            again = (
                (redo.answer, feedback_prompt(redo.feedback))
                if redo is not None and redo.position == position
                else None
            )
            try:
                spec = await self.setup.build(
                    job.workspace_id, agent, task, job.inputs, context, again
                )
            except (UnknownProvider, SecretMissing) as exc:
                code = "SECRET_MISSING" if isinstance(exc, SecretMissing) else "MODEL_ERROR"
                await reporter.task_failed(position, str(exc), "")
                raise TaskFailed(position, f"task {task.name!r} failed: {exc}", code) from None
            try:
                before = job.used.get(position, Usage())  # a redone task's first attempt
                others = [u for p, u in job.used.items() if p != position]
                spent = sum(others, this_run)
                sink = _Sink(reporter, position, spent, job.budget, before)
                await run_task(spec, sink, progress)
            except _BudgetStop as stop:
                message = stop.exceeded.message()
                await reporter.task_failed(position, message, progress.output)
                raise TaskFailed(
                    position,
                    f"task {task.name!r} stopped: {message}",
                    "BUDGET_EXCEEDED",
                    stop.exceeded.as_data(),
                ) from None
            except Exception as exc:
                found = self._failure(exc, spec)
                if found is None:
                    raise
                message, code = found
                await reporter.task_failed(position, message, progress.output)
                raise TaskFailed(position, f"task {task.name!r} failed: {message}", code) from None
            this_run = this_run + progress.usage
            output = progress.final if progress.final is not None else progress.output
            outputs[task.name] = output
            if progress.final_json is not None:
                jsons[task.name] = progress.final_json
            await reporter.task_completed(position, output, progress.final_json)
            if task.human_input:
                raise AwaitingInput(position)
        return result_of(job.config, outputs, jsons)

    def _failure(self, exc: Exception, spec: TaskRun) -> tuple[str, str] | None:
        """The message (secrets redacted) and code for a failed run; None for the unexpected."""
        simulated = spec.model.endpoint == "simulated"
        message = describe_failure(
            exc,
            endpoint=spec.model.endpoint,
            retries=0 if simulated else self.settings.llm_max_retries,
            max_requests=spec.limits.max_requests,
            timeout=spec.limits.timeout_seconds,
        )
        if message is None:
            return None
        if isinstance(exc, RunTimedOut):
            code = "TASK_TIMEOUT"
        elif isinstance(exc, UnexpectedModelBehavior) and spec.output_schema is not None:
            code = "OUTPUT_SCHEMA_MISMATCH"  # no answer fitted the schema within the retries
        elif isinstance(exc, UsageLimitExceeded):
            code = "MAX_ITERATIONS"
        else:
            code = "MODEL_ERROR"
        return spec.redact(message), code


def result_of(config: CrewConfig, outputs: dict[str, str], jsons: dict[str, Any]) -> dict[str, Any]:
    """`Execution.result`: each task's output (and its JSON, for a structured answer), and the
    last task's as `final` (`finalJson`)."""
    tasks = [
        {
            "name": t.name,
            "output": outputs[t.name],
            **({"json": jsons[t.name]} if t.name in jsons else {}),
        }
        for t in config.tasks
    ]
    last = config.tasks[-1].name
    return {
        "tasks": tasks,
        "final": outputs[last],
        **({"finalJson": jsons[last]} if last in jsons else {}),
    }
