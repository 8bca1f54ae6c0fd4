"""Watching executions over real websockets, against a real uvicorn server with its runner on.

Crews are made and launched over HTTP (httpx) and watched over `WS /graphql` with the
`websockets` library, in both subscription protocols, on SQLite and (when reachable) PostgreSQL.
What is checked is the public contract of docs/executions.md: `executionEvents` delivers every
event in order, gapless and without duplicates, across reconnects (`after`), and completes after
the terminal event; `executionUpdates` is a filtered status feed; errors come back promptly as
GraphQL errors; and every subscriber the server registered is released when its client leaves,
whichever way it leaves.

The server runs in its own thread and event loop (`module_live_server`, tests/conftest.py), so
every wait here has a timeout: a server that stops answering fails a test, it never hangs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from backend.events.bus import Subscription
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.operations import CANCEL_EXECUTION, CREATE_EXECUTION
from tests.support.ws_client import (
    LEGACY_WS,
    PROTOCOLS,
    TRANSPORT_WS,
    GraphQLWebSocket,
    OperationMessage,
    OperationResult,
    Protocol,
)

# About 0.3 s per task in ~50 chunks; with a 20 ms output flush that is a few dozen events per run.
FAST_LLM = "simulated/delay=0.3,chunk=6"
# Long enough that a test can act while it runs; those tests cancel it.
SLOW_LLM = "simulated/delay=6,chunk=6"
FAILING_LLM = "simulated/fail,delay=0.1,chunk=6"

RECV_TIMEOUT = 10.0
PROMPT = 3.0  # what "promptly" means for an error answer

EVENT_FIELDS = "executionId seq type status taskPosition message data createdAt"
EVENTS = f"""
subscription Events($id: ID!, $after: Int) {{
  executionEvents(executionId: $id, after: $after) {{ {EVENT_FIELDS} }}
}}"""
UPDATES = """
subscription Updates($filter: ExecutionUpdatesFilter) {
  executionUpdates(filter: $filter) { executionId seq type status }
}"""
EXECUTION = f"""
query Execution($id: ID!) {{
  execution(id: $id) {{
    id status lastSeq result error
    tasks {{ position name status output }}
    events(first: 1000) {{ {EVENT_FIELDS} }}
  }}
}}"""

TERMINAL_TYPES = {
    "EXECUTION_COMPLETED",
    "EXECUTION_FAILED",
    "EXECUTION_CANCELLED",
    "EXECUTION_CRASHED",
}

Event = dict[str, Any]
# What a task's agent run reports between TASK_STARTED and TASK_COMPLETED (docs/executions.md).
WITHIN_A_TASK = {
    "TASK_OUTPUT",
    "LLM_REQUEST",
    "TOOL_CALL_STARTED",
    "TOOL_CALL_COMPLETED",
    "TOOL_CALL_FAILED",
}


SERVER_SETTINGS: dict[str, Any] = {
    "output_flush_interval_seconds": 0.02,  # many TASK_OUTPUT events: more to lose
    "runner_poll_interval_seconds": 0.2,
    "shutdown_grace_seconds": 2.0,
    "log_level": "WARNING",
}


@pytest.fixture(scope="module")
def live_server_overrides() -> dict[str, Any]:
    return dict(SERVER_SETTINGS)


@pytest.fixture
async def server(module_live_server: LoopLiveServer) -> AsyncIterator[LoopLiveServer]:
    """The module's server, checked idle before each test and left idle after it."""
    await wait_for_subscribers(module_live_server, 0)
    yield module_live_server
    await wait_until(lambda: runner_active(module_live_server), 0, within=15)


