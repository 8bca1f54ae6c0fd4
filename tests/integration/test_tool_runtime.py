"""A task's tools as a run gets them (runner/tools): built-in tools and a real MCP server over
streamable HTTP and SSE, driven by a PydanticAI agent with a scripted FunctionModel, on SQLite
and PostgreSQL. Failing, slow and oversized tools come back to the model as failed results."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import delete
from starlette.applications import Starlette

from backend.config.settings import Settings, StdioServer
from backend.core.errors import InUse
from backend.core.secret_box import generate_key
from backend.main import create_app
from backend.models import DEFAULT_WORKSPACE_ID, Secret
from backend.runner.tools import Toolbox, build_toolsets
from backend.schemas.secret import SecretSet
from backend.schemas.tool import McpHeader, McpServerCreate, McpTransport
from backend.services.bundle import Services
from backend.services.secret_service import SecretMissing
from tests.support.databases import make_settings
from tests.support.mcp_server import RunningMcpServer, mcp_server

TOKEN = "mcp-token-4b1d-very-secret"
WS = DEFAULT_WORKSPACE_ID


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        secrets_key=generate_key(),
        tool_timeout_seconds=1.0,
        tool_output_max_chars=200,
        mcp_tools_cache_seconds=0,
    )


@pytest.fixture(scope="module", params=["streamable_http", "sse"])
def calc(request: pytest.FixtureRequest) -> Iterator[RunningMcpServer]:
    with mcp_server(request.param) as server:
        yield server


async def register(services: Services, server: RunningMcpServer, name: str = "calc") -> None:
    await services.secrets.set(WS, SecretSet(name="MCP_TOKEN", value=TOKEN), "test")
    await services.tools.servers.create(
        WS,
        McpServerCreate(
            name=name,
            url=server.url,
            transport=McpTransport(server.transport),
            headers=[McpHeader(name="X-Token", secret="MCP_TOKEN")],
        ),
    )


def scripted(calls: list[tuple[str, dict[str, Any]]]) -> tuple[FunctionModel, list[ModelRequest]]:
    """A model that makes these tool calls at once, then answers with what it got back."""
    seen: list[ModelRequest] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart(name, args) for name, args in calls])
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        seen.append(last)
        return ModelResponse(parts=[TextPart("done")])

    return FunctionModel(model), seen


def returns(request: ModelRequest) -> dict[str, ToolReturnPart]:
    return {p.tool_name: p for p in request.parts if isinstance(p, ToolReturnPart)}


async def run(toolbox: Toolbox, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    model, seen = scripted(calls)
    result = await Agent(model, toolsets=toolbox.toolsets).run("go")
    assert result.output == "done"
    (request,) = seen
    return returns(request)


async def test_mcp_tools_run_and_a_failing_one_goes_back_to_the_model(
    services: Services, settings: Settings, calc: RunningMcpServer
) -> None:
    await register(services, calc)
    names = ["current_time", "mcp:calc/add", "mcp:calc/explode", "mcp:calc/gone"]
    toolbox = await build_toolsets(WS, names, source=services.tools, settings=settings)
    assert toolbox.missing == ["mcp:calc/gone"]
    assert toolbox.secret_values == [TOKEN]
    assert toolbox.catalog_name("mcp_calc__add") == "mcp:calc/add"
    got = await run(
        toolbox,
        [
            ("mcp_calc__add", {"a": 2, "b": 3}),
            ("mcp_calc__explode", {"reason": "on purpose"}),
            ("current_time", {"timezone": "Europe/Paris"}),
        ],
    )
    assert got["mcp_calc__add"].content == 5
    assert got["mcp_calc__add"].outcome == "success"
    assert got["mcp_calc__explode"].outcome == "failed"
    assert got["current_time"].outcome == "success"
    assert "+01:00" in str(got["current_time"].content)
    assert TOKEN in calc.header_values("x-token")


async def test_slow_and_oversized_tools_are_cut_short(
    services: Services, settings: Settings, calc: RunningMcpServer
) -> None:
    await register(services, calc)
    toolbox = await build_toolsets(
        WS, ["mcp:calc/slow", "mcp:calc/add"], source=services.tools, settings=settings
    )
    got = await run(toolbox, [("mcp_calc__slow", {"seconds": 5})])
    assert got["mcp_calc__slow"].outcome == "failed"
    assert "timed out after 1 s" in got["mcp_calc__slow"].model_response_str()


async def test_a_server_that_is_down_leaves_its_tools_out(
    services: Services, settings: Settings
) -> None:
    with mcp_server() as short_lived:
        await register(services, short_lived, "gone")
    toolbox = await build_toolsets(
        WS, ["mcp:gone/add", "current_time"], source=services.tools, settings=settings
    )
    assert toolbox.missing == ["mcp:gone/add"]
    assert list(toolbox.names) == ["current_time"]


async def test_a_header_secret_in_use_stays_and_a_vanished_one_is_reported(
    app: Starlette, services: Services, settings: Settings, calc: RunningMcpServer
) -> None:
    await register(services, calc)
    with pytest.raises(InUse) as refused:
        await services.secrets.delete(WS, "MCP_TOKEN")
    assert refused.value.used_by == ["mcp_server:calc"]
    async with app.state.engine.begin() as connection:  # as if removed behind the API's back
        await connection.execute(delete(Secret))
    with pytest.raises(SecretMissing) as missing:
        await build_toolsets(WS, ["mcp:calc/add"], source=services.tools, settings=settings)
    assert missing.value.name == "MCP_TOKEN"


def test_output_cap_note() -> None:
    from backend.runner.tools.guard import cap_output

    assert cap_output("x" * 10, 20) == "x" * 10
    capped = cap_output("y" * 500, 100)
    assert capped.startswith("y" * 100)
    assert "truncated at 100" in capped
    assert cap_output({"a": 1}, 100) == {"a": 1}
    assert "truncated" in cap_output({"a": "z" * 300}, 100)
    assert json.loads(json.dumps(cap_output(5, 1))) == 5


async def test_tool_lists_are_kept_briefly_and_fetched_once_at_a_time(
    calc: RunningMcpServer,
) -> None:
    import asyncio

    from backend.core.tools.mcp_client import McpEndpoint, McpToolLister

    now = [0.0]
    lister = McpToolLister(ttl=30, timeout=10, clock=lambda: now[0])
    endpoint = McpEndpoint(name="calc", transport=calc.transport, url=calc.url)
    before = len(calc.requests)
    lists = await asyncio.gather(*(lister.tools(endpoint) for _ in range(5)))
    assert all(sorted(t.name for t in found) == ["add", "explode", "slow"] for found in lists)
    first = len(calc.requests) - before
    assert first > 0
    await lister.tools(endpoint)
    assert len(calc.requests) - before == first  # within the 30 s: no new session
    now[0] = 31.0
    await lister.tools(endpoint)
    assert len(calc.requests) - before == 2 * first


@pytest.fixture
def stdio_settings(database_url: str, backend: str) -> Settings:
    if backend != "sqlite":
        pytest.skip("starting a stdio server does not depend on the database: once is enough")
    root = Path(__file__).resolve().parents[2]
    server = StdioServer(
        command=sys.executable, args=["-m", "tests.support.mcp_server"], cwd=str(root)
    )
    return make_settings(
        database_url,
        secrets_key=generate_key(),
        mcp_connect_timeout_seconds=30,
        mcp_stdio_servers={"local": server},
    )


async def test_stdio_servers_come_from_the_settings(stdio_settings: Settings) -> None:
    """A process-based MCP server listed in the settings: in the catalog of every workspace, and
    its tools run; it cannot be registered through the API (test_mcp_servers_api.py)."""
    app = create_app(stdio_settings)
    try:
        services: Services = app.state.services
        catalog = [t.name for t in await services.tools.catalog(WS)]
        assert "mcp:local/add" in catalog
        toolbox = await build_toolsets(
            WS, ["mcp:local/add"], source=services.tools, settings=stdio_settings
        )
        got = await run(toolbox, [("mcp_local__add", {"a": 20, "b": 22})])
        assert got["mcp_local__add"].content == 42
    finally:
        await app.state.engine.dispose()
