"""Direct delivery of shared frames over real websockets (api/graphql/direct.py), both protocols,
SQLite and PostgreSQL.

Subscribers of one selection and visibility get most events as the frame another subscriber's
execution produced, straight from their own source stream; each must still get exactly its own
sequence (from its `after`, gapless, in order, then `complete`), under its own operation id; a
stalled socket must hold up only itself, and an operation stopped mid-stream ends alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.websockets import WebSocket

from backend.api.graphql.ws_frames import GuardedWebSocket
from backend.events.bus import Subscription
from tests.e2e.test_websocket_executions import (
    EVENTS,
    PROMPT,
    RECV_TIMEOUT,
    SERVER_SETTINGS,
    SLOW_LLM,
    Api,
    api,
    assert_completed_run,
    live_server_overrides,
    seqs,
    server,
    subscriber_count,
    wait_for_subscribers,
    watch,
)
from tests.support.graphql import GraphQLClient
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.ws_client import (
    LEGACY_WS,
    PROTOCOLS,
    TRANSPORT_WS,
    GraphQLWebSocket,
    OperationResult,
    Protocol,
)

__all__ = ["api", "live_server_overrides", "server"]  # the fixtures this module uses


async def direct_frames(server: LoopLiveServer) -> int:
    shared = server.app.state.shared_events
    return await server.call(lambda: int(shared.direct))


async def test_grouped_subscribers_get_shared_frames_each_in_its_own_order(
    server: LoopLiveServer, api: Api
) -> None:
    before = await direct_frames(server)
    execution_id = await api.launch(await api.crew())
    cursors: list[int | None] = [None, 0, 2, 5]

    async def on_one_socket(protocol: Protocol) -> list[OperationResult]:
        """One subscription per cursor, all on one socket: frames must carry their own id."""
        async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
            ops = [await ws.subscribe(EVENTS, {"id": execution_id, "after": a}) for a in cursors]
            return [await ws.collect(op, within=RECV_TIMEOUT) for op in ops]

    async def alone(protocol: Protocol, after: int | None) -> list[OperationResult]:
        return [await watch(server, protocol, execution_id, after)]

    jobs = [alone(p, after) for after in cursors for p in PROTOCOLS]
    jobs += [on_one_socket(p) for p in PROTOCOLS]
    results = [r for group in await asyncio.wait_for(asyncio.gather(*jobs), 30) for r in group]
    wanted = [after for after in cursors for _ in PROTOCOLS] + cursors + cursors

    final = await api.execution(execution_id)
    assert_completed_run(final["events"], execution_id)
    delivered = 0
    for after, result in zip(wanted, results, strict=True):
        assert result.errors == []
        assert result.ended_by == "complete"
        expected = [e for e in final["events"] if e["seq"] > (after or 0)]
        assert result.field("executionEvents") == expected, after
        delivered += len(expected)
    # 16 subscribers of one group: each event is executed by (about) one of them, the others
    # get its frame directly.
    direct = await direct_frames(server) - before
    assert direct >= delivered - 2 * len(final["events"]), (direct, delivered)
    await wait_for_subscribers(server, 0)


async def test_a_stalled_socket_holds_up_only_itself(
    backend: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten subscriptions on a socket whose writes block (as when its client stops reading and
    the socket's buffers fill: the send waits for the transport; simulated here by holding the
    server's sends to that client until released, whichever path a frame takes). Its operations
    stop taking events from the bus and overflow their (small) buffers; the rest of the group,
    on other sockets, meanwhile gets everything; once released, each stalled operation gets its
    whole sequence too (caught up from the table)."""
    lags = 0
    take_lag = Subscription.take_lag

    def counting_take_lag(subscription: Subscription) -> bool:
        nonlocal lags
        lagged = take_lag(subscription)
        lags += lagged
        return lagged

    stalled_port: list[int] = []
    gate: list[asyncio.Event] = []  # made on the server's loop, which runs in its own thread

    def held(send: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def maybe_held(adapter: GuardedWebSocket, message: Any) -> None:
            client = adapter.ws.client
            if client is not None and client.port in stalled_port:
                if not gate:
                    gate.append(asyncio.Event())
                await gate[0].wait()
            await send(adapter, message)

        return maybe_held

    monkeypatch.setattr(Subscription, "take_lag", counting_take_lag)
    monkeypatch.setattr(GuardedWebSocket, "send_text", held(GuardedWebSocket.send_text))
    monkeypatch.setattr(GuardedWebSocket, "send_json", held(GuardedWebSocket.send_json))
    settings = {**SERVER_SETTINGS, "subscriber_buffer": 4}
    async with (
        fresh_live_server(backend, tmp_path_factory, **settings) as live,
        httpx.AsyncClient(base_url=live.url, trust_env=False, timeout=10) as http,
        GraphQLWebSocket.connect(live.ws_url, TRANSPORT_WS) as stalled,
    ):
        api = Api(GraphQLClient(http))
        execution_id = await api.launch(await api.crew())
        stalled_port.append(stalled.connection.local_address[1])
        ops = [await stalled.subscribe(EVENTS, {"id": execution_id}) for _ in range(10)]
        watchers = [watch(live, PROTOCOLS[i % 2], execution_id) for i in range(6)]
        prompt = await asyncio.wait_for(asyncio.gather(*watchers), 30)
        final = await api.wait_finished(execution_id)
        await stalled.expect_silence(0.2)  # held: not even the first event went out
        await live.call(lambda: gate[0].set())
        late = [await stalled.collect(op, within=RECV_TIMEOUT) for op in ops]
        await wait_for_subscribers(live, 0)

    assert lags > 0, "no stalled operation overflowed its buffer: this tested nothing"
    assert final["status"] == "COMPLETED"
    assert_completed_run(final["events"], execution_id)
    for result in [*prompt, *late]:
        assert result.ended_by == "complete"
        assert result.field("executionEvents") == final["events"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_operation_stopped_mid_stream_ends_alone(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    execution_id = await api.launch(await api.crew(llm=SLOW_LLM, tasks=1))
    async with (
        GraphQLWebSocket.connect(server.ws_url, protocol) as ws,
        GraphQLWebSocket.connect(server.ws_url, protocol) as other,
    ):
        leaving, staying = [await ws.subscribe(EVENTS, {"id": execution_id}) for _ in range(2)]
        elsewhere = await other.subscribe(EVENTS, {"id": execution_id})
        first: dict[str, Any] = {}
        for op, sock in ((leaving, ws), (staying, ws), (elsewhere, other)):
            got = await sock.collect(op, limit=4, within=RECV_TIMEOUT)
            first[op + str(id(sock))] = seqs(got.field("executionEvents"))
        assert all(s == [1, 2, 3, 4] for s in first.values()), first
        await wait_for_subscribers(server, 3)

        await ws.stop(leaving)
        await wait_for_subscribers(server, 2)
        tail = await ws.collect(leaving, within=PROMPT) if protocol == LEGACY_WS else None
        # The others carry on from where they were, in order.
        more = await ws.collect(staying, limit=2, within=RECV_TIMEOUT)
        assert seqs(more.field("executionEvents")) == [5, 6]
        assert await subscriber_count(server) == 2

        await api.cancel(execution_id, force=True)
        rest = await ws.collect(staying, within=RECV_TIMEOUT)
        theirs = await other.collect(elsewhere, within=RECV_TIMEOUT)
        final = await api.wait_finished(execution_id)

    assert final["status"] == "CANCELLED"
    events = final["events"]
    assert seqs(rest.field("executionEvents")) == [e["seq"] for e in events[6:]]
    assert rest.ended_by == "complete"
    assert seqs(theirs.field("executionEvents")) == [e["seq"] for e in events[4:]]
    if tail is not None:
        # Legacy servers confirm a `stop` with `complete`, after any events already on their
        # way; those carry on the stopped operation's own order.
        assert tail.ended_by == "complete"
        in_flight = seqs(tail.field("executionEvents"))
        assert in_flight == list(range(5, 5 + len(in_flight)))
    await wait_for_subscribers(server, 0)


async def test_shared_frames_skip_starlettes_websocket_send(
    server: LoopLiveServer, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct frames go to the server's own ASGI `send` (kept by transport.KeepAsgiSend), not
    through Starlette's WebSocket.send: of a group of 8 subscribers only the one executing an
    event sends its frame through Starlette. Every subscriber still gets its whole sequence."""
    through_starlette = 0
    send = WebSocket.send

    async def counting(websocket: WebSocket, message: Any) -> None:
        nonlocal through_starlette
        if message.get("type") == "websocket.send" and '"next"' in (message.get("text") or ""):
            through_starlette += 1
        await send(websocket, message)

    monkeypatch.setattr(WebSocket, "send", counting)
    execution_id = await api.launch(await api.crew())
    results = await asyncio.wait_for(
        asyncio.gather(*(watch(server, TRANSPORT_WS, execution_id, 0) for _ in range(8))), 30
    )
    final = await api.execution(execution_id)
    assert_completed_run(final["events"], execution_id)
    for result in results:
        assert result.field("executionEvents") == final["events"]
    delivered = 8 * len(final["events"])
    assert through_starlette <= 2 * len(final["events"]), (through_starlette, delivered)
    await wait_for_subscribers(server, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_client_that_drops_its_socket_mid_stream_ends_alone(
    server: LoopLiveServer, api: Api, protocol: Protocol
) -> None:
    """A client gone without a close handshake: its operations end (a send to its socket fails
    or the handler cancels them first), while the group's other subscribers get everything."""
    execution_id = await api.launch(await api.crew(llm=SLOW_LLM, tasks=1))
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        for _ in range(3):
            op = await ws.subscribe(EVENTS, {"id": execution_id})
            got = await ws.collect(op, limit=2, within=RECV_TIMEOUT)
            assert seqs(got.field("executionEvents")) == [1, 2]
        staying = asyncio.ensure_future(watch(server, protocol, execution_id))
        await wait_for_subscribers(server, 4)
        ws.abort()
        await wait_for_subscribers(server, 1)
    await api.cancel(execution_id, force=True)
    result = await asyncio.wait_for(staying, RECV_TIMEOUT)
    final = await api.wait_finished(execution_id)
    assert result.field("executionEvents") == final["events"]
    await wait_for_subscribers(server, 0)


async def test_caught_up_subscribers_get_live_events_from_their_groups_relay(
    server: LoopLiveServer, api: Api
) -> None:
    """Subscribers waiting for live events get them written by their group's relay
    (api/graphql/relay.py), each under its own operation id and in its own order; two
    operations on one socket too; once they end, no relay is left."""
    shared = server.app.state.shared_events
    before = await server.call(lambda: int(shared.relayed))
    execution_id = await api.launch(await api.crew(llm=SLOW_LLM, tasks=1))

    async def alone(protocol: Protocol) -> list[OperationResult]:
        return [await watch(server, protocol, execution_id)]

    jobs = [alone(p) for p in PROTOCOLS for _ in range(3)]
    await wait_for_subscribers(server, 0)
    results_alone = asyncio.gather(*jobs)
    await wait_for_subscribers(server, 6)
    async with GraphQLWebSocket.connect(server.ws_url, TRANSPORT_WS) as ws:
        ops = [await ws.subscribe(EVENTS, {"id": execution_id}) for _ in range(2)]
        first = [await ws.collect(op, limit=6, within=RECV_TIMEOUT) for op in ops]
        await api.cancel(execution_id, force=True)
        rest = [await ws.collect(op, within=RECV_TIMEOUT) for op in ops]
    results = [r for group in await asyncio.wait_for(results_alone, 30) for r in group]
    final = await api.wait_finished(execution_id)

    events = final["events"]
    for result in results:
        assert result.field("executionEvents") == events
    for head, tail in zip(first, rest, strict=True):
        assert head.field("executionEvents") + tail.field("executionEvents") == events
        assert tail.ended_by == "complete"
    relayed = await server.call(lambda: int(shared.relayed)) - before
    assert relayed >= len(events), relayed  # most live events of 8 subscribers
    await wait_for_subscribers(server, 0)
    assert await server.call(lambda: len(shared.relays)) == 0
