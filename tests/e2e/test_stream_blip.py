"""Live event streams ride out a database connection blip (PostgreSQL: pg_terminate_backend).

Every connection of the server to its database is terminated, three times, while an execution
runs and open `executionEvents` streams (both websocket protocols) are mid-way, and new streams
start reading the history right after each blip. Each stream must go on
and end only at the execution's end: every seq once, in order, no error, no INTERNAL, then
`complete`. Before the fix 1-6 of 40 streams ended early with "Unexpected error." and `complete`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.server_log import error_lines
from tests.support.ws_client import PROTOCOLS, GraphQLWebSocket, OperationResult

pytestmark = pytest.mark.postgres

STREAMS_PER_PROTOCOL = 5
EVENTS = """
subscription Events($id: ID!) {
  executionEvents(executionId: $id) { seq type }
}"""
LAUNCH = """
mutation($input: ExecutionCreateInput!) {
  createExecution(input: $input) { ... on Execution { id } }
}"""
TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()"""


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoopLiveServer]:
    settings = {"output_flush_interval_seconds": 0.05, "runner_poll_interval_seconds": 0.2}
    async with fresh_live_server("postgres", tmp_path_factory, **settings) as started:
        yield started


async def terminate_connections(server: LoopLiveServer) -> int:
    url = server.app.state.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval(TERMINATE)
        return count
    finally:
        await connection.close()


async def watch(server: LoopLiveServer, protocol: Any, execution_id: str) -> OperationResult:
    async with GraphQLWebSocket.connect(server.ws_url, protocol) as ws:
        operation = await ws.subscribe(EVENTS, {"id": execution_id})
        return await ws.collect(operation, within=30)


async def test_streams_survive_terminated_database_connections(server: LoopLiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        client = GraphQLClient(http)
        agent = await create_agent(client, "blip agent", llm="simulated/delay=2,chunk=4")
        tasks = [await create_task(client, f"blip step {i}", agent) for i in range(3)]
        crew = await create_crew(client, "blip crew", tasks)
        data = await client.execute(LAUNCH, {"input": {"crewId": crew}})
        execution_id = data["createExecution"]["id"]
        with error_lines() as errors:
            watchers = [
                asyncio.create_task(watch(server, protocol, execution_id))
                for protocol in PROTOCOLS
                for _ in range(STREAMS_PER_PROTOCOL)
            ]
            for _ in range(3):
                await asyncio.sleep(1.0)  # streams are mid-way, the runner is writing
                assert await terminate_connections(server) > 0
                # Late joiners read the history at once, on pooled connections that just died.
                watchers += [
                    asyncio.create_task(watch(server, protocol, execution_id))
                    for protocol in PROTOCOLS
                    for _ in range(STREAMS_PER_PROTOCOL)
                ]
            results = await asyncio.wait_for(asyncio.gather(*watchers), 60)
            assert (await http.get("/healthz")).status_code == 200
        assert errors == [], errors
    for result in results:
        assert result.errors == [], result.errors
        assert result.ended_by == "complete"
        events = result.field("executionEvents")
        seqs = [event["seq"] for event in events]
        assert seqs == list(range(1, len(seqs) + 1)), seqs  # every seq once, in order
        assert events[-1]["type"] in ("EXECUTION_COMPLETED", "EXECUTION_CRASHED")
    assert len({len(result.results) for result in results}) == 1  # all saw the same stream
