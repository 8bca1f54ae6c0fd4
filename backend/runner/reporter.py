"""Carries an engine's progress to ExecutionService, coalescing model output.

Output arrives token by token; storing each as an event would turn a long answer into thousands
of rows. Chunks are buffered and written as one TASK_OUTPUT event at most every
`flush_interval` seconds, and whatever is left goes out with TASK_COMPLETED, in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from backend.runner.engine import Cancelled
from backend.runner.resilience import LeaseClock, persist
from backend.services.execution_service import ExecutionService, RunHandle


@dataclass
class CancelState:
    requested: bool = False
    forced: bool = False
    reason: str = "Cancelled on request."


class ExecutionReporter:
    def __init__(
        self,
        service: ExecutionService,
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
        self._pending = ""
        self._last_flush = time.monotonic()

    def check_cancelled(self) -> None:
        if self.cancel.requested:
            raise Cancelled(self.cancel.reason)

    async def task_started(self, position: int) -> None:
        await persist(
            lambda: self.service.task_started(self.run, position),
            self.clock,
            "recording a task start",
        )
        self._pending = ""
        self._last_flush = time.monotonic()

    async def output(self, position: int, chunk: str) -> None:
        self._pending += chunk
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            pending, self._pending = self._pending, ""
            self._last_flush = now
            await persist(
                lambda: self.service.task_output(self.run, position, pending),
                self.clock,
                "recording output",
            )

    async def task_completed(self, position: int, output: str) -> None:
        pending, self._pending = self._pending, ""
        await persist(
            lambda: self.service.task_completed(self.run, position, output, pending),
            self.clock,
            "recording a task's end",
        )

    async def task_failed(self, position: int, error: str, output: str) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            await persist(
                lambda: self.service.task_output(self.run, position, pending),
                self.clock,
                "recording output",
            )
        await persist(
            lambda: self.service.task_failed(self.run, position, error, output),
            self.clock,
            "recording a task failure",
        )
