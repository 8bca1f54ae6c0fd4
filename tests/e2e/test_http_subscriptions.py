"""Subscriptions over HTTP on a real uvicorn server: Apollo's multipart protocol and graphql-sse.

The same contract as over websockets (test_websocket_executions.py): `executionEvents` delivers the
stored events, then the live ones, gapless and in order, and the stream ends after the terminal
event. Also: the per-key subscription cap and revocation hold for streams, a client that leaves
frees what the server held for it, and a subscription sent without a streaming `Accept` gets a
406 naming the transports that carry it. Nothing here may log an ERROR on the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from backend.core.identity import Role
from backend.models import DEFAULT_WORKSPACE_ID
from tests.support.auth import bearer, make_key
from tests.support.graphql import GraphQLClient
from tests.support.http_stream import (
    MULTIPART_ACCEPT,
    SSE_ACCEPT,
    multipart_parts,
    multipart_payloads,
    sse_events,
)
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.operations import CREATE_EXECUTION
from tests.support.server_log import error_lines

EVENTS = """
subscription Events($id: ID!, $after: Int) {
  executionEvents(executionId: $id, after: $after) { seq type }
}"""
UPDATES = "subscription { executionUpdates { executionId } }"
TERMINAL = "EXECUTION_COMPLETED"
# Long enough (3 tasks x 0.6 s) that a subscriber arrives mid-run: history first, then live.
LLM = "simulated/delay=0.6,chunk=8"


@pytest.fixture(scope="module")
def live_server_overrides() -> dict[str, Any]:
    return {"output_flush_interval_seconds": 0.02, "runner_poll_interval_seconds": 0.1}


@pytest.fixture
def no_errors_logged() -> Iterator[None]:
    with error_lines() as lines:
        yield
    assert lines == [], lines


@pytest.fixture
async def http(
    module_live_server: LoopLiveServer, no_errors_logged: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=module_live_server.url, trust_env=False, timeout=15) as c:
        yield c


def inline_crew(tasks: int = 3) -> dict[str, Any]:
    return {
        "name": "http-stream crew",
        "agents": [{"name": "writer", "role": "Writer", "goal": "Write", "llm": LLM}],
        "tasks": [
            {
                "name": f"step {i}",
                "description": f"Step {i}",
                "expectedOutput": "Notes",
                "agent": "writer",
            }
            for i in range(tasks)
        ],
    }


async def launch(http: httpx.AsyncClient, tasks: int = 3) -> str:
    data = await GraphQLClient(http).execute(
        CREATE_EXECUTION, {"input": {"crew": inline_crew(tasks)}}
    )
    result = data["createExecution"]
    assert result["__typename"] == "Execution", result
    return str(result["id"])


async def wait_for_event(http: httpx.AsyncClient, execution_id: str, seq: int) -> None:
    query = "query($id: ID!) { execution(id: $id) { lastSeq } }"
    for _ in range(300):
        data = await GraphQLClient(http).execute(query, {"id": execution_id})
        if data["execution"]["lastSeq"] >= seq:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution {execution_id} never reached event {seq}")


def assert_whole_history(events: list[dict[str, Any]], after: int = 0) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs
    assert events[-1]["type"] == TERMINAL, events[-1]


def subscribe_body(execution_id: str, after: int | None = None) -> dict[str, Any]:
    return {"query": EVENTS, "variables": {"id": execution_id, "after": after}}


async def test_multipart_subscription_gets_history_then_live_events_and_completes(
    http: httpx.AsyncClient,
) -> None:
    execution_id = await launch(http)
    await wait_for_event(http, execution_id, 3)  # some history exists, the rest is to come
    async with http.stream(
        "POST", "/graphql", json=subscribe_body(execution_id), headers={"accept": MULTIPART_ACCEPT}
    ) as response:
        assert response.status_code == 200
        assert "subscriptionSpec=1.0" in response.headers["content-type"]
        payloads = await multipart_payloads(response)
    assert all("errors" not in p for p in payloads), payloads
    assert_whole_history([p["data"]["executionEvents"] for p in payloads])


async def test_sse_subscription_resumes_after_a_seq_and_completes(http: httpx.AsyncClient) -> None:
    execution_id = await launch(http, tasks=1)
    await wait_for_event(http, execution_id, 2)
    async with http.stream(
        "POST", "/graphql", json=subscribe_body(execution_id, 2), headers={"accept": SSE_ACCEPT}
    ) as response:
        assert response.status_code == 200
        received = [item async for item in sse_events(response)]
    kinds = [kind for kind, _ in received]
    assert kinds[-1] == "complete", kinds
    assert set(kinds[:-1]) == {"next"}, kinds
    assert_whole_history([data["data"]["executionEvents"] for _, data in received[:-1]], after=2)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_subscription_without_a_streaming_accept_is_told_which_transports_work(
    http: httpx.AsyncClient, method: str
) -> None:
    if method == "GET":
        response = await http.get("/graphql", params={"query": UPDATES})
    else:
        response = await http.post("/graphql", json={"query": UPDATES})
    assert response.status_code == 406, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "NOT_ACCEPTABLE"
    for transport in ("multipart/mixed", "text/event-stream", "graphql-transport-ws"):
        assert transport in error["message"]


async def test_queries_stream_as_one_result_and_errors_keep_their_codes(
    http: httpx.AsyncClient,
) -> None:
    headers = {"accept": MULTIPART_ACCEPT}
    query = {"query": "{ agents(first: 1) { nodes { id } } }"}
    async with http.stream("POST", "/graphql", json=query, headers=headers) as response:
        (payload,) = await multipart_payloads(response)
    assert payload == {"data": {"agents": {"nodes": []}}}
    missing = subscribe_body("00000000-0000-7000-8000-00000000abcd")
    async with http.stream("POST", "/graphql", json=missing, headers=headers) as response:
        (payload,) = await multipart_payloads(response)
    assert payload["errors"][0]["extensions"]["code"] == "NOT_FOUND", payload


async def test_a_client_that_leaves_frees_its_subscriber(
    module_live_server: LoopLiveServer, http: httpx.AsyncClient
) -> None:
    bus = module_live_server.app.state.services.bus
    async with http.stream(
        "POST", "/graphql", json={"query": UPDATES}, headers={"accept": MULTIPART_ACCEPT}
    ) as response:
        parts = multipart_parts(response)
        assert await anext(parts) == {}  # the first heartbeat: the stream is open
        assert await module_live_server.call(lambda: bus.subscriber_count) == 1
    # The server notices at its next write, the heartbeat every 5 s: allow twice that (with
    # exactly 5 s this failed now and then on a loaded machine).
    for _ in range(200):
        if await module_live_server.call(lambda: bus.subscriber_count) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server still holds the subscriber of a client that left")


# ----------------------------------------------------------------------------- with keys


async def test_streams_need_a_key_hold_a_slot_and_end_on_revocation(
    backend: str, tmp_path_factory: pytest.TempPathFactory, no_errors_logged: None
) -> None:
    settings = {"auth_enabled": True, "max_subscriptions_per_key": 1, "runner_enabled": False}
    async with (
        fresh_live_server(backend, tmp_path_factory, **settings) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=15) as http,
    ):
        assert server.loop is not None
        services = server.app.state.services
        loop = server.loop

        async def key(role: Role) -> str:
            created = asyncio.run_coroutine_threadsafe(
                make_key(services, DEFAULT_WORKSPACE_ID, role), loop
            )
            return await asyncio.wrap_future(created)

        viewer, admin = await key(Role.VIEWER), await key(Role.ADMIN)
        stream_headers = {"accept": MULTIPART_ACCEPT}
        body = {"query": UPDATES}
        refused = await http.post("/graphql", json=body, headers=stream_headers)
        assert refused.status_code == 401

        headers = {**stream_headers, **bearer(viewer)}
        async with http.stream("POST", "/graphql", json=body, headers=headers) as first:
            parts = multipart_parts(first)
            assert await anext(parts) == {}
            second = await http.post("/graphql", json=body, headers=headers)
            assert second.status_code == 429
            assert second.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

            keys = await http.post(
                "/graphql", json={"query": "{ apiKeys { id prefix } }"}, headers=bearer(admin)
            )
            (target,) = [
                k for k in keys.json()["data"]["apiKeys"] if viewer.startswith(k["prefix"])
            ]
            revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }"
            await http.post(
                "/graphql",
                json={"query": revoke, "variables": {"id": target["id"]}},
                headers=bearer(admin),
            )
            rest = [part async for part in parts]  # ends when the server ends the stream
            assert all(part == {} for part in rest), rest
        # the slot went with the stream: no key holds one any more
        assert await server.call(lambda: len(services.subscriptions)) == 0


URQL_QUERY_ACCEPT = (
    "application/graphql-response+json, application/graphql+json, application/json, "
    "text/event-stream, multipart/mixed"
)


async def test_a_client_that_prefers_json_gets_json_for_a_query(http: httpx.AsyncClient) -> None:
    """urql accepts streams for every operation but lists JSON first: a query is answered as
    JSON, while the same Accept with a stream first (urql's subscriptions) streams."""
    query = {"query": "{ agents(first: 1) { nodes { id } } }"}
    response = await http.post("/graphql", json=query, headers={"accept": URQL_QUERY_ACCEPT})
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert response.json() == {"data": {"agents": {"nodes": []}}}
    streamed = await http.post(
        "/graphql", json=query, headers={"accept": "text/event-stream, multipart/mixed"}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    # LF line ends only: urql's parser finds events by a blank line written "\n\n"
    assert "\r" not in streamed.text
    assert streamed.text.startswith('event: next\ndata: {"data":')
