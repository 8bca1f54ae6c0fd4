"""Documents made to be expensive are refused at once, on every transport, and stall nothing.

A fragment "bomb" spreads each fragment's successor twice: 837 bytes at 20 levels mean 2^20
field selections. The limits (backend/api/graphql/limits.py) measure each fragment once, so the
bomb is refused by its field count; meanwhile /healthz and an ordinary query answer as usual.
Each case runs against a real uvicorn server, over HTTP and both websocket protocols, on SQLite
and PostgreSQL, and the server's log must stay free of ERROR lines and tracebacks.
Refusal times are measured by bench/hostile.py, not asserted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.live_server import LoopLiveServer
from tests.support.server_log import error_lines
from tests.support.ws_client import PROTOCOLS, GraphQLWebSocket, Protocol

LEVELS = [20, 30, 60]


def fragment_bomb(levels: int, root: str = "Query", operation: str = "query") -> str:
    parts = [f"{operation} Bomb {{ ...F0 }}"]
    parts += [f"fragment F{i} on {root} {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on {root} {{ __typename }}")
    return " ".join(parts)


MANY_FIELDS = "{ " + " ".join(["__typename"] * 1_101) + " }"


@pytest.fixture(scope="module")
def live_server_overrides() -> dict[str, Any]:
    return {"max_tokens": 5_000}  # room for the 1,101-field document: the field limit answers


@pytest.fixture
def server(module_live_server: LoopLiveServer) -> LoopLiveServer:
    return module_live_server


@pytest.fixture
async def http(server: LoopLiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """The server's ERROR lines and tracebacks during the test: there must be none."""
    with error_lines() as lines:
        yield lines
    assert lines == []


def assert_field_limit(errors: list[dict[str, Any]]) -> None:
    assert len(errors) == 1, errors
    (error,) = errors
    assert "CREWQL_MAX_FIELDS" in error["message"], error
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["extensions"]["limit"] == "fields"


async def healthy_meanwhile(http: httpx.AsyncClient) -> None:
    """/healthz and an ordinary query, sent while the attack is in flight."""
    health, query = await asyncio.gather(
        http.get("/healthz"), http.post("/graphql", json={"query": "{ __typename }"})
    )
    assert health.status_code == 200
    assert query.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("levels", LEVELS)
async def test_fragment_bomb_over_http_is_refused(
    http: httpx.AsyncClient, logs: list[str], levels: int
) -> None:
    bomb = http.post("/graphql", json={"query": fragment_bomb(levels)})
    response, _ = await asyncio.gather(bomb, healthy_meanwhile(http))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["errors"]
    assert_field_limit(body["errors"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("levels", LEVELS)
async def test_fragment_bomb_over_websocket_is_refused(
    server: LoopLiveServer,
    http: httpx.AsyncClient,
    logs: list[str],
    protocol: Protocol,
    levels: int,
) -> None:
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        operation = await ws.subscribe(fragment_bomb(levels, "Subscription", "subscription"))
        answer, _ = await asyncio.gather(ws.receive(operation), healthy_meanwhile(http))
        assert answer.kind == "error", answer
        assert_field_limit(answer.errors)
        # The socket still serves: the refusal was the operation's, not the connection's.
        again = await ws.subscribe(fragment_bomb(levels, "Subscription", "subscription"))
        assert (await ws.receive(again)).kind == "error"


async def test_too_many_fields_is_explained(http: httpx.AsyncClient, logs: list[str]) -> None:
    """graphql-core's own answer was a bare "Validation aborted."."""
    response = await http.post("/graphql", json={"query": MANY_FIELDS})
    errors = response.json()["errors"]
    assert_field_limit(errors)
    assert "selects 1,101 fields" in errors[0]["message"]
