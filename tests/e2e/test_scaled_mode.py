"""The scaled mode end to end: API replicas and workers as real OS processes on one PostgreSQL.

Every test makes a fresh database, migrates it with `crewql migrate`, and starts `crewql serve`
(CREWQL_MODE=scaled, runner off) and `crewql worker` processes on it, with short timings, as an
operator would (tests/support/processes.py). Executions are launched and cancelled over HTTP and
watched over `WS /graphql` (graphql-transport-ws) on every replica, whichever replica launched them
and whichever worker runs them. What is checked is the scaled mode of docs/scaling.md and the
public contract of docs/executions.md across processes: no execution runs twice, every subscriber
on every replica gets every event gapless and in order, a killed worker's executions are CRASHED
within the lease, a lost bus connection delays events but loses none, cancellation reaches the
worker that runs the execution, and SIGTERM stops a worker gracefully.

Every wait is bounded; every process is SIGKILLed when its test ends, however it ends, and the tail
of every log is printed (pytest shows it for a failed test). Timings are printed too: run with
`-rP` to read them for passed tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import postgres_server_url
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient
from tests.support.operations import CANCEL_EXECUTION, CREATE_EXECUTION
from tests.support.processes import (
    CrewqlProcess,
    ScaledCluster,
    run_crewql,
    scaled_cluster,
    terminate_bus_connections,
)
from tests.support.ws_client import TRANSPORT_WS, GraphQLWebSocket

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]

LEASE = 3.0
HEARTBEAT = 0.5
REAPER = 0.5
GRACE = 3.0
CANCEL_TIMEOUT = 10.0

BASE_ENV: dict[str, str] = {
    "CREWQL_MODE": "scaled",
    "CREWQL_LOG_TO_FILES": "false",
    "CREWQL_LOG_LEVEL": "INFO",
    "CREWQL_LEASE_SECONDS": str(LEASE),
    "CREWQL_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT),
    "CREWQL_REAPER_INTERVAL_SECONDS": str(REAPER),
    "CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS": "0.05",
    "CREWQL_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    "CREWQL_CANCEL_TIMEOUT_SECONDS": str(CANCEL_TIMEOUT),
    # Polling only as a fallback: workers must learn of new work through the bus.
    "CREWQL_RUNNER_POLL_INTERVAL_SECONDS": "5",
    # Four processes share a PostgreSQL that other people use too.
    "CREWQL_DATABASE_POOL_SIZE": "4",
    # Authentication and its limits are another subject (they listen on 127.0.0.1 only).
    "CREWQL_AUTH_ENABLED": "false",
    "CREWQL_RATE_LIMIT_PER_SECOND": "0",
}

FAST_LLM = "simulated/delay=1,chunk=12"
RECV_TIMEOUT = 20.0  # one wait for one message; an execution may sit queued behind others

EVENT_FIELDS = "executionId seq type status taskPosition message data createdAt"
EVENTS = f"""
subscription Events($id: ID!) {{
  executionEvents(executionId: $id) {{ {EVENT_FIELDS} }}
}}"""
UPDATES = """
subscription Updates($filter: ExecutionUpdatesFilter) {
  executionUpdates(filter: $filter) { executionId seq type status message data }
}"""
EXECUTION = f"""
query Execution($id: ID!) {{
  execution(id: $id) {{
    id status lastSeq error
    tasks {{ position status }}
    events(first: 1000) {{ {EVENT_FIELDS} }}
  }}
}}"""

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

Event = dict[str, Any]


def report(line: str) -> None:
    """A measured figure, for the person reading `pytest -rP`."""
    print(f"[scaled] {line}")  # noqa: T201


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def pg_server() -> str:
    url = postgres_server_url()
    assert url is not None  # tests/conftest.py deselects this module without PostgreSQL
    return url


@pytest.fixture
async def cluster(
    pg_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ScaledCluster]:
    """A fresh migrated database; the test starts the processes it needs in it. When the test
    fails, the tail of every process's log is printed (pytest shows it with the failure)."""
    failed_before = request.session.testsfailed
    async with scaled_cluster(pg_server, tmp_path, BASE_ENV) as running:
        yield running
    if request.session.testsfailed > failed_before:
        print(running.logs())  # noqa: T201


