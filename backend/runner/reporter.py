"""Carries an engine's progress to ExecutionLifecycle, in batches.

Output arrives token by token; storing each as an event would turn a long answer into thousands
of rows, and a transaction per step would make a fast crew cost a dozen commits. Steps are
buffered and written together at most every `flush_interval` seconds; what is left goes out with
the execution's final status, in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from backend.core.usage import Usage
from backend.observability.tracing import ExecutionTrace
from backend.runner.engine import Cancelled
from backend.runner.resilience import LeaseClock, persist
from backend.services.execution_lifecycle import ExecutionLifecycle, RunHandle
from backend.services.execution_progress import Step, StepKind


@dataclass
class CancelState:
    requested: bool = False
    forced: bool = False
    reason: str = "Cancelled on request."


class ExecutionReporter:
    """Collects an engine's steps and writes them in batches: once `flush_interval` has passed
    since the last write (from a timer, so a long model call does not hold back what came
    before it), and at the end together with the execution's final status (`take_pending`).
    Consecutive output of one task is merged into one chunk per batch."""

    def __init__(
        self,
        service: ExecutionLifecycle,
        run: RunHandle,
        cancel: CancelState,
        flush_interval: float,
        clock: LeaseClock,
    ) -> None:
        self.clock = clock
        self.service = service
        self.run = run
        self.cancel = cancel
        self.flush_interval = flush_interval
        self._steps: list[Step] = []
        self._last_flush = time.monotonic()
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        # Task spans of the run's trace (a no-op unless tracing is on).
        self.trace = ExecutionTrace(None)

    def check_cancelled(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self.cancel.requested:
            raise Cancelled(self.cancel.reason)

    def take_pending(self) -> list[Step]:
        """The steps not written yet, for the caller to write with the final status."""
        self.close()
        steps, self._steps = self._steps, []
        return steps

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def flush(self) -> None:
        async with self._lock:
            steps, self._steps = self._steps, []
            self._last_flush = time.monotonic()
            if steps:
                await persist(
                    lambda: self.service.record_progress(self.run, steps),
                    self.clock,
                    "recording progress",
                )

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        try:
            await self.flush()
        except Exception as exc:  # the engine meets it at its next step
            self._failure = exc

    async def _added(self) -> None:
        if self._failure is not None:
            raise self._failure
        waited = time.monotonic() - self._last_flush
        if waited >= self.flush_interval:
            self.close()
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(self.flush_interval - waited))

    async def task_started(self, position: int) -> None:
        task = self.run.config.tasks[position]
        self.trace.task_started(position, task.name, task.agent)
        self._steps.append(Step(StepKind.STARTED, position))
        await self._added()

    async def output(self, position: int, chunk: str) -> None:
        last = self._steps[-1] if self._steps else None
        if last is not None and last.kind == StepKind.OUTPUT and last.position == position:
            self._steps[-1] = Step(StepKind.OUTPUT, position, last.text + chunk)
        else:
            self._steps.append(Step(StepKind.OUTPUT, position, chunk))
        await self._added()

    async def task_completed(self, position: int, output: str, output_json: Any = None) -> None:
        self.trace.task_finished(position, "COMPLETED")
        data = {"outputJson": output_json} if output_json is not None else None
        self._steps.append(Step(StepKind.COMPLETED, position, output=output, data=data))
        await self._added()

    async def model_request(self, position: int, task_usage: Usage, data: dict[str, Any]) -> None:
        usage = {**data, "taskUsage": task_usage.as_data()}
        self._steps.append(Step(StepKind.MODEL_REQUEST, position, data=usage))
        await self._added()

    async def tool_call(self, position: int, ok: bool | None, data: dict[str, Any]) -> None:
        """A tool call started (`ok` None) or ended."""
        kind = (
            StepKind.TOOL_STARTED
            if ok is None
            else StepKind.TOOL_COMPLETED
            if ok
            else StepKind.TOOL_FAILED
        )
        self._steps.append(Step(kind, position, data=data))
        await self._added()

    async def task_failed(self, position: int, error: str, output: str) -> None:
        self.trace.task_finished(position, "FAILED", error)
        self._steps.append(Step(StepKind.FAILED, position, error, output))
