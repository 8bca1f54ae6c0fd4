"""Runs one task, and says what happens as it happens.

The seam between crew orchestration and the agent library: in go the agent's instructions, the
task's prompt, the model, the toolsets and the limits (task_spec.py); out come, in order, text
deltas, one report per model request (with its usage and cost), tool calls and their results,
and at the end the output and the task's usage. Whoever calls it (the sequential engine) decides
what those mean for the execution: budgets, events, cancellation.

A task that needs no agent loop is asked in one direct model request (direct.py); any other,
or one whose answer needs the loop after all, is a PydanticAI agent run (agent_loop.py). Both
report the same events, usage and failures, and share one deadline: the task's timeout.
"""

from __future__ import annotations

import asyncio

from pydantic_ai.exceptions import RunTimedOut
from pydantic_ai.messages import ModelResponse

from backend.observability import metrics
from backend.runner.agent.agent_loop import run_agent
from backend.runner.agent.direct import ask, can_ask_directly, final_text
from backend.runner.agent.task_spec import TaskProgress, TaskRun, TaskSink

__all__ = ["TaskProgress", "TaskRun", "TaskSink", "run_task"]


async def run_task(spec: TaskRun, sink: TaskSink, progress: TaskProgress) -> TaskProgress:
    """Runs the task; fills `progress` as it goes (so a caller that meets an exception still
    knows the output and usage so far). Raises PydanticAI's errors as they come (RunTimedOut
    past the timeout, whichever path ran), or what the sink raised."""
    sink.check_cancelled()
    timeout = spec.limits.timeout_seconds
    if not can_ask_directly(spec):
        metrics.record_task_run("agent")
        return await run_agent(spec, sink, progress, time_left=timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    path = "direct"
    try:
        first = await _ask_by(deadline, spec, sink, progress)
        answer = final_text(first)
        if answer is not None:
            progress.final = answer
            return progress
        path = "replayed"
    finally:
        metrics.record_task_run(path)
    left = deadline - loop.time()
    if left <= 0:
        raise _timed_out(spec)
    return await run_agent(spec, sink, progress, time_left=left, replay=first)


async def _ask_by(
    deadline: float, spec: TaskRun, sink: TaskSink, progress: TaskProgress
) -> ModelResponse:
    """The direct request, cut off at the task's deadline as the agent loop's would be."""
    try:
        async with asyncio.timeout_at(deadline) as scope:
            return await ask(spec, sink, progress)
    except TimeoutError:
        if not scope.expired():
            raise  # something inside timed out, not the task
        raise _timed_out(spec) from None


def _timed_out(spec: TaskRun) -> RunTimedOut:
    return RunTimedOut(f"The task did not finish within {spec.limits.timeout_seconds:g}s.")
