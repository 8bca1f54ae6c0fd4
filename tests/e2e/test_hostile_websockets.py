"""Hostile websocket clients, on both protocols: every frame answered as the protocol says.

graphql-transport-ws closes with 4400 and a reason for any frame it does not specify; the legacy
graphql-ws protocol answers `connection_error` (not a JSON object) or `error` (a bad message)
and keeps the socket. Syntax and validation errors are `error` messages carrying GraphQL errors
on both. Sockets that never send `connection_init` are closed at the init timeout (4408), too
many unacknowledged sockets from one address are turned away (1013), a socket sending more than
its message rate is closed (1008), and failed key checks are limited per address (4429 / 429).
Each case checks that /healthz answered meanwhile and that the server logged no ERROR line and
no traceback. A real uvicorn server per module and backend (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.server_log import error_lines
from tests.support.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, GraphQLWebSocket, Protocol

INIT_TIMEOUT = 0.5
PER_ADDRESS = 4
RATE, BURST = 20, 20
MAX_MESSAGE = 4_096
MAX_HEADERS, MAX_HEADER_BYTES = 30, 4_096
WAIT = 5.0  # the longest any answer may take here; answers come in milliseconds


@pytest.fixture(scope="module")
def live_server_overrides() -> dict[str, Any]:
    return {
        "ws_init_timeout_seconds": INIT_TIMEOUT,
        "ws_max_unauthenticated_per_address": PER_ADDRESS,
        "ws_messages_per_second": RATE,
        "ws_message_burst": BURST,
        "ws_max_message_bytes": MAX_MESSAGE,
        "max_headers": MAX_HEADERS,
        "max_header_bytes": MAX_HEADER_BYTES,
    }


@pytest.fixture
def server(module_live_server: LoopLiveServer) -> LoopLiveServer:
    return module_live_server


@pytest.fixture
async def http(server: LoopLiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        yield client


@pytest.fixture
def logs() -> Iterator[list[str]]:
    with error_lines() as lines:
        yield lines
    assert lines == [], "the server logged ERROR lines or tracebacks"


async def healthy(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).status_code == 200


async def open_socket(server: LoopLiveServer, protocol: Protocol) -> ClientConnection:
    return await connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], proxy=None, open_timeout=WAIT
    )


async def answers(ws: ClientConnection, quiet: float = 0.3, most: int = 1_000) -> list[Any]:
    """Every message (up to `most`) until the socket closes (then the close code, last) or
    `quiet` passes without one."""
    received: list[Any] = []
    try:
        while len(received) < most:
            frame = await asyncio.wait_for(ws.recv(), quiet)
            message = json.loads(frame)
            if message.get("type") != "ka":
                received.append(message)
    except TimeoutError:
        pass
    except ConnectionClosed as closed:
        received.append(closed.rcvd.code if closed.rcvd else None)
    return received


async def acknowledged(server: LoopLiveServer, protocol: Protocol) -> ClientConnection:
    ws = await open_socket(server, protocol)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
    return ws


# Frames no protocol allows, or that break the shape of a message it does allow.
def malformed(protocol: Protocol) -> list[str]:
    sub = "subscribe" if protocol == TRANSPORT_WS else "start"
    stop = "complete" if protocol == TRANSPORT_WS else "stop"
    query = {"query": "{ __typename }"}
    return [
        "[]",
        "5",
        "null",
        '"x"',
        "not json",
        "{}",
        '{"type": 5}',
        '{"type": "no-such-type"}',
        json.dumps({"type": sub}),
        json.dumps({"type": sub, "id": "1"}),
        json.dumps({"type": sub, "id": "1", "payload": 5}),
        json.dumps({"type": sub, "id": {"a": 1}, "payload": query}),
        json.dumps({"type": sub, "id": [1], "payload": query}),
        json.dumps({"type": sub, "id": 7, "payload": query}),
        json.dumps({"type": sub, "id": "1", "payload": {"query": None}}),
        json.dumps({"type": sub, "id": "1", "payload": {"query": 5}}),
        json.dumps({"type": sub, "id": "1", "payload": {**query, "variables": 5}}),
        json.dumps({"type": sub, "id": "1", "payload": {**query, "variables": []}}),
        json.dumps({"type": sub, "id": "1", "payload": {**query, "operationName": 5}}),
        json.dumps({"type": sub, "id": "1", "payload": {**query, "extensions": "x"}}),
        json.dumps({"type": stop}),
        json.dumps({"type": stop, "id": {}}),
    ]


MALFORMED = [(p, frame) for p in PROTOCOLS for frame in malformed(p)]


@pytest.mark.parametrize(
    ("protocol", "frame"), MALFORMED, ids=[f"{p}:{f[:40]}" for p, f in MALFORMED]
)
async def test_a_malformed_frame_is_answered_as_the_protocol_says(
    server: LoopLiveServer, http: httpx.AsyncClient, logs: list[str], protocol: Protocol, frame: str
) -> None:
    ws = await acknowledged(server, protocol)
    try:
        await ws.send(frame)
        got = await answers(ws, quiet=WAIT, most=1)
        await healthy(http)
        if protocol == TRANSPORT_WS:
            assert got == [4400], got
            assert ws.close_reason  # says what was wrong
            return
        (message,) = got  # one answer; the socket stays open
        assert message["type"] in ("connection_error", "error"), message
        errors = message["payload"] if message["type"] == "error" else [message["payload"]]
        assert [e["extensions"]["code"] for e in errors] == ["BAD_REQUEST"], message
        # ... and still serves
        start = {"type": "start", "id": "ok", "payload": {"query": "{ a: __typename }"}}
        await ws.send(json.dumps(start))
        served = await answers(ws, quiet=WAIT, most=1)
        assert served[0] == {"type": "data", "id": "ok", "payload": {"data": {"a": "Query"}}}
    finally:
        await ws.close()


REQUEST_ERRORS = [
    ("subscription {", "GRAPHQL_PARSE_FAILED"),
    ("{ ", "GRAPHQL_PARSE_FAILED"),
    ("subscription { noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
    ("query A { __typename } query B { __typename }", "GRAPHQL_VALIDATION_FAILED"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("query", "code"), REQUEST_ERRORS)
async def test_request_errors_are_error_messages_with_graphql_errors(
    server: LoopLiveServer, logs: list[str], protocol: Protocol, query: str, code: str
) -> None:
    """Never a bare `complete`, never silence, never a closed socket."""
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        operation = await ws.subscribe(query)
        answer = await ws.receive(operation, within=WAIT)
        assert answer.kind == "error", answer
        assert [e["extensions"]["code"] for e in answer.errors] == [code]
        assert answer.errors[0]["message"]
        again = await ws.subscribe("{ __typename }")
        assert (await ws.collect(again, within=WAIT)).results == [{"__typename": "Query"}]


async def test_the_legacy_protocol_carries_queries_and_mutations(
    server: LoopLiveServer, logs: list[str]
) -> None:
    async with GraphQLWebSocket.connect(server.ws_url, LEGACY_WS) as ws:
        query = await ws.subscribe("query Name { __typename }")
        result = await ws.collect(query, within=WAIT)
        assert (result.results, result.ended_by) == ([{"__typename": "Query"}], "complete")
        mutation = await ws.subscribe(
            'mutation { createAgent(input: {name: "ws", role: "r", goal: "g"}) '
            "{ __typename ... on Agent { name } } }"
        )
        result = await ws.collect(mutation, within=WAIT)
        assert result.results == [{"createAgent": {"__typename": "Agent", "name": "ws"}}]
        assert result.ended_by == "complete"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_that_never_initialises_is_closed(
    server: LoopLiveServer, http: httpx.AsyncClient, logs: list[str], protocol: Protocol
) -> None:
    ws = await open_socket(server, protocol)
    await healthy(http)
    assert await answers(ws, quiet=INIT_TIMEOUT + WAIT) == [4408]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unacknowledged_sockets_are_capped_per_address(
    server: LoopLiveServer, http: httpx.AsyncClient, logs: list[str], protocol: Protocol
) -> None:
    silent = [await open_socket(server, protocol) for _ in range(PER_ADDRESS)]
    try:
        extra = await open_socket(server, protocol)
        assert await answers(extra, quiet=WAIT) == [1013]
        await healthy(http)
        # An acknowledged socket no longer counts: room for one more.
        await silent[0].send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await answers(silent[0], quiet=WAIT, most=1))[0]["type"] == "connection_ack"
        another = await open_socket(server, protocol)
        assert await answers(another, quiet=0.1) == []  # open, waiting for its init
        await another.close()
    finally:
        for ws in silent:
            await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_over_its_message_rate_is_closed(
    server: LoopLiveServer, http: httpx.AsyncClient, logs: list[str], protocol: Protocol
) -> None:
    ws = await acknowledged(server, protocol)
    harmless = {"type": "ping"} if protocol == TRANSPORT_WS else {"type": "stop", "id": "none"}
    for _ in range(BURST * 3):
        try:
            await ws.send(json.dumps(harmless))
        except ConnectionClosed:
            break
    got = await answers(ws, quiet=WAIT)
    assert got[-1] == 1008, got
    assert "Too many messages" in (ws.close_reason or "")
    await healthy(http)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_message_over_the_size_limit_closes_the_socket(
    server: LoopLiveServer, http: httpx.AsyncClient, logs: list[str], protocol: Protocol
) -> None:
    ws = await acknowledged(server, protocol)
    query = "{ __typename " + " " * MAX_MESSAGE + "}"
    await ws.send(json.dumps({"type": "start", "id": "1", "payload": {"query": query}}))
    assert await answers(ws, quiet=WAIT) == [1009]
    await healthy(http)


async def raw_request(server: LoopLiveServer, head: bytes) -> bytes:
    """Sends a request head as bytes and reads the status line and headers of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "extra",
    [
        b"".join(b"X-H%d: a\r\n" % i for i in range(MAX_HEADERS + 1)),
        b"X-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n",
        b"X-Big: " + b"a" * 1_000_000 + b"\r\n",
    ],
    ids=["too-many", "too-large", "a-megabyte"],
)
@pytest.mark.parametrize("path", [b"/healthz", b"/graphql?query=%7B__typename%7D"])
async def test_headers_over_the_limits_are_refused_at_once(
    server: LoopLiveServer, http: httpx.AsyncClient, logs: list[str], extra: bytes, path: bytes
) -> None:
    head = b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"
    answer = await raw_request(server, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    await healthy(http)


async def test_a_websocket_handshake_with_too_many_headers_is_refused(
    server: LoopLiveServer, logs: list[str]
) -> None:
    headers = {f"X-H{i}": "a" for i in range(MAX_HEADERS)}
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            server.ws_url,
            subprotocols=[Subprotocol(TRANSPORT_WS)],
            additional_headers=headers,
            proxy=None,
            open_timeout=WAIT,
        )
    assert refused.value.response.status_code == 403  # closed before the socket was accepted