# ----------------------------------------------------------------------------- the API


class Api:
    """Crews, launches, cancels and reads through one replica's public GraphQL API."""

    def __init__(self, replica: CrewqlProcess, http: httpx.AsyncClient) -> None:
        self.replica = replica
        self.client = GraphQLClient(http)

    @classmethod
    @contextlib.asynccontextmanager
    async def of(cls, replica: CrewqlProcess) -> AsyncIterator[Api]:
        async with httpx.AsyncClient(base_url=replica.url, trust_env=False, timeout=15) as http:
            yield cls(replica, http)

    async def crew(self, llm: str, tasks: int = 2) -> str:
        prefix = f"scaled-{uuid.uuid4().hex[:8]}"
        agent = await create_agent(self.client, f"{prefix} agent", llm=llm)
        task_ids: list[str] = []
        for i in range(tasks):
            task_ids.append(
                await create_task(
                    self.client,
                    f"{prefix} step {i}",
                    agent,
                    context=task_ids[-1:],
                    description=f"Step {i}: write about {{topic}}",
                )
            )
        return await create_crew(self.client, f"{prefix} crew", task_ids)

    async def launch(self, crew_id: str) -> str:
        data = await self.client.execute(
            CREATE_EXECUTION, {"input": {"crewId": crew_id, "inputs": {"topic": "scaling"}}}
        )
        result = data["createExecution"]
        assert result["__typename"] == "Execution", result
        assert result["status"] == "QUEUED"
        return str(result["id"])

    async def cancel(self, execution_id: str, force: bool) -> dict[str, Any]:
        data = await self.client.execute(CANCEL_EXECUTION, {"id": execution_id, "force": force})
        result: dict[str, Any] = data["cancelExecution"]
        return result

    async def execution(self, execution_id: str) -> dict[str, Any]:
        data = await self.client.execute(EXECUTION, {"id": execution_id})
        found: dict[str, Any] = data["execution"]
        assert found is not None, execution_id
        return found


# ----------------------------------------------------------------------------- watching


@dataclass
class Feed:
    """One subscription on a socket of its own, read in the background: what arrived and when
    (time.monotonic()), until the server completes it or the test leaves."""

    replica: str
    root: str
    items: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    ended_by: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    silent_for: float | None = None  # the reader gave up: no message for this many seconds

    async def read(self, ws: GraphQLWebSocket, op: str, within: float) -> None:
        try:
            async for message in ws.results(op, within=within):
                self.errors += message.errors
                if message.kind != "next":
                    self.ended_by = message.kind
                elif message.data is not None and message.data.get(self.root) is not None:
                    self.items.append(message.data[self.root])
                    self.arrived.append(time.monotonic())
                self.changed.set()
        except TimeoutError:
            self.silent_for = within
        finally:
            self.changed.set()

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within: float, what: str
    ) -> float:
        """Waits until `predicate(items)`; returns the arrival time of the latest item."""
        deadline = time.monotonic() + within
        while not predicate(self.items):
            if self.ended_by is not None:
                raise AssertionError(f"{self.replica}: feed ended before {what}: {self.errors}")
            if self.silent_for is not None:
                raise AssertionError(
                    f"{self.replica}: stopped reading after {self.silent_for:g}s without a "
                    f"message, before {what} ({len(self.items)} items)"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.replica}: no {what} within {within:g}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return self.arrived[-1] if self.arrived else time.monotonic()

    async def wait_end(self, within: float) -> None:
        await self.wait_for(lambda _: self.ended_by is not None, within, "the end")

    def arrival(self, execution_id: str, status: str) -> tuple[dict[str, Any], float]:
        """The first update (or event) of `execution_id` with `status`, and when it came."""
        for item, at in zip(self.items, self.arrived, strict=True):
            if item["executionId"] == execution_id and item["status"] == status:
                return item, at
        raise AssertionError(f"{self.replica}: no {status} for {execution_id}")


