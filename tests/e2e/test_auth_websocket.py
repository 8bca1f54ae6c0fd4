"""Websocket authentication on a real uvicorn server, both subscription protocols.

The key travels in `connection_init` (`{"authorization": "Bearer <key>"}`) and is checked before
`connection_ack`: a missing or wrong key closes the socket with 4401. A revoked key's open
subscriptions end within a few seconds; a key may hold only so many open subscriptions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from backend.core.identity import Role
from backend.models import DEFAULT_WORKSPACE_ID
from tests.support.auth import bearer, make_key
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, GraphQLWebSocket, Protocol

T = TypeVar("T")
UPDATES = "subscription { executionUpdates { executionId } }"
SUBSCRIPTION_CAP = 2


@pytest.fixture(scope="module")
def live_server_overrides() -> dict[str, Any]:
    return {
        "auth_enabled": True,
        "max_subscriptions_per_key": SUBSCRIPTION_CAP,
        "rate_limit_per_second": 0,
        "runner_enabled": False,
    }


async def on_server(server: LoopLiveServer, coroutine: Coroutine[Any, Any, T]) -> T:
    assert server.loop is not None
    future = asyncio.run_coroutine_threadsafe(coroutine, server.loop)
    return await asyncio.wait_for(asyncio.wrap_future(future), 10)


async def key(server: LoopLiveServer, role: Role = Role.VIEWER) -> str:
    services = server.app.state.services
    return await on_server(server, make_key(services, DEFAULT_WORKSPACE_ID, role))


async def refused_before_ack(
    server: LoopLiveServer, protocol: Protocol, payload: dict[str, Any] | None
) -> tuple[int | None, list[dict[str, Any]]]:
    """Sends connection_init and reads until the server closes: (close code, messages)."""
    received: list[dict[str, Any]] = []
    async with connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=5
    ) as ws:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await ws.send(json.dumps(message))
        try:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), received
    raise AssertionError("unreachable")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_missing_or_wrong_key_closes_4401_before_ack(
    module_live_server: LoopLiveServer, protocol: Protocol
) -> None:
    server = module_live_server
    for payload in (
        None,
        {},
        {"authorization": "Bearer cq_abcdefgh_" + "x" * 43},
        {"authorization": "nonsense"},
    ):
        code, messages = await refused_before_ack(server, protocol, payload)
        assert code == 4401, (payload, code, messages)
        assert all(m.get("type") != "connection_ack" for m in messages)
        if protocol == LEGACY_WS:
            assert messages
            assert messages[0]["type"] == "connection_error"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_valid_key_is_acknowledged(
    module_live_server: LoopLiveServer, protocol: Protocol
) -> None:
    token = await key(module_live_server)
    init = {"authorization": f"Bearer {token}"}
    async with GraphQLWebSocket.connect(
        module_live_server.ws_url, protocol, init_payload=init
    ) as ws:
        op = await ws.subscribe(UPDATES)
        await ws.expect_silence(0.3)
        await ws.stop(op)


async def drain(ws: GraphQLWebSocket) -> None:
    """Reads until the server closes the socket (ConnectionClosed) or 6 s pass in silence."""
    while True:
        await asyncio.wait_for(ws.connection.recv(), 6)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_revoking_a_key_ends_its_open_subscriptions(
    module_live_server: LoopLiveServer, protocol: Protocol
) -> None:
    server = module_live_server
    viewer = await key(server)
    admin = await key(server, Role.ADMIN)
    async with GraphQLWebSocket.connect(
        server.ws_url, protocol, init_payload={"authorization": f"Bearer {viewer}"}
    ) as ws:
        await ws.subscribe(UPDATES)
        await ws.expect_silence(0.3)
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(admin)) as http:
            keys = (await http.post("/graphql", json={"query": "{ apiKeys { id prefix } }"})).json()
            (target,) = [k for k in keys["data"]["apiKeys"] if viewer.startswith(k["prefix"])]
            revoked = await http.post(
                "/graphql",
                json={
                    "query": "mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }",
                    "variables": {"id": target["id"]},
                },
            )
            assert revoked.json()["data"]["revokeApiKey"]["__typename"] == "ApiKey"
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionClosed) as closed:
            await drain(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        assert asyncio.get_running_loop().time() - started < 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscriptions_per_key_are_capped(
    module_live_server: LoopLiveServer, protocol: Protocol
) -> None:
    token = await key(module_live_server)
    init = {"authorization": f"Bearer {token}"}
    url = module_live_server.ws_url
    async with (
        GraphQLWebSocket.connect(url, protocol, init_payload=init) as first,
        GraphQLWebSocket.connect(url, TRANSPORT_WS, init_payload=init) as second,
    ):
        held = [await first.subscribe(UPDATES), await second.subscribe(UPDATES)]
        await first.expect_silence(0.3)
        over = await first.subscribe(UPDATES)
        refusal = await first.receive(over)
        assert refusal.kind == "error"
        assert refusal.errors[0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        # the socket stays open, and a slot freed is a slot to take
        await first.stop(held[0])
        if protocol == LEGACY_WS:  # the legacy protocol confirms a stop with `complete`
            assert (await first.receive(held[0])).kind == "complete"
        await asyncio.sleep(0.3)
        again = await first.subscribe(UPDATES)
        await first.expect_silence(0.3)
        await first.stop(again)
        await second.stop(held[1])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_rate_limited_operations_get_an_error_and_the_socket_stays_open(
    backend: str, tmp_path_factory: pytest.TempPathFactory, protocol: Protocol
) -> None:
    async with fresh_live_server(
        backend,
        tmp_path_factory,
        auth_enabled=True,
        rate_limit_per_second=0.2,
        rate_limit_burst=2,
        runner_enabled=False,
    ) as server:
        token = await key(server)
        init = {"authorization": f"Bearer {token}"}
        async with GraphQLWebSocket.connect(server.ws_url, protocol, init_payload=init) as ws:
            for _ in range(2):
                await ws.subscribe(UPDATES)
            await ws.expect_silence(0.3)
            over = await ws.subscribe(UPDATES)
            refusal = await ws.receive(over)
            assert refusal.kind == "error"
            error = refusal.errors[0]
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert error["extensions"]["retryAfter"] >= 1
            await ws.expect_silence(0.3)  # still open: nothing else happened
