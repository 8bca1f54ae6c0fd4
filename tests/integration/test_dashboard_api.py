"""What the dashboard reads besides the lists: status counts, the caller's role, and the
executionUpdates replay (`after`) that lets a reconnecting page catch up without a gap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from backend.config.settings import Settings
from backend.core.identity import Role
from backend.main import create_app
from backend.models import DEFAULT_WORKSPACE_ID
from backend.services.bundle import Services
from backend.utils.time import utcnow
from tests.conftest import _clean
from tests.support.auth import bearer, make_key
from tests.support.executions import launch
from tests.support.graphql import GraphQLClient

CREW = {
    "name": "Counted",
    "agents": [{"name": "Solo", "role": "r", "goal": "g", "llm": "simulated"}],
    "tasks": [{"name": "T", "description": "Say {q}", "expectedOutput": "x", "agent": "Solo"}],
}
COUNTS = "query { executionStatusCounts { status count } }"


async def test_status_counts(client: GraphQLClient) -> None:
    before = {
        c["status"]: c["count"] for c in (await client.execute(COUNTS))["executionStatusCounts"]
    }
    assert set(before) >= {"QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
    for _ in range(3):
        await launch(client, crew=CREW, inputs={"q": "x"})  # no runner: they stay QUEUED
    after = {
        c["status"]: c["count"] for c in (await client.execute(COUNTS))["executionStatusCounts"]
    }
    assert after["QUEUED"] == before["QUEUED"] + 3
    bad = await client.post('query { executionStatusCounts(crewId: "nope") { count } }')
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_me_without_auth(client: GraphQLClient) -> None:
    me = (await client.execute("query { me { role authenticated workspaceId } }"))["me"]
    assert me == {"role": "ADMIN", "authenticated": False, "workspaceId": str(DEFAULT_WORKSPACE_ID)}


async def test_me_tells_a_viewer_its_role(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    try:
        viewer = await make_key(app.state.services, DEFAULT_WORKSPACE_ID, Role.VIEWER)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await GraphQLClient(http).post(
                "query { me { role authenticated keyPrefix } }", headers=bearer(viewer)
            )
    finally:
        await _clean(app)
        await app.state.engine.dispose()
    me = response.json()["data"]["me"]
    assert me["role"] == "VIEWER"
    assert me["authenticated"] is True
    assert viewer.startswith(me["keyPrefix"])


async def test_updates_replay_after_an_instant(client: GraphQLClient, services: Services) -> None:
    since = utcnow() - timedelta(seconds=1)
    launched = [(await launch(client, crew=CREW, inputs={"q": "x"}))["id"] for _ in range(2)]
    stream = services.watch.stream_updates(DEFAULT_WORKSPACE_ID, after=since)
    try:
        first = await asyncio.wait_for(anext(stream), 5)
        second = await asyncio.wait_for(anext(stream), 5)
    finally:
        await stream.aclose()
    assert [str(first.execution_id), str(second.execution_id)] == launched
    assert {first.type, second.type} == {"EXECUTION_QUEUED"}