@pytest.fixture
async def api(server: LoopLiveServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http:
        yield Api(GraphQLClient(http))


# ----------------------------------------------------------------------------- helpers


class Api:
    """The HTTP side: crews, launches, cancels and reads, through the public GraphQL API."""

    def __init__(self, client: GraphQLClient) -> None:
        self.client = client

    async def crew(self, llm: str = FAST_LLM, tasks: int = 3) -> str:
        """A crew of `tasks` tasks for one agent; each task's text uses `{topic}`."""
        prefix = f"ws-{uuid.uuid4().hex[:8]}"
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
                    expectedOutput=f"Notes {i} on {{topic}}",
                )
            )
        return await create_crew(self.client, f"{prefix} crew", task_ids)

    async def launch(self, crew_id: str, topic: str = "websocket delivery") -> str:
        data = await self.client.execute(
            CREATE_EXECUTION, {"input": {"crewId": crew_id, "inputs": {"topic": topic}}}
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
        assert found is not None
        return found

    async def wait_finished(self, execution_id: str, within: float = 15) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = await self.execution(execution_id)
            if found["status"] in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
                return found
            assert loop.time() < deadline, f"execution still {found['status']} after {within}s"
            await asyncio.sleep(0.05)


async def wait_until(
    probe: Callable[[], Awaitable[object]], expected: object, within: float = 5.0
) -> None:
    """Polls `probe()` until it returns `expected` (cleanup on the server is asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value == expected:
            return
        assert loop.time() < deadline, f"still {value!r}, expected {expected!r} after {within}s"
        await asyncio.sleep(0.02)


async def subscriber_count(server: LoopLiveServer) -> int:
    return await server.call(lambda: int(server.app.state.services.bus.subscriber_count))


async def runner_active(server: LoopLiveServer) -> int:
    return await server.call(lambda: int(server.app.state.runner.active))


async def wait_for_subscribers(server: LoopLiveServer, count: int, within: float = 5.0) -> None:
    await wait_until(lambda: subscriber_count(server), count, within)


async def watch(
    server: LoopLiveServer, protocol: Protocol, execution_id: str, after: int | None = None
) -> OperationResult:
    """A whole `executionEvents` subscription on a socket of its own."""
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        op = await ws.subscribe(EVENTS, {"id": execution_id, "after": after})
        result = await ws.collect(op, within=RECV_TIMEOUT)
    assert result.errors == [], result.errors
    assert result.ended_by == "complete"
    return result


async def assert_socket_serves(
    server: LoopLiveServer, ws: GraphQLWebSocket, already: int = 0
) -> None:
    """Another operation on `ws` starts and stops: the socket was not left hanging.

    A subscription, because Strawberry's legacy graphql-ws handler runs nothing else.
    """
    op = await ws.subscribe(UPDATES, {"filter": {"statuses": ["CRASHED"]}})
    await wait_for_subscribers(server, already + 1)
    await ws.stop(op)
    await wait_for_subscribers(server, already)


def seqs(events: list[Event]) -> list[int]:
    return [int(e["seq"]) for e in events]


def assert_completed_run(events: list[Event], execution_id: str, tasks: int = 3) -> None:
    """A whole completed run: seq 1..N, lifecycle order, and each task's events in order."""
    assert seqs(events) == list(range(1, len(events) + 1))
    assert {e["executionId"] for e in events} == {execution_id}
    types = [e["type"] for e in events]
    assert types[:2] == ["EXECUTION_QUEUED", "EXECUTION_STARTED"], types
    assert types[-1] == "EXECUTION_COMPLETED"
    assert [e["status"] for e in events[:2]] == ["QUEUED", "RUNNING"]
    assert events[-1]["status"] == "COMPLETED"
    assert all(e["status"] == "RUNNING" for e in events[1:-1])
    assert sum(t in TERMINAL_TYPES for t in types) == 1
    task_events = [(e["taskPosition"], e["type"]) for e in events if e["taskPosition"] is not None]
    for position in range(tasks):
        own = [t for p, t in task_events if p == position]
        assert own[0] == "TASK_STARTED", own
        assert own[-1] == "TASK_COMPLETED", own
        assert set(own[1:-1]) <= WITHIN_A_TASK, own
    positions = [p for p, _ in task_events]
    assert positions == sorted(positions), "tasks ran out of order"


def outputs_by_task(events: list[Event]) -> dict[int, str]:
    text: dict[int, str] = {}
    for event in events:
        if event["type"] == "TASK_OUTPUT":
            position = int(event["taskPosition"])
            text[position] = text.get(position, "") + event["data"]["text"]
    return text


# ----------------------------------------------------------------------------- 1, 2: the stream


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscriber_receives_every_event_in_order_then_complete(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    crew = await api.crew()
    execution_id = await api.launch(crew, topic="tidal power")

    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        op = await ws.subscribe(EVENTS, {"id": execution_id})
        received = await ws.collect(op, within=RECV_TIMEOUT)
        assert received.errors == []
        assert received.ended_by == "complete"
        # Nothing follows the completion on this socket.
        await ws.expect_silence(0.2)

    events = received.field("executionEvents")
    assert_completed_run(events, execution_id)
    assert any(e["type"] == "TASK_OUTPUT" for e in events)

    final = await api.execution(execution_id)
    assert final["status"] == "COMPLETED"
    assert final["error"] is None
    assert final["lastSeq"] == len(events)
    assert final["events"] == events, "the stream differs from the stored events"
    streamed = outputs_by_task(events)
    for task in final["tasks"]:
        assert task["status"] == "COMPLETED"
        assert "[simulated answer]" in task["output"]
        assert "tidal power" in task["output"], "the {topic} placeholder was not filled"
        assert streamed[task["position"]] == task["output"]
    assert [t["output"] for t in final["result"]["tasks"]] == [t["output"] for t in final["tasks"]]


# ----------------------------------------------------------------------------- 3: reconnect


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reconnect_with_after_misses_nothing(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    crew = await api.crew()
    execution_id = await api.launch(crew)

    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        op = await ws.subscribe(EVENTS, {"id": execution_id})
        first = (await ws.collect(op, limit=5, within=RECV_TIMEOUT)).field("executionEvents")
        ws.abort()  # no close frame, no `complete`: the client just vanishes
    assert seqs(first) == [1, 2, 3, 4, 5]
    assert first[-1]["type"] not in TERMINAL_TYPES, "the run ended before the disconnect"

    last = first[-1]["seq"]
    second = (await watch(server, protocol, execution_id, after=last)).field("executionEvents")
    assert second, "nothing after the reconnect"
    assert second[0]["seq"] == last + 1

    union = first + second
    assert_completed_run(union, execution_id)
    assert union == (await api.execution(execution_id))["events"]


# ----------------------------------------------------------------------------- 4: replay, errors


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_finished_execution_is_replayed_then_completed(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    crew = await api.crew(tasks=1)
    execution_id = await api.launch(crew)
    final = await api.wait_finished(execution_id)
    assert final["status"] == "COMPLETED"
    stored = final["events"]
    last = final["lastSeq"]
    assert seqs(stored) == list(range(1, last + 1))

    replay = (await watch(server, protocol, execution_id)).field("executionEvents")
    assert replay == stored

    tail = (await watch(server, protocol, execution_id, after=last - 2)).field("executionEvents")
    assert tail == stored[-2:]

    everything = (await watch(server, protocol, execution_id, after=-5)).field("executionEvents")
    assert everything == stored


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_nothing_after_the_end_of_a_finished_execution_completes_at_once(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    crew = await api.crew(tasks=1)
    execution_id = await api.launch(crew)
    last = (await api.wait_finished(execution_id))["lastSeq"]

    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        for after in (last, last + 10):
            op = await ws.subscribe(EVENTS, {"id": execution_id, "after": after})
            nothing = await ws.collect(op, within=PROMPT)
            assert nothing.results == [], after
            assert nothing.errors == [], after
            assert nothing.ended_by == "complete", after
    await wait_for_subscribers(server, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "execution_id", [str(uuid.uuid4()), "not-an-id", ""], ids=["unknown-uuid", "garbage", "empty"]
)
async def test_unknown_execution_is_a_prompt_graphql_error(
    server: LoopLiveServer, protocol: Protocol, execution_id: str
) -> None:
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        op = await ws.subscribe(EVENTS, {"id": execution_id})
        first = await ws.receive(op, within=PROMPT)
        assert first.kind in ("error", "next"), first
        assert first.errors, first
        assert first.errors[0]["extensions"]["code"] == "NOT_FOUND", first.errors
        assert execution_id in first.errors[0]["message"]
        if first.kind == "next":
            assert first.payload.get("data") is None
            ended = await ws.receive(op, within=PROMPT)
            assert ended.kind == "complete", ended

        await assert_socket_serves(server, ws)
    await wait_for_subscribers(server, 0)


async def test_a_query_over_the_legacy_protocol_is_not_an_internal_error(
    server: LoopLiveServer,
) -> None:
    """subscriptions-transport-ws lets `start` carry any operation. Answering it, or refusing it
    as the client's mistake, are both fine; an internal error (logged as a bug) is not."""
    async with GraphQLWebSocket.connect(server.ws_url, LEGACY_WS) as ws:
        op = await ws.subscribe("query Name { __typename }")
        result = await ws.collect(op, within=PROMPT)
    if result.errors:
        assert result.errors[0]["extensions"]["code"] != "INTERNAL", result.errors
    else:
        assert result.results == [{"__typename": "Query"}]
        assert result.ended_by == "complete"


# ----------------------------------------------------------------------------- 5: cleanup


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bus_subscribers_are_released_however_clients_leave(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    crew = await api.crew(llm=SLOW_LLM, tasks=1)
    execution_id = await api.launch(crew)
    assert await subscriber_count(server) == 0

    async with (
        GraphQLWebSocket.connect(server.ws_url, protocol) as vanishing,
        GraphQLWebSocket.connect(server.ws_url, protocol) as stopping,
        GraphQLWebSocket.connect(server.ws_url, protocol) as closing,
        GraphQLWebSocket.connect(server.ws_url, protocol) as dashboard,
    ):
        ops = []
        for ws in (vanishing, stopping, closing):
            op = await ws.subscribe(EVENTS, {"id": execution_id})
            # Events flow: the subscription is registered on the bus.
            got = await ws.collect(op, limit=2, within=RECV_TIMEOUT)
            assert seqs(got.field("executionEvents")) == [1, 2]
            ops.append(op)
        await dashboard.subscribe(UPDATES, {"filter": {"statuses": ["CRASHED"]}})
        await wait_for_subscribers(server, 4)

        vanishing.abort()
        await wait_for_subscribers(server, 3)

        await stopping.stop(ops[1])
        await wait_for_subscribers(server, 2)
        if protocol == LEGACY_WS:
            # Legacy servers confirm a `stop` with `complete` (after any events already sent);
            # graphql-transport-ws sends nothing.
            late = await stopping.collect(ops[1], within=PROMPT)
            assert late.ended_by == "complete"
        # The connection that stopped an operation stays usable.
        await assert_socket_serves(server, stopping, already=2)

        await closing.close()  # a polite close frame, with the operation still running
        await wait_for_subscribers(server, 1)

        dashboard.abort()
        await wait_for_subscribers(server, 0)

        # Still mid-run: cleanup did not wait for the execution to end.
        assert (await api.execution(execution_id))["status"] == "RUNNING"

    cancelled = await api.cancel(execution_id, force=True)
    assert cancelled["__typename"] == "Execution"
    assert (await api.wait_finished(execution_id))["status"] == "CANCELLED"
    assert await subscriber_count(server) == 0


# ----------------------------------------------------------------------------- 6: dashboards


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_execution_updates_follow_the_filter(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    good_crew = await api.crew(tasks=1)
    bad_crew = await api.crew(llm=FAILING_LLM, tasks=1)

    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        # Three dashboards on one socket: by crew, by status, and by both.
        by_crew = await ws.subscribe(UPDATES, {"filter": {"crewId": good_crew}})
        completed = await ws.subscribe(UPDATES, {"filter": {"statuses": ["COMPLETED"]}})
        bad_failed = await ws.subscribe(
            UPDATES, {"filter": {"crewId": bad_crew, "statuses": ["FAILED", "CANCELLED"]}}
        )
        await wait_for_subscribers(server, 3)  # registered: nothing launched below is missed

        good = await api.launch(good_crew)
        bad = await api.launch(bad_crew)

        crew_feed = await ws.collect(by_crew, limit=3, within=RECV_TIMEOUT)
        completed_feed = await ws.collect(completed, limit=1, within=RECV_TIMEOUT)
        failed_feed = await ws.collect(bad_failed, limit=1, within=RECV_TIMEOUT)
        assert (await api.wait_finished(good))["status"] == "COMPLETED"
        assert (await api.wait_finished(bad))["status"] == "FAILED"
        # Both are finished: whatever the feeds still hold has arrived by now.
        await ws.expect_silence(0.5)

        for op in (by_crew, completed, bad_failed):
            await ws.stop(op)
        await wait_for_subscribers(server, 0)

    updates = crew_feed.field("executionUpdates")
    assert [(u["executionId"], u["type"], u["status"]) for u in updates] == [
        (good, "EXECUTION_QUEUED", "QUEUED"),
        (good, "EXECUTION_STARTED", "RUNNING"),
        (good, "EXECUTION_COMPLETED", "COMPLETED"),
    ]
    assert seqs(updates) == sorted(seqs(updates))
    assert [(u["executionId"], u["status"]) for u in completed_feed.field("executionUpdates")] == [
        (good, "COMPLETED")
    ]
    assert [(u["executionId"], u["status"]) for u in failed_feed.field("executionUpdates")] == [
        (bad, "FAILED")
    ]


@pytest.mark.parametrize(
    "time_filter",
    [{"createdAfter": "2999-01-01T00:00:00Z"}, {"createdBefore": "2000-01-01T00:00:00Z"}],
    ids=["created-after-future", "created-before-past"],
)
async def test_execution_updates_honour_the_time_filter(
    server: LoopLiveServer, api: Api, time_filter: dict[str, str]
) -> None:
    """`ExecutionFilter` has creation-time bounds; a feed must apply them or refuse them, not
    drop them silently (no execution launched now matches either filter here)."""
    crew = await api.crew(tasks=1)
    async with GraphQLWebSocket.connect(server.ws_url, TRANSPORT_WS) as ws:
        control = await ws.subscribe(UPDATES, {"filter": {"crewId": crew}})
        await wait_for_subscribers(server, 1)
        timed = await ws.subscribe(UPDATES, {"filter": {"crewId": crew, **time_filter}})
        refused: OperationMessage | None = None
        async with asyncio.timeout(5):  # until it is registered, or refused
            while refused is None and await subscriber_count(server) < 2:
                with contextlib.suppress(TimeoutError):
                    refused = await ws.receive(timed, within=0.05)
        if refused is not None:
            assert refused.errors, refused
            assert refused.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        else:
            await api.launch(crew)
            await ws.collect(control, limit=3, within=RECV_TIMEOUT)  # QUEUED, RUNNING, COMPLETED
            with contextlib.suppress(TimeoutError):
                ignored = await ws.receive(timed, within=0.3)
                pytest.fail(f"{time_filter} was ignored: got {ignored.payload}")
        for op in (control, timed):
            await ws.stop(op)
    await wait_for_subscribers(server, 0)


async def test_execution_updates_reject_a_bad_crew_id(server: LoopLiveServer) -> None:
    async with GraphQLWebSocket.connect(server.ws_url, TRANSPORT_WS) as ws:
        op = await ws.subscribe(UPDATES, {"filter": {"crewId": "nope"}})
        first = await ws.receive(op, within=PROMPT)
        assert first.errors, first
        assert first.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        if first.kind == "next":
            assert (await ws.receive(op, within=PROMPT)).kind == "complete"
    await wait_for_subscribers(server, 0)


# ----------------------------------------------------------------------------- 7: cancel


@pytest.mark.parametrize("force", [False, True], ids=["graceful", "forced"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cancel_mid_run_ends_the_stream(
    server: LoopLiveServer, api: Api, protocol: Protocol, force: bool
) -> None:
    crew = await api.crew(llm=SLOW_LLM, tasks=2)

    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        dashboard = await ws.subscribe(UPDATES, {"filter": {"crewId": crew}})
        await wait_for_subscribers(server, 1)
        execution_id = await api.launch(crew)
        op = await ws.subscribe(EVENTS, {"id": execution_id})
        events: list[Event] = []
        async for message in ws.results(op, within=RECV_TIMEOUT):
            assert message.kind == "next", message
            assert not message.errors, message
            assert message.data is not None
            events.append(message.data["executionEvents"])
            if events[-1]["type"] == "TASK_OUTPUT":
                break  # the first task is producing output: cancel now

        answer = await api.cancel(execution_id, force=force)
        assert answer == {"__typename": "Execution", "id": execution_id, "status": "CANCELLING"}

        rest = await ws.collect(op, within=RECV_TIMEOUT)
        assert rest.errors == []
        assert rest.ended_by == "complete"
        events += rest.field("executionEvents")

        feed = await ws.collect(dashboard, limit=4, within=RECV_TIMEOUT)
        await ws.stop(dashboard)
    assert [u["status"] for u in feed.field("executionUpdates")] == [
        "QUEUED",
        "RUNNING",
        "CANCELLING",
        "CANCELLED",
    ]

    assert seqs(events) == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    cancelling = types.index("EXECUTION_CANCELLING")
    # Output the engine had already received when the request arrived is recorded, not dropped,
    # so TASK_OUTPUT may fall between the request and the stop; nothing else may.
    assert set(types[cancelling + 1 : -1]) <= {"TASK_OUTPUT"}, types
    assert types[-1] == "EXECUTION_CANCELLED", types
    assert [events[cancelling]["status"], events[-1]["status"]] == ["CANCELLING", "CANCELLED"]
    assert events[cancelling]["data"] == {"force": force}
    assert "TASK_COMPLETED" not in types, "the slow task finished before the cancel"

    final = await api.execution(execution_id)
    assert final["status"] == "CANCELLED"
    assert final["events"] == events
    assert [t["status"] for t in final["tasks"]] == ["CANCELLED", "CANCELLED"]


# ----------------------------------------------------------------------------- 8: many at once


async def test_many_concurrent_subscribers_get_identical_sequences(
    server: LoopLiveServer, api: Api
) -> None:
    crew = await api.crew()
    execution_id = await api.launch(crew)

    async def shared_socket(count: int) -> list[OperationResult]:
        """`count` subscriptions multiplexed on one graphql-transport-ws socket."""
        async with GraphQLWebSocket.connect(server.ws_url, TRANSPORT_WS) as ws:
            ops = [await ws.subscribe(EVENTS, {"id": execution_id}) for _ in range(count)]
            return [await ws.collect(op, within=RECV_TIMEOUT) for op in ops]

    async def one(protocol: Protocol) -> list[OperationResult]:
        return [await watch(server, protocol, execution_id)]

    # 44 sockets of their own (both protocols) and 6 subscriptions sharing one: 50 subscribers,
    # joining while the execution runs.
    jobs = [one(PROTOCOLS[i % 2]) for i in range(44)] + [shared_socket(6)]
    results = [r for group in await asyncio.wait_for(asyncio.gather(*jobs), 30) for r in group]
    assert len(results) == 50

    final = await api.execution(execution_id)
    assert final["status"] == "COMPLETED"
    assert_completed_run(final["events"], execution_id)
    for result in results:
        assert result.errors == []
        assert result.ended_by == "complete"
        assert result.field("executionEvents") == final["events"]
    await wait_for_subscribers(server, 0)


# ----------------------------------------------------------------------------- lagging subscribers


async def test_subscribers_that_overflow_their_buffer_still_get_every_event(
    backend: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a one-event bus buffer every burst of two overflows it: the stream must fill the gap
    from the table, not skip it. Output is flushed only at the end of each task here, so every
    task ends with such a burst (TASK_OUTPUT and TASK_COMPLETED, published together)."""
    lags = 0
    take_lag = Subscription.take_lag

    def counting_take_lag(subscription: Subscription) -> bool:
        nonlocal lags
        lagged = take_lag(subscription)
        lags += lagged
        return lagged

    monkeypatch.setattr(Subscription, "take_lag", counting_take_lag)
    settings = {**SERVER_SETTINGS, "subscriber_buffer": 1, "output_flush_interval_seconds": 5.0}
    async with (
        fresh_live_server(backend, tmp_path_factory, **settings) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        api = Api(GraphQLClient(http))
        execution_id = await api.launch(await api.crew())
        watchers = [watch(server, PROTOCOLS[i % 2], execution_id) for i in range(10)]
        results = await asyncio.wait_for(asyncio.gather(*watchers), 30)
        final = await api.wait_finished(execution_id)
        await wait_for_subscribers(server, 0)

    assert lags > 0, "no subscriber overflowed: this test tested nothing"
    assert final["status"] == "COMPLETED"
    assert_completed_run(final["events"], execution_id)
    for result in results:
        assert result.field("executionEvents") == final["events"]


# ----------------------------------------------------------------------------- shared work


async def test_subscribers_with_mixed_cursors_share_each_event(
    server: LoopLiveServer, api: Api
) -> None:
    """Subscribers of one selection share each event's execution and payload
    (api/graphql/shared_events.py), yet each gets exactly its own sequence: from its `after`,
    gapless, in order, then complete; over both protocols and on shared sockets."""
    shared = server.app.state.shared_events
    hits_before = await server.call(lambda: int(shared.hits))
    execution_id = await api.launch(await api.crew())
    cursors: list[int | None] = [None, 0, 1, 3, 7]

    async def on_one_socket(after: int | None) -> list[OperationResult]:
        async with GraphQLWebSocket.connect(server.ws_url, TRANSPORT_WS) as ws:
            variables = {"id": execution_id, "after": after}
            ops = [await ws.subscribe(EVENTS, variables) for _ in range(2)]
            return [await ws.collect(op, within=RECV_TIMEOUT) for op in ops]

    async def alone(protocol: Protocol, after: int | None) -> list[OperationResult]:
        return [await watch(server, protocol, execution_id, after)]

    jobs = [alone(p, after) for after in cursors for p in PROTOCOLS]
    jobs += [on_one_socket(after) for after in cursors]
    groups = await asyncio.wait_for(asyncio.gather(*jobs), 30)
    wanted = [after for after in cursors for _ in PROTOCOLS] + [a for a in cursors for _ in "ab"]
    results = [r for group in groups for r in group]

    final = await api.execution(execution_id)
    assert_completed_run(final["events"], execution_id)
    for after, result in zip(wanted, results, strict=True):
        assert result.errors == []
        assert result.ended_by == "complete"
        expected = [e for e in final["events"] if e["seq"] > (after or 0)]
        assert result.field("executionEvents") == expected, after
    hits = await server.call(lambda: int(shared.hits)) - hits_before
    # 20 subscribers of one selection: all but (at most) the first per event reused its result.
    assert hits >= len(final["events"]), hits
    await wait_for_subscribers(server, 0)
