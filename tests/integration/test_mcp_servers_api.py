"""MCP servers and the tool catalog over GraphQL, against a real MCP server (the `mcp` SDK's,
streamable HTTP on loopback), on SQLite and PostgreSQL: registration by admins only, typed
errors for bad URLs, unknown secrets and taken names, tools listed live, servers that are down
reported as such, and the http_request allowlist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from backend.config.settings import Settings, StdioServer
from backend.core.identity import Role
from backend.core.secret_box import generate_key
from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas.secret import SecretSet
from backend.services.bundle import Services
from tests.support.auth import bearer, make_key
from tests.support.databases import make_settings
from tests.support.mcp_server import RunningMcpServer, mcp_server

TOKEN = "mcp-header-secret-77"
CREATE = """mutation($input: McpServerCreateInput!) { createMcpServer(input: $input) {
  __typename ... on McpServer { id name url transport headers { name secret } }
  ... on ValidationError { code fields { field message } }
  ... on ConflictError { code field message } } }"""
UPDATE = """mutation($id: ID!, $input: McpServerUpdateInput!) { updateMcpServer(id: $id,
  input: $input) { __typename ... on McpServer { name url transport }
  ... on Error { code message } ... on ValidationError { fields { field message } } } }"""
DELETE = """mutation($id: ID!) { deleteMcpServer(id: $id) { __typename
  ... on Deleted { id } ... on Error { code message } } }"""
SERVERS = "{ mcpServers { name transport tools { name description inputSchema } } }"
CATALOG = "{ tools { name source server description } }"
ALLOW = """mutation($hosts: [String!]!) { setHttpAllowlist(hosts: $hosts) { __typename
  ... on HttpAllowlist { hosts } ... on ValidationError { fields { field message } } } }"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        auth_enabled=True,
        rate_limit_per_second=0,
        secrets_key=generate_key(),
        mcp_connect_timeout_seconds=3,
        mcp_stdio_servers={"localfs": StdioServer(command="/bin/false")},
    )


@pytest.fixture(scope="module")
def calc() -> Iterator[RunningMcpServer]:
    with mcp_server() as server:
        yield server


async def clients(app: Starlette, services: Services) -> dict[Role, httpx.AsyncClient]:
    found = {}
    for role in Role:
        token = await make_key(services, DEFAULT_WORKSPACE_ID, role)
        found[role] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers=bearer(token),
        )
    return found


async def gql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    body: dict[str, Any] = (
        await http.post("/graphql", json={"query": query, "variables": variables})
    ).json()
    return body


def server_input(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "calc", "url": url, "headers": [{"name": "X-Token", "secret": "T"}], **extra}


