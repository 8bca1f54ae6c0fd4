"""The embedded runner: claims QUEUED executions and runs them, at most N at once.

Started and stopped by the application's lifespan. It keeps a strong reference to every task it
starts (asyncio only keeps weak ones), records heartbeats, and reports everything through
ExecutionLifecycle. Cancellation: graceful requests are seen by the engine at its next await point;
forced ones (or graceful ones that outlive `cancel_timeout_seconds`) cancel the asyncio task.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from loguru import logger

from backend.config.settings import Settings
from backend.core.usage import Usage
from backend.observability import metrics, tracing
from backend.observability.tracing import ExecutionTrace
from backend.runner.agent.usage import Budget
from backend.runner.claim_gate import ClaimGate
from backend.runner.engine import AwaitingInput, Cancelled, Job, SequentialEngine, TaskFailed
from backend.runner.presence import Presence
from backend.runner.reporter import CancelState, ExecutionReporter
from backend.runner.resilience import LeaseClock, level_of, persist
from backend.runner.worker_ids import make_worker_id, stopped_local_worker
from backend.services.execution_input import HumanInput
from backend.services.execution_lifecycle import ExecutionGone, ExecutionLifecycle, RunHandle


@dataclass
class _Running:
    run: RunHandle
    task: asyncio.Task[None]
    cancel: CancelState
    force_timer: asyncio.TimerHandle | None = None


INTERNAL_FAILURE = "internal error; the server log has the details (execution {})"


class Runner:
    def __init__(
        self,
        service: ExecutionLifecycle,
        engine: SequentialEngine,
        settings: Settings,
        inputs: HumanInput,
        worker_id: str | None = None,
    ) -> None:
        self.service = service
        self.inputs = inputs
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id or make_worker_id()
        self._running: dict[uuid.UUID, _Running] = {}
        self._early_cancels: dict[uuid.UUID, bool] = {}
        self._wakeup = asyncio.Event()
        self._has_work = asyncio.Event()  # set when an execution starts (the heartbeats' cue)
        self._claim_now = True  # the first pass claims; then wake() asks for a claim
        self.gate = ClaimGate(settings.runner_poll_interval_seconds, service.bus.peers, self.wake)
        # Other runners share the bus (scaled mode): claim on turns (runner/claim_gate.py).
        self._shared = service.bus.peers() is not None
        self.presence = Presence(service.bus, self.worker_id, self._available)
        self._stopping = False
        self._background: list[asyncio.Task[None]] = []
        self.clock = LeaseClock(settings.lease_seconds)

    # ------------------------------------------------------------ signals (from the bus)

    def wake(self) -> None:
        """Claim now (new work, or the bus may have missed some)."""
        self._claim_now = True
        self._wakeup.set()

    def turn(self, _execution_id: uuid.UUID) -> None:
        """The bus says this runner may claim a queued execution now (its turn)."""
        self.gate.turn(self._available())

    def cancel(self, execution_id: uuid.UUID, force: bool) -> None:
        running = self._running.get(execution_id)
        if running is None:
            # Perhaps claimed a moment ago and not started yet: remember it for `_start`.
            self._early_cancels[execution_id] = force or self._early_cancels.get(
                execution_id, False
            )
            while len(self._early_cancels) > 10_000:
                self._early_cancels.pop(next(iter(self._early_cancels)))
            return
        if force:
            self._force(execution_id, "Cancelled on request (forced).")
            return
        running.cancel.requested = True
        if running.force_timer is None:
            timeout = self.settings.cancel_timeout_seconds
            running.force_timer = asyncio.get_running_loop().call_later(
                timeout,
                self._force,
                execution_id,
                f"Cancelled: it did not stop within {timeout:g}s, so it was forced.",
            )

    def _force(self, execution_id: uuid.UUID, reason: str) -> None:
        running = self._running.get(execution_id)
        if running is None:
            return
        running.cancel.requested = True
        running.cancel.forced = True
        running.cancel.reason = reason
        running.task.cancel()

    # ------------------------------------------------------------ lifecycle

    @property
    def active(self) -> int:
        return len(self._running)

    def _available(self) -> bool:
        return not self._stopping and self.active < self.settings.runner_concurrency

    async def start(self) -> None:
        """Recovers what an earlier process left running, then claims work in the background.

        Never raises: a database that is unreachable or not migrated yet is retried with
        backoff (and reported by /readyz), so the API still starts.
        """
        try:
            await self.reap()
        except Exception as exc:
            logger.log(level_of(exc), "runner could not check for crashed executions yet: {}", exc)
        metrics.runner_slots(capacity=self.settings.runner_concurrency)
        self.service.bus.on_turn(self.turn)
        await self.presence.announce()
        self._background = [
            asyncio.create_task(self._claim_loop(), name="runner-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="runner-heartbeat"),
            asyncio.create_task(self._reaper_loop(), name="runner-reaper"),
            asyncio.create_task(self._control_loop(), name="runner-control"),
        ]
        if self._shared:
            self._background.append(
                asyncio.create_task(self.presence.run(), name="runner-presence")
            )
        logger.info(
            "runner {} started: up to {} executions at once",
            self.worker_id,
            self.settings.runner_concurrency,
        )

    async def stop(self) -> None:
        """Stops claiming, lets running executions finish within the grace period, then
        cancels the rest with a reason that says why."""
        self._stopping = True
        # Heartbeats go on while running executions drain: a grace period longer than the lease
        # would otherwise let another worker's reaper mark them CRASHED.
        heartbeat = [t for t in self._background if t.get_name() == "runner-heartbeat"]
        stopped = [t for t in self._background if t not in heartbeat]
        for task in stopped:
            task.cancel()
        await asyncio.gather(*stopped, return_exceptions=True)
        await self.presence.depart()  # the others stop giving it turns and reaping falls to another
        grace = self.settings.shutdown_grace_seconds
        if self._running:
            logger.info("waiting up to {}s for {} execution(s)", grace, len(self._running))
            tasks = [r.task for r in self._running.values()]
            await asyncio.wait(tasks, timeout=grace)
        for execution_id in list(self._running):
            self._force(
                execution_id,
                f"Cancelled: the server shut down and the {grace:g}s grace period ran out.",
            )
        remaining = [r.task for r in self._running.values()]
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
        for task in heartbeat:
            task.cancel()
        await asyncio.gather(*heartbeat, return_exceptions=True)
        if self._background:
            metrics.runner_slots(capacity=-self.settings.runner_concurrency)
        logger.info("runner {} stopped", self.worker_id)

    # ------------------------------------------------------------ loops

    async def _claim_loop(self) -> None:
        backoff = 0.5
        while not self._stopping:
            self._wakeup.clear()
            free = self.settings.runner_concurrency - len(self._running)
            claimed: list[RunHandle] = []
            asked, self._claim_now = self._claim_now, False
            # A freed slot or a poll claims only if something may be waiting (claim_gate.py).
            if free > 0 and (asked or not self._shared or self.gate.worth_claiming()):
                try:
                    claimed = await self.service.claim(self.worker_id, free)
                    self.gate.claimed(len(claimed), free)
                    if claimed:
                        self.clock.renewed()  # a claim writes the lease, as a heartbeat does
                    backoff = 0.5
                except Exception as exc:
                    logger.log(
                        level_of(exc),
                        "claiming queued executions failed ({}); retrying in {}s",
                        exc,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    self._claim_now = True
                    continue
                for run in claimed:
                    self._start(run)
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)  # maybe more queued: go again once a slot frees
                if len(self._running) < self.settings.runner_concurrency:
                    continue
            idle = self.settings.runner_poll_interval_seconds
            if self._shared:
                idle = self.gate.idle_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=idle)

    async def reap(self) -> int:
        """Marks CRASHED what stopped runners left, and ends the waits for human input whose
        deadline passed (no runner holds a waiting execution, so every runner looks)."""
        crashed = await self.service.reap(stopped_local_worker(self.worker_id))
        metrics.executions_reaped(crashed)
        if crashed:
            logger.warning("marked {} execution(s) of stopped runners CRASHED", crashed)
        ended = await self.inputs.expire_waits()
        if ended:
            logger.info("ended {} wait(s) for human input at their deadline", ended)
            self.wake()  # an approval by timeout queued work
        return crashed

    async def _control_loop(self) -> None:
        """Cancels what a request asks to cancel, whichever process the request came to, and
        claims at once after the bus may have lost turns."""
        while not self._stopping:
            try:
                async with self.service.runner_feed() as feed:
                    while not self._stopping:
                        batch = await feed.next_batch()
                        if feed.take_missed() is not None:
                            self.gate.missed()
                            self.wake()
                            await self._recheck_cancellations()
                        for item in batch:  # cancellation requests (runner_feed)
                            if item.execution_id in self._running:
                                self.cancel(item.execution_id, item.force)
            except Exception as exc:
                logger.log(level_of(exc), "runner control feed failed ({}); resubscribing", exc)
                await asyncio.sleep(1)

    async def _recheck_cancellations(self) -> None:
        """After the bus lost messages: ask the database which running executions were asked
        to stop. Retried until it succeeds, with the feed still subscribed: the database that
        dropped the bus's connection has often dropped the pooled ones too, and giving up (or
        leaving the feed) would lose the cancellations requested meanwhile."""
        backoff = 0.2
        while not self._stopping:
            try:
                for execution_id, running in list(self._running.items()):
                    requested, force = await self.service.cancel_requested(running.run)
                    if requested:
                        self.cancel(execution_id, force)
                return
            except Exception as exc:
                logger.warning("checking for cancellations failed ({}); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _reaper_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.reaper_interval_seconds)
            if not self.presence.reaps_here():
                continue
            try:
                await self.reap()
            except Exception as exc:
                logger.log(level_of(exc), "looking for crashed executions failed: {}", exc)

    async def _heartbeat_loop(self) -> None:
        while True:  # until stop() cancels it, after the last execution ended
            if not self._running:
                # Nothing to renew: sleep until an execution starts, not a wake-up an interval.
                self._has_work.clear()
                await self._has_work.wait()
            await asyncio.sleep(self.settings.heartbeat_interval_seconds)
            if not self._running:
                continue
            try:
                await self.service.heartbeat(self.worker_id, list(self._running))
                self.clock.renewed()
            except Exception as exc:
                logger.log(level_of(exc), "recording heartbeats failed: {}", exc)

    # ------------------------------------------------------------ one execution

    def _start(self, run: RunHandle) -> None:
        cancel = CancelState()
        # Every log line of the run says which execution and worker it belongs to (the task
        # copies the context as it is here).
        with logger.contextualize(execution_id=str(run.id), worker_id=self.worker_id):
            task = asyncio.create_task(self._execute(run, cancel), name=f"execution-{run.id}")
        self._running[run.id] = _Running(run, task, cancel)
        self._has_work.set()
        if self.active == self.settings.runner_concurrency:
            self.presence.changed()
        metrics.runner_slots(busy=1)
        task.add_done_callback(lambda _: metrics.runner_slots(busy=-1))
        if run.id in self._early_cancels:
            self.cancel(run.id, self._early_cancels.pop(run.id))

    async def _execute(self, run: RunHandle, cancel: CancelState) -> None:
        crew = run.config.name
        with tracing.execution_run(str(run.id), run.name, crew, run.traceparent) as trace:
            await self._run(run, cancel, trace)

    async def _run(self, run: RunHandle, cancel: CancelState, trace: ExecutionTrace) -> None:
        reporter = ExecutionReporter(
            self.service, run, cancel, self.settings.output_flush_interval_seconds, self.clock
        )
        reporter.trace = trace
        clock = self.clock
        try:
            logger.info("execution {} ({}) started", run.id, run.name)
            try:
                job = Job(
                    run.workspace_id,
                    run.config,
                    run.inputs,
                    Budget(run.max_tokens, run.max_cost_usd),
                    run.resume,
                    {p: Usage(**u.model_dump()) for p, u in run.used.items()},
                )
                result = await self.engine.run(job, reporter)
                steps = reporter.take_pending()
                await persist(
                    lambda: self.service.complete(run, result, steps), clock, "completing"
                )
                logger.info("execution {} completed", run.id)
                trace.finished("COMPLETED")
            except AwaitingInput as wait:
                # The run ends here and its slot frees; a response queues it again.
                position, steps = wait.position, reporter.take_pending()
                await persist(
                    lambda: self.service.await_input(run, position, steps), clock, "waiting"
                )
                logger.info("execution {} waits for input on task {}", run.id, position)
                trace.finished("WAITING_FOR_INPUT")
            except Cancelled as stop:
                reason, steps = str(stop), reporter.take_pending()
                await persist(
                    lambda: self.service.cancelled(run, reason, steps), clock, "cancelling"
                )
                logger.info("execution {} cancelled: {}", run.id, stop)
                trace.finished("CANCELLED")
            except asyncio.CancelledError:
                if not cancel.forced:
                    raise
                # Our own forced cancellation: record it, and let the task end normally.
                steps = reporter.take_pending()
                await persist(
                    lambda: self.service.cancelled(run, cancel.reason, steps), clock, "cancelling"
                )
                logger.info("execution {} cancelled: {}", run.id, cancel.reason)
                trace.finished("CANCELLED")
            except TaskFailed as failure:
                error, steps = str(failure), reporter.take_pending()
                code, data = failure.code, failure.data
                await persist(
                    lambda: self.service.fail(run, error, steps, code=code, data=data),
                    clock,
                    "failing",
                )
                logger.info("execution {} failed: {}", run.id, failure)
                trace.finished("FAILED", error)
        except ExecutionGone as gone:
            logger.info("execution {} stopped: {}", run.id, gone.message)
        except Exception as exc:
            logger.exception("execution {} broke: {!r}", run.id, exc)
            with contextlib.suppress(ExecutionGone):
                # The class and text of a bug are for the log (with the execution id to find
                # them), never for the API: they may name drivers, tables or values.
                await self.service.fail(run, INTERNAL_FAILURE.format(run.id))
        finally:
            reporter.close()
            running = self._running.pop(run.id, None)
            if running is not None and running.force_timer is not None:
                running.force_timer.cancel()
            if self.active == self.settings.runner_concurrency - 1:
                self.presence.changed()
            self._wakeup.set()  # a slot freed: claims if something may be waiting
