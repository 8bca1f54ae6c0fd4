"""Websockets: which subprotocol a client gets, and trusted documents on both protocols.

A client offering both protocols (gql does, the legacy one first) gets graphql-transport-ws, the
one that carries queries and mutations. With CREWQL_TRUSTED_DOCUMENTS_ONLY, a document that is
not trusted is refused on a websocket too, as a GraphQL error of that operation
(PERSISTED_QUERY_NOT_IN_LIST), while a trusted one runs.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from backend.services.document_service import TrustedDocument
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.ws_client import PROTOCOLS, GraphQLWebSocket, Protocol

TRUSTED = "subscription Updates { executionUpdates { executionId } }"
UNTRUSTED = "subscription Other { executionUpdates { seq } }"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["graphql-ws", "graphql-transport-ws"], "graphql-transport-ws"),
        (["graphql-transport-ws", "graphql-ws"], "graphql-transport-ws"),
        (["graphql-ws"], "graphql-ws"),
    ],
)
async def test_graphql_transport_ws_is_chosen_when_offered(
    module_live_server: LoopLiveServer, offered: list[str], chosen: str
) -> None:
    protocols = [Subprotocol(name) for name in offered]
    async with connect(module_live_server.ws_url, subprotocols=protocols, proxy=None) as ws:
        assert ws.subprotocol == chosen


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_only_trusted_documents_run_on_websockets(
    backend: str, tmp_path_factory: pytest.TempPathFactory, protocol: Protocol
) -> None:
    settings = {"trusted_documents_only": True, "runner_enabled": False}
    async with fresh_live_server(backend, tmp_path_factory, **settings) as server:
        assert server.loop is not None
        documents = server.app.state.services.documents
        added = asyncio.run_coroutine_threadsafe(
            documents.add_trusted([TrustedDocument(TRUSTED)]), server.loop
        )
        await asyncio.wrap_future(added)
        async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
            refused = await ws.subscribe(UNTRUSTED)
            answer = await ws.receive(refused)
            assert answer.errors, answer
            assert answer.errors[0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
            trusted = await ws.subscribe(TRUSTED)
            await ws.expect_silence(0.3)  # subscribed: no error, waiting for updates
            await ws.stop(trusted)