# ------------------------------------------------------------------ failed keys, per address

FAILURES = 3
TYPENAME = {"query": "{ __typename }"}


@pytest.fixture(scope="module")
async def keyed_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LoopLiveServer]:
    settings = {
        "auth_enabled": True,
        "auth_failure_burst": FAILURES,
        "auth_failure_rate_per_second": 0.2,
    }
    async with fresh_live_server(backend, tmp_path_factory, **settings) as started:
        yield started


async def test_failed_keys_are_limited_per_address_on_every_transport(
    keyed_server: LoopLiveServer, logs: list[str]
) -> None:
    wrong = {"authorization": "Bearer cq_wrong"}
    async with httpx.AsyncClient(base_url=keyed_server.url, timeout=WAIT) as http:
        statuses = [
            (await http.post("/graphql", json=TYPENAME, headers=wrong)).status_code
            for _ in range(FAILURES)
        ]
        assert statuses == [401] * FAILURES
        refused = await http.post("/graphql", json=TYPENAME, headers=wrong)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        (error,) = refused.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert "failed authentication attempts" in error["message"]
        assert (await http.get("/healthz")).status_code == 200
    for protocol in PROTOCOLS:
        ws = await open_socket(keyed_server, protocol)
        await ws.send(json.dumps({"type": "connection_init", "payload": wrong}))
        got = await answers(ws, quiet=WAIT)
        assert got[-1] == 4429, (protocol, got)
        if protocol == LEGACY_WS:
            assert got[0]["payload"]["extensions"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_argument_the_database_cannot_use_is_refused(
    server: LoopLiveServer, logs: list[str], protocol: Protocol
) -> None:
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        operation = await ws.subscribe(
            'subscription { executionUpdates(after: "9999-12-31T23:59:59-23:59") { seq } }'
        )
        answer = await ws.receive(operation, within=WAIT)
        assert [e["extensions"]["code"] for e in answer.errors] == ["BAD_USER_INPUT"], answer
        assert answer.errors[0]["extensions"]["field"] == "after"
        if answer.kind == "next":  # an execution error of the subscription: then it ends
            assert (await ws.receive(operation, within=WAIT)).kind == "complete"
        else:
            assert answer.kind == "error"