@contextlib.asynccontextmanager
async def feed(
    replica: CrewqlProcess,
    query: str,
    variables: dict[str, Any],
    root: str,
    within: float = RECV_TIMEOUT,
) -> AsyncIterator[Feed]:
    """A `Feed` of one subscription on `replica`, registered when this is entered (the first
    message of an `executionUpdates` feed may come much later: see `registered`)."""
    async with GraphQLWebSocket.connect(replica.ws_url, TRANSPORT_WS) as ws:
        result = Feed(replica.name, root)
        op = await ws.subscribe(query, variables)
        reader = asyncio.create_task(result.read(ws, op, within))
        try:
            yield result
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await reader


async def watch(replica: CrewqlProcess, execution_id: str) -> Feed:
    """A whole `executionEvents` subscription, until the server completes it."""
    # An execution sends nothing while it sits queued behind others (50 on 16 slots: a minute or
    # more on a loaded machine), so a message may take as long as the whole run.
    async with feed(replica, EVENTS, {"id": execution_id}, "executionEvents", 120) as events:
        await events.wait_end(120)
    return events


async def dashboard_registered(dashboards: Sequence[Feed], api: Api, crew: str) -> None:
    """Until every dashboard is registered on its replica's bus: an `executionUpdates`
    subscription sends nothing until a change, so one throwaway launch (cancelled while queued,
    or finished) must reach all of them first."""
    probe = await api.launch(crew)
    await api.cancel(probe, force=True)
    for board in dashboards:
        await board.wait_for(
            lambda items: any(i["executionId"] == probe and i["status"] in TERMINAL for i in items),
            RECV_TIMEOUT,
            "the probe's end",
        )


async def gather_bounded(jobs: Sequence[asyncio.Task[Feed]], within: float) -> list[Feed]:
    try:
        return await asyncio.wait_for(asyncio.gather(*jobs), within)
    finally:
        for job in jobs:
            job.cancel()


# ----------------------------------------------------------------------------- assertions


def seqs(events: Sequence[Event]) -> list[int]:
    return [int(e["seq"]) for e in events]


def assert_gapless(events: Sequence[Event], execution_id: str, last_type: str) -> None:
    assert events, execution_id
    assert seqs(events) == list(range(1, len(events) + 1)), (execution_id, seqs(events))
    assert {e["executionId"] for e in events} == {execution_id}
    assert events[0]["type"] == "EXECUTION_QUEUED"
    assert events[-1]["type"] == last_type, [e["type"] for e in events[-3:]]
    assert sum(e["status"] in TERMINAL and e["type"].startswith("EXECUTION_") for e in events) <= 1


def started_on(events: Sequence[Event]) -> str:
    """The worker an execution ran on, from its one EXECUTION_STARTED event."""
    started = [e for e in events if e["type"] == "EXECUTION_STARTED"]
    assert len(started) == 1, f"started {len(started)} times"
    return str(started[0]["data"]["worker"])


def assert_every_feed_has_the_stored_run(feeds: Sequence[Feed], stored: dict[str, Event]) -> None:
    for watched in feeds:
        assert watched.errors == [], (watched.replica, watched.errors)
        assert watched.ended_by == "complete", watched.replica
        execution_id = watched.items[0]["executionId"]
        assert watched.items == stored[execution_id]["events"], (
            f"{watched.replica}: the stream of {execution_id} differs from the stored events",
            seqs(watched.items),
        )


def statuses_of(items: Sequence[dict[str, Any]], execution_id: str) -> list[str]:
    return [str(i["status"]) for i in items if i["executionId"] == execution_id]


# ============================================================================ 1: many at once


