"""A crew whose agent calls MCP tools and `http_request`, run by the embedded runner on SQLite and
PostgreSQL: the simulated model's script calls a real MCP server (streamable HTTP, loopback) and a
local HTTP server; TOOL_CALL_* events arrive in order, a failing tool does not fail the task, and
the MCP server's credential (a workspace secret) reaches it and appears in no response, event or
log file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from starlette.applications import Starlette

from backend.config.logging import configure_logging
from backend.config.settings import Settings, load_settings
from backend.core.secret_box import generate_key
from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas.secret import SecretSet
from backend.schemas.tool import McpHeader, McpServerCreate
from backend.services.bundle import Services
from tests.support.databases import make_settings
from tests.support.executions import launch, wait_for
from tests.support.graphql import GraphQLClient
from tests.support.http_target import HttpTarget, http_target
from tests.support.log_files import read_logs
from tests.support.mcp_server import RunningMcpServer, mcp_server

TOKEN = "mcp-run-token-9f8e7d6c5b4a"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        auth_enabled=False,
        secrets_key=generate_key(),
        simulated_delay_seconds=0,
        http_tool_allow_private_addresses=True,
        log_to_files=True,
        log_dir=tmp_path / "logs",
        log_level="DEBUG",
    )


@pytest.fixture
async def logs(settings: Settings) -> AsyncIterator[Path]:
    configure_logging(settings)
    try:
        yield settings.log_dir
    finally:
        await logger.complete()
        configure_logging(make_settings(settings.database_url))


@pytest.fixture(scope="module")
def calc() -> Iterator[RunningMcpServer]:
    with mcp_server() as server:
        yield server


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


async def execute(client: GraphQLClient, query: str, **variables: Any) -> dict[str, Any]:
    data = await client.execute(query, variables)
    (result,) = data.values()
    assert "id" in result, result
    return dict(result)


async def test_a_tool_using_crew_runs_and_keeps_its_secret(
    running_app: Starlette,
    client: GraphQLClient,
    services: Services,
    calc: RunningMcpServer,
    target: HttpTarget,
    logs: Path,
) -> None:
    await services.secrets.set(DEFAULT_WORKSPACE_ID, SecretSet(name="MCP_TOKEN", value=TOKEN), "t")
    await services.tools.servers.create(
        DEFAULT_WORKSPACE_ID,
        McpServerCreate(
            name="calc", url=calc.url, headers=[McpHeader(name="X-Token", secret="MCP_TOKEN")]
        ),
    )
    await services.tools.set_http_allowlist(DEFAULT_WORKSPACE_ID, [target.host])
    script = ",".join(
        [
            'call=mcp_calc__add{"a":2,"b":3}',
            'call=mcp_calc__explode{"reason":"on-purpose"}',
            f'call=http_request{{"url":"{target.url("/echo")}"}}',
            "delay=0",
        ]
    )
    agent = await execute(
        client,
        """mutation($input: AgentCreateInput!) { createAgent(input: $input) {
          ... on Agent { id } ... on Error { code message } } }""",
        input={
            "name": "calculator",
            "role": "Calculator",
            "goal": "Add numbers",
            "llm": f"simulated/{script}",
            "tools": ["mcp:calc/add", "mcp:calc/explode"],
        },
    )
    task = await execute(
        client,
        """mutation($input: TaskCreateInput!) { createTask(input: $input) {
          ... on Task { id } ... on Error { code message } } }""",
        input={
            "name": "sum",
            "description": "Add 2 and 3",
            "expectedOutput": "the sum",
            "agentId": agent["id"],
            "tools": ["http_request"],
        },
    )
    crew = await execute(
        client,
        """mutation($input: CrewCreateInput!) { createCrew(input: $input) {
          ... on Crew { id } ... on Error { code message } } }""",
        input={"name": "calc crew", "taskIds": [task["id"]]},
    )
    launched = await launch(client, crewId=crew["id"])
    done = await wait_for(client, launched["id"], within=60)
    assert done["status"] == "COMPLETED", done

    events = done["events"]
    tool_events = [(e["type"], e["data"].get("tool")) for e in events if "TOOL" in e["type"]]
    assert tool_events == [
        ("TOOL_CALL_STARTED", "mcp:calc/add"),
        ("TOOL_CALL_COMPLETED", "mcp:calc/add"),
        ("TOOL_CALL_STARTED", "mcp:calc/explode"),
        ("TOOL_CALL_FAILED", "mcp:calc/explode"),
        ("TOOL_CALL_STARTED", "http_request"),
        ("TOOL_CALL_COMPLETED", "http_request"),
    ]
    (output,) = [t["output"] for t in done["tasks"]]
    assert "returned: 5" in output

    assert TOKEN in calc.header_values("x-token")
    assert TOKEN not in json.dumps(done)
    await logger.complete()
    written = read_logs(logs)
    assert "TOOL" in written or "execution" in written  # the log files were written to
    assert TOKEN not in written