async def test_admins_register_servers_and_everyone_sees_their_tools(
    app: Starlette, services: Services, calc: RunningMcpServer
) -> None:
    http = await clients(app, services)
    admin = http[Role.ADMIN]
    refused = await gql(admin, CREATE, input=server_input(calc.url))
    fields = refused["data"]["createMcpServer"]["fields"]
    assert fields == [
        {"field": "headers.0.secret", "message": "secret T is not set in this workspace"}
    ]
    await services.secrets.set(DEFAULT_WORKSPACE_ID, SecretSet(name="T", value=TOKEN), "test")
    for role in (Role.EDITOR, Role.VIEWER):
        body = await gql(http[role], CREATE, input=server_input(calc.url))
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    created = (await gql(admin, CREATE, input=server_input(calc.url)))["data"]["createMcpServer"]
    assert created["__typename"] == "McpServer"
    assert created["transport"] == "STREAMABLE_HTTP"
    assert created["headers"] == [{"name": "X-Token", "secret": "T"}]

    listed = await gql(http[Role.VIEWER], SERVERS)
    (server,) = listed["data"]["mcpServers"]
    assert sorted(t["name"] for t in server["tools"]) == [
        "mcp:calc/add",
        "mcp:calc/explode",
        "mcp:calc/slow",
    ]
    add = next(t for t in server["tools"] if t["name"] == "mcp:calc/add")
    assert add["inputSchema"]["required"] == ["a", "b"]
    assert TOKEN in calc.header_values("x-token")
    assert TOKEN not in str(listed)

    catalog = (await gql(http[Role.VIEWER], CATALOG))["data"]["tools"]
    names = [t["name"] for t in catalog]
    assert names[:2] == ["http_request", "current_time"]
    assert "mcp:calc/add" in names
    assert all(t["source"] == "MCP" for t in catalog[2:])

    taken = (await gql(admin, CREATE, input=server_input(calc.url)))["data"]["createMcpServer"]
    assert taken["__typename"] == "ConflictError"
    assert taken["field"] == "name"
    stdio_name = await gql(admin, CREATE, input=server_input(calc.url, name="localfs"))
    assert stdio_name["data"]["createMcpServer"]["__typename"] == "ConflictError"

    renamed = await gql(
        admin, UPDATE, id=created["id"], input={"name": "calc2", "transport": "SSE"}
    )
    assert renamed["data"]["updateMcpServer"] == {
        "__typename": "McpServer",
        "name": "calc2",
        "url": calc.url,
        "transport": "SSE",
    }
    deleted = await gql(admin, DELETE, id=created["id"])
    assert deleted["data"]["deleteMcpServer"] == {"__typename": "Deleted", "id": created["id"]}
    again = await gql(admin, DELETE, id=created["id"])
    assert again["data"]["deleteMcpServer"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/mcp", "must be an http:// or https:// URL with a host"),
        ("not a url", "must be an http:// or https:// URL with a host"),
        ("http://user:pw@127.0.0.1/mcp", "must not carry credentials"),
        ("http://127.0.0.1:99999/mcp", "has an invalid port"),
        ("http:///mcp", "must be an http:// or https:// URL with a host"),
    ],
)
async def test_bad_urls_are_validation_errors(
    app: Starlette, services: Services, url: str, message: str
) -> None:
    admin = (await clients(app, services))[Role.ADMIN]
    body = await gql(admin, CREATE, input={"name": "bad", "url": url})
    result = body["data"]["createMcpServer"]
    assert result["__typename"] == "ValidationError"
    assert result["fields"][0]["field"] == "url"
    assert message in result["fields"][0]["message"]


async def test_a_server_that_does_not_answer_is_reported_not_hidden(
    app: Starlette, services: Services
) -> None:
    admin = (await clients(app, services))[Role.ADMIN]
    with mcp_server() as short_lived:
        url = short_lived.url
    created = await gql(admin, CREATE, input={"name": "gone", "url": url})
    assert created["data"]["createMcpServer"]["__typename"] == "McpServer"
    body = await gql(admin, SERVERS)
    assert body["data"]["mcpServers"] == [
        {"name": "gone", "transport": "STREAMABLE_HTTP", "tools": None}
    ]
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MCP_SERVER_UNAVAILABLE"
    assert error["path"] == ["mcpServers", 0, "tools"]
    catalog = (await gql(admin, CATALOG))["data"]["tools"]
    assert [t["name"] for t in catalog] == ["http_request", "current_time"]


async def test_the_http_allowlist_is_set_by_admins(app: Starlette, services: Services) -> None:
    http = await clients(app, services)
    bad = await gql(http[Role.ADMIN], ALLOW, hosts=["api.example.com", "https://x.test/path"])
    assert bad["data"]["setHttpAllowlist"]["fields"][0]["field"] == "hosts.1"
    editor = await gql(http[Role.EDITOR], ALLOW, hosts=["api.example.com"])
    assert editor["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    good = await gql(
        http[Role.ADMIN], ALLOW, hosts=["API.example.com", "*.example.org", "h.test:8080"]
    )
    assert good["data"]["setHttpAllowlist"]["hosts"] == [
        "api.example.com",
        "*.example.org",
        "h.test:8080",
    ]
    read = await gql(http[Role.VIEWER], "{ httpAllowlist { hosts } }")
    assert read["data"]["httpAllowlist"]["hosts"] == good["data"]["setHttpAllowlist"]["hosts"]