async def test_fifty_executions_run_once_and_stream_gapless_on_both_replicas(
    cluster: ScaledCluster,
) -> None:
    a, b = cluster.start_replica(), cluster.start_replica()
    w1, w2 = cluster.start_worker(), cluster.start_worker()
    began = time.monotonic()
    await cluster.ready()
    report(f"2 replicas + 2 workers ready in {time.monotonic() - began:.1f}s")
    workers = {cluster.worker_id(w1), cluster.worker_id(w2)}

    async with Api.of(a) as api_a, Api.of(b) as api_b:
        crew = await api_a.crew(FAST_LLM, tasks=2)
        began = time.monotonic()
        ids: list[str] = []
        jobs: list[asyncio.Task[Feed]] = []
        for i in range(50):
            execution_id = await (api_a, api_b)[i % 2].launch(crew)
            ids.append(execution_id)
            jobs += [asyncio.create_task(watch(replica, execution_id)) for replica in (a, b)]
        feeds = await gather_bounded(jobs, 120)
        elapsed = time.monotonic() - began
        stored = {i: await (api_a, api_b)[n % 2].execution(i) for n, i in enumerate(ids)}

    assert_every_feed_has_the_stored_run(feeds, stored)
    ran_on: Counter[str] = Counter()
    for execution_id, execution in stored.items():
        assert execution["status"] == "COMPLETED", (execution_id, execution["error"])
        assert_gapless(execution["events"], execution_id, "EXECUTION_COMPLETED")
        worker = started_on(execution["events"])
        assert worker in workers
        ran_on[worker] += 1
    assert len(ran_on) == 2, f"one worker ran everything: {ran_on}"

    # The workers' own logs agree: each execution was started (and completed) by one process.
    logs = {w.name: w.log() for w in (w1, w2)}
    for execution_id in ids:
        runners = [name for name, log in logs.items() if f"execution {execution_id} (" in log]
        assert len(runners) == 1, (execution_id, runners)

    events = sum(len(e["events"]) for e in stored.values())
    waited = sorted(
        span(e["events"], "EXECUTION_QUEUED", "EXECUTION_STARTED") for e in stored.values()
    )
    ran = sorted(
        span(e["events"], "EXECUTION_STARTED", "EXECUTION_COMPLETED") for e in stored.values()
    )
    report(
        f"50 executions ({events} events, 100 subscribers) in {elapsed:.1f}s; "
        f"per worker {sorted(ran_on.values())}; queued {waited[25]:.1f}s median, "
        f"{waited[-1]:.1f}s max; ran {ran[25]:.1f}s median, {ran[-1]:.1f}s max"
    )


def span(events: Sequence[Event], start: str, end: str) -> float:
    """Seconds between the first events of two types (their stored timestamps)."""
    at = {e["type"]: datetime.fromisoformat(e["createdAt"]) for e in reversed(events)}
    return (at[end] - at[start]).total_seconds()


# ============================================================================ 2: a worker dies


