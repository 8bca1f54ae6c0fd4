"""A crew whose agent calls MCP tools and `http_request`, run by the embedded runner on SQLite and
PostgreSQL: the simulated model's script calls a real MCP server (streamable HTTP, loopback) and a
local HTTP server; TOOL_CALL_* events arrive in order, a failing tool does not fail the task, and
the MCP server's credential (a workspace secret) reaches it and appears in no response, event or
log file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from loguru import logger
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.core.secret_box import generate_key
from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas.secret import SecretSet
from backend.schemas.tool import McpHeader, McpServerCreate
from backend.services.bundle import Services
from tests.support.executions import launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient
from tests.support.http_target import HttpTarget, http_target
from tests.support.log_files import file_logging_settings, logging_to_files, read_logs
from tests.support.mcp_server import RunningMcpServer, mcp_server

TOKEN = "mcp-run-token-9f8e7d6c5b4a"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return file_logging_settings(
        database_url,
        tmp_path / "logs",
        auth_enabled=False,
        secrets_key=generate_key(),
        simulated_delay_seconds=0,
        http_tool_allow_private_addresses=True,
    )


@pytest.fixture
async def logs(settings: Settings) -> AsyncIterator[Path]:
    async with logging_to_files(settings) as directory:
        yield directory


@pytest.fixture(scope="module")
def calc() -> Iterator[RunningMcpServer]:
    with mcp_server() as server:
        yield server


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


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
    agent_id = await create_agent(
        client,
        "calculator",
        llm=f"simulated/{script}",
        tools=["mcp:calc/add", "mcp:calc/explode"],
    )
    task_id = await create_task(client, "sum", agent_id, tools=["http_request"])
    crew_id = await create_crew(client, "calc crew", [task_id])
    launched = await launch(client, crewId=crew_id)
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