@pytest.mark.parametrize("placement", ["one-host", "two-hosts"])
async def test_a_killed_workers_executions_are_crashed_within_the_lease(
    cluster: ScaledCluster, placement: str
) -> None:
    """SIGKILL leaves no trace but the lease. On the same host the other worker also sees that
    the process is gone (its pid), so it need not wait for the lease; a worker on another host
    (simulated: it reports another hostname) can only wait for the lease to expire."""
    hosts = (None, None) if placement == "one-host" else ("machine-a", "machine-b")
    a, b = cluster.start_replica(), cluster.start_replica()
    for host in hosts:
        cluster.start_worker(hostname=host, CREWQL_RUNNER_CONCURRENCY="4")
    await cluster.ready()

    async with Api.of(a) as api_a, Api.of(b) as api_b:
        crew = await api_a.crew("simulated/delay=3,chunk=12", tasks=2)
        async with feed(b, UPDATES, {"filter": {"crewId": crew}}, "executionUpdates") as board:
            await dashboard_registered([board], api_a, crew)
            ids = [await (api_a, api_b)[i % 2].launch(crew) for i in range(8)]
            jobs = [asyncio.create_task(watch(r, i)) for i in ids for r in (a, b)]
            # Concurrency 4 each, 8 executions: each worker runs four.
            await board.wait_for(
                lambda items: all("RUNNING" in statuses_of(items, i) for i in ids),
                RECV_TIMEOUT,
                "eight starts",
            )
            ran_on = {i: str(board.arrival(i, "RUNNING")[0]["data"]["worker"]) for i in ids}
            assert Counter(ran_on.values()).most_common()[0][1] == 4, ran_on
            await asyncio.sleep(1.0)  # a third into their first task

            victim = cluster.workers[0]
            lost = cluster.worker_id(victim)
            survivor = cluster.workers[1]
            killed_at = time.monotonic()
            victim.kill()
            mine = [i for i in ids if ran_on[i] == lost]
            theirs = [i for i in ids if ran_on[i] != lost]
            bound = LEASE + 2 * REAPER + 3
            await board.wait_for(
                lambda items: all("CRASHED" in statuses_of(items, i) for i in mine),
                bound + 2,
                "CRASHED for the killed worker's executions",
            )
            detected = {i: board.arrival(i, "CRASHED")[1] - killed_at for i in mine}
            feeds = await gather_bounded(jobs, 30)
        stored = {i: await api_b.execution(i) for i in ids}

    report(
        f"{placement}: killed worker's {len(mine)} executions CRASHED after "
        f"{min(detected.values()):.2f}..{max(detected.values()):.2f}s "
        f"(lease {LEASE:g}s, heartbeat {HEARTBEAT:g}s, reaper {REAPER:g}s)"
    )
    assert max(detected.values()) <= bound, detected
    if placement == "two-hosts":
        # Only the lease can tell: nothing may be CRASHED before it could have expired.
        assert min(detected.values()) >= LEASE - HEARTBEAT - 0.25, detected

    for execution_id in mine:
        execution = stored[execution_id]
        assert execution["status"] == "CRASHED"
        assert_gapless(execution["events"], execution_id, "EXECUTION_CRASHED")
        crashed = execution["events"][-1]
        assert crashed["data"]["worker"] == lost
        assert lost in crashed["message"]
        expected = "stopped before it finished" if placement == "one-host" else "renewing its lease"
        assert expected in crashed["message"], crashed["message"]
        assert execution["error"] == crashed["message"]
        assert [t["status"] for t in execution["tasks"]] == ["FAILED", "SKIPPED"]
    for execution_id in theirs:
        assert stored[execution_id]["status"] == "COMPLETED", stored[execution_id]["error"]
        assert_gapless(stored[execution_id]["events"], execution_id, "EXECUTION_COMPLETED")
    assert_every_feed_has_the_stored_run(feeds, stored)
    # The surviving worker did the reaping (API replicas run no runner), and it still runs.
    assert survivor.alive()
    reaped = await survivor.wait_for_log(
        r"marked (\d+) execution\(s\) of stopped runners", within=1
    )
    assert sum(int(m.group(1)) for m in reaped) == len(mine)


# ============================================================================ 3: the bus drops


async def test_subscribers_miss_nothing_when_the_bus_connection_drops(
    cluster: ScaledCluster,
) -> None:
    a, b = cluster.start_replica(), cluster.start_replica()
    cluster.start_worker()
    cluster.start_worker()
    await cluster.ready()

    async with Api.of(a) as api_a, Api.of(b) as api_b:
        crew = await api_a.crew("simulated/delay=2,chunk=12", tasks=3)
        filters = {"filter": {"crewId": crew}}
        async with (
            feed(a, UPDATES, filters, "executionUpdates") as board_a,
            feed(b, UPDATES, filters, "executionUpdates") as board_b,
        ):
            await dashboard_registered([board_a, board_b], api_b, crew)
            ids = [await (api_a, api_b)[i % 2].launch(crew) for i in range(8)]
            jobs = [asyncio.create_task(watch(r, i)) for i in ids for r in (a, b)]
            await board_a.wait_for(
                lambda items: all("RUNNING" in statuses_of(items, i) for i in ids),
                RECV_TIMEOUT,
                "eight starts",
            )
            await asyncio.sleep(0.5)

            # Replica A alone loses its listening connection, mid-run.
            cut = await terminate_bus_connections(cluster.database_url, [a])
            assert len(cut) == 1
            began = time.monotonic()
            await a.wait_for_log("event bus: listening again", within=10)
            report(f"replica A listening again {time.monotonic() - began:.2f}s after the cut")
            assert "listening connection lost" not in b.log(), "the cut was not targeted"

            await asyncio.sleep(1.0)
            # Then every process on this database at once (both replicas and both workers).
            cut = await terminate_bus_connections(cluster.database_url)
            assert len(cut) == 4, cut
            for process in cluster.processes:
                again = 2 if process is a else 1
                await process.wait_for_log("event bus: listening again", within=10, count=again)

            feeds = await gather_bounded(jobs, 60)
            for board in (board_a, board_b):
                await board.wait_for(
                    lambda items: all("COMPLETED" in statuses_of(items, i) for i in ids),
                    RECV_TIMEOUT,
                    "every COMPLETED update",
                )
        stored = {i: await api_b.execution(i) for i in ids}

    for execution_id, execution in stored.items():
        assert execution["status"] == "COMPLETED", execution["error"]
        assert_gapless(execution["events"], execution_id, "EXECUTION_COMPLETED")
    assert_every_feed_has_the_stored_run(feeds, stored)
    for board in (board_a, board_b):
        for execution_id in ids:
            seen = [i["seq"] for i in board.items if i["executionId"] == execution_id]
            # In order; a change may arrive twice after a resync, but none is missing.
            assert seen == sorted(seen), (board.replica, seen)
            assert statuses_of(board.items, execution_id)[-1] == "COMPLETED"
        duplicates = len(board.items) - len({(i["executionId"], i["seq"]) for i in board.items})
        report(f"dashboard on {board.replica}: {len(board.items)} updates, {duplicates} repeated")


# ============================================================================ 4: cancellation


async def test_cancel_on_one_replica_reaches_the_worker_promptly(cluster: ScaledCluster) -> None:
    a, b = cluster.start_replica(), cluster.start_replica()
    cluster.start_worker()
    await cluster.ready()

    async with Api.of(a) as api_a, Api.of(b) as api_b:
        chatty = await api_b.crew("simulated/delay=30,chunk=4", tasks=1)  # a chunk every ~0.4s
        # One chunk after 30 s: graceful cancellation has no point to stop at.
        stubborn = await api_b.crew("simulated/delay=30,chunk=100000", tasks=1)
        graceful_id = await api_b.launch(chatty)
        escalated_id = await api_b.launch(stubborn)
        forced_id = await api_b.launch(stubborn)

        async with (
            feed(b, EVENTS, {"id": graceful_id}, "executionEvents") as graceful,
            feed(b, EVENTS, {"id": escalated_id}, "executionEvents") as escalated,
            feed(b, EVENTS, {"id": forced_id}, "executionEvents") as forced,
        ):
            await graceful.wait_for(
                lambda items: any(i["type"] == "TASK_OUTPUT" for i in items),
                RECV_TIMEOUT,
                "output",
            )
            for started in (escalated, forced):
                await started.wait_for(
                    lambda items: any(i["type"] == "TASK_STARTED" for i in items),
                    RECV_TIMEOUT,
                    "a started task",
                )

            def ended(items: list[dict[str, Any]]) -> bool:
                return bool(items) and items[-1]["type"] == "EXECUTION_CANCELLED"

            asked = time.monotonic()
            answer = await api_a.cancel(graceful_id, force=False)
            assert answer["status"] == "CANCELLING", answer
            graceful_took = await graceful.wait_for(ended, 15, "CANCELLED") - asked

            asked = time.monotonic()
            answer = await api_a.cancel(forced_id, force=True)
            assert answer["status"] == "CANCELLING", answer
            forced_took = await forced.wait_for(ended, 15, "CANCELLED") - asked

            answer = await api_a.cancel(escalated_id, force=False)
            assert answer["status"] == "CANCELLING", answer
            await asyncio.sleep(1.5)
            assert not ended(escalated.items), "graceful cancellation stopped a single chunk?"
            assert escalated.items[-1]["type"] == "EXECUTION_CANCELLING"
            asked = time.monotonic()
            answer = await api_a.cancel(escalated_id, force=True)
            assert answer["status"] == "CANCELLING", answer
            escalated_took = await escalated.wait_for(ended, 15, "CANCELLED") - asked

            for done in (graceful, escalated, forced):
                await done.wait_end(5)
        stored = {i: await api_a.execution(i) for i in (graceful_id, escalated_id, forced_id)}

    report(
        f"cancel on A -> CANCELLED on the worker: graceful {graceful_took:.2f}s, "
        f"forced {forced_took:.2f}s, graceful-then-forced {escalated_took:.2f}s"
    )
    # No timed assertion: each wait above is bounded well inside the 30 s the simulated model
    # takes, and the worker learns of cancellations only through the bus (it does not poll), so
    # reaching CANCELLED at all proves the request crossed from replica A to the worker. The
    # figures are reported for people reading the run.

    def tail(execution_id: str) -> list[tuple[str, Any, str]]:
        return [
            (e["type"], e["data"].get("force"), e["message"])
            for e in stored[execution_id]["events"]
            if e["type"] in ("EXECUTION_CANCELLING", "EXECUTION_CANCELLED")
        ]

    assert tail(graceful_id) == [
        ("EXECUTION_CANCELLING", False, "Cancellation requested (graceful)."),
        ("EXECUTION_CANCELLED", None, "Cancelled on request."),
    ]
    assert tail(forced_id) == [
        ("EXECUTION_CANCELLING", True, "Cancellation requested (forced)."),
        ("EXECUTION_CANCELLED", None, "Cancelled on request (forced)."),
    ]
    assert tail(escalated_id) == [
        ("EXECUTION_CANCELLING", False, "Cancellation requested (graceful)."),
        ("EXECUTION_CANCELLING", True, "Cancellation forced."),
        ("EXECUTION_CANCELLED", None, "Cancelled on request (forced)."),
    ]
    for execution_id, watched in (
        (graceful_id, graceful),
        (escalated_id, escalated),
        (forced_id, forced),
    ):
        execution = stored[execution_id]
        assert execution["status"] == "CANCELLED"
        assert_gapless(execution["events"], execution_id, "EXECUTION_CANCELLED")
        assert watched.items == execution["events"]
        assert [t["status"] for t in execution["tasks"]] == ["CANCELLED"]


# ============================================================================ 5: dashboards


async def test_a_dashboard_on_one_replica_sees_executions_launched_on_the_other(
    cluster: ScaledCluster,
) -> None:
    a, b = cluster.start_replica(), cluster.start_replica()
    cluster.start_worker()
    await cluster.ready()

    async with Api.of(a) as api_a:
        good = await api_a.crew("simulated/delay=0.5,chunk=12", tasks=1)
        bad = await api_a.crew("simulated/fail,delay=0.5,chunk=12", tasks=1)
        async with (
            feed(b, UPDATES, {"filter": {"crewId": good}}, "executionUpdates") as by_crew,
            feed(
                b, UPDATES, {"filter": {"statuses": ["FAILED", "CANCELLED"]}}, "executionUpdates"
            ) as failures,
        ):
            await dashboard_registered([by_crew, failures], api_a, good)
            probes, probe_failures = len(by_crew.items), len(failures.items)
            launched = time.monotonic()
            goods = [await api_a.launch(good) for _ in range(3)]
            failing = await api_a.launch(bad)
            await by_crew.wait_for(
                lambda items: all("COMPLETED" in statuses_of(items, i) for i in goods),
                RECV_TIMEOUT,
                "three COMPLETED",
            )
            await failures.wait_for(
                lambda items: any(i["executionId"] == failing for i in items),
                RECV_TIMEOUT,
                "FAILED",
            )
            took = time.monotonic() - launched
            first_seen = by_crew.arrived[probes] - launched

    report(f"dashboard on B: first update {first_seen:.2f}s after the launch on A; all {took:.1f}s")
    for execution_id in goods:
        assert statuses_of(by_crew.items, execution_id) == ["QUEUED", "RUNNING", "COMPLETED"]
    assert {i["executionId"] for i in by_crew.items[probes:]} == set(goods)
    assert [(i["executionId"], i["type"]) for i in failures.items[probe_failures:]] == [
        (failing, "EXECUTION_FAILED")
    ]


# ============================================================================ 6: no SQLite


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("database", ["sqlite-url", "default"])
def test_scaled_mode_refuses_sqlite(tmp_path: Path, command: str, database: str) -> None:
    env = {"CREWQL_MODE": "scaled", "CREWQL_LOG_TO_FILES": "false"}
    if database == "sqlite-url":
        env["CREWQL_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'scaled.db'}"
    done = run_crewql([command], env, tmp_path, timeout=30)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("crewql: invalid setting"), lines
    assert "CREWQL_MODE=scaled needs PostgreSQL" in lines[0]
    assert "CREWQL_DATABASE_URL" in lines[0]
    assert list(tmp_path.iterdir()) == [], "it touched a database before refusing"


# ============================================================================ 7: SIGTERM


async def test_sigterm_stops_a_worker_gracefully(cluster: ScaledCluster) -> None:
    replica = cluster.start_replica()
    worker = cluster.start_worker()
    await cluster.ready()

    async with Api.of(replica) as api:
        short = await api.crew("simulated/delay=1,chunk=12", tasks=1)
        long = await api.crew("simulated/delay=30,chunk=12", tasks=1)
        async with feed(replica, UPDATES, {}, "executionUpdates") as board:
            await dashboard_registered([board], api, short)
            finishing = await api.launch(short)
            cut_short = await api.launch(long)
            await board.wait_for(
                lambda items: (
                    {finishing, cut_short}
                    <= {i["executionId"] for i in items if i["status"] == "RUNNING"}
                ),
                RECV_TIMEOUT,
                "both running",
            )
            mark = worker.log_size()
            signalled = time.monotonic()
            worker.send(signal.SIGTERM)
            await worker.wait_for_log("stopping", within=5, since=mark)
            late = await api.launch(short)  # launched while the worker drains

            code = await worker.wait_exit(GRACE + 10)
            exited = time.monotonic() - signalled
            await board.wait_for(
                lambda items: "CANCELLED" in statuses_of(items, cut_short),
                RECV_TIMEOUT,
                "CANCELLED",
            )
            cancelled_at = board.arrival(cut_short, "CANCELLED")[1]
        stored = {i: await api.execution(i) for i in (finishing, cut_short, late)}

    report(
        f"SIGTERM: the long execution CANCELLED {cancelled_at - signalled:.2f}s later "
        f"(grace {GRACE:g}s); the worker exited {exited:.2f}s after the signal"
    )
    assert code == 0, worker.tail()
    assert stored[finishing]["status"] == "COMPLETED", "it had time to finish within the grace"
    long_run = stored[cut_short]
    assert long_run["status"] == "CANCELLED"
    assert long_run["error"] == (
        f"Cancelled: the server shut down and the {GRACE:g}s grace period ran out."
    )
    assert_gapless(long_run["events"], cut_short, "EXECUTION_CANCELLED")
    assert GRACE - 0.5 <= cancelled_at - signalled <= GRACE + 3
    assert stored[late]["status"] == "QUEUED", "a stopping worker claimed new work"
    log = worker.log()[mark:]
    assert re.search(r"waiting up to [\d.]+s for 2 execution\(s\)", log), log
    assert log.rstrip().endswith("crewql worker stopped")


# ============================================================================ a tool-using crew


async def test_a_worker_runs_a_crew_whose_agent_calls_a_tool(cluster: ScaledCluster) -> None:
    """The agent runtime in a `crewql worker`: a scripted simulated model calls `current_time`,
    the tool's events reach the API replica's readers in order with the rest."""
    replica = cluster.start_replica()
    worker = cluster.start_worker()
    await cluster.ready()
    async with Api.of(replica) as api:
        agent = await create_agent(
            api.client,
            "scaled clerk",
            llm="simulated/call=current_time,call=current_time,delay=0.2",
            tools=["current_time"],
        )
        task = await create_task(api.client, "scaled time", agent, description="Time in {topic}")
        execution_id = await api.launch(await create_crew(api.client, "scaled clock", [task]))
        deadline = time.monotonic() + 60
        found = await api.execution(execution_id)
        while found["status"] not in TERMINAL and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            found = await api.execution(execution_id)
    assert found["status"] == "COMPLETED", found["error"]
    events = found["events"]
    assert_gapless(events, execution_id, "EXECUTION_COMPLETED")
    assert started_on(events) == cluster.worker_id(worker)
    kinds = [e["type"] for e in events if e["type"].startswith(("TOOL_CALL_", "LLM_REQUEST"))]
    assert kinds == ["LLM_REQUEST", "TOOL_CALL_STARTED", "TOOL_CALL_COMPLETED"] * 2 + [
        "LLM_REQUEST"
    ]
    assert {e["data"]["tool"] for e in events if e["type"] == "TOOL_CALL_COMPLETED"} == {
        "current_time"
    }
