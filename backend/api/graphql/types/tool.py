"""Secrets (never their values), MCP servers and tools as the schema shows them."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from backend.api.graphql.errors import ClientError
from backend.api.graphql.types.enums import McpTransport, ToolSource
from backend.core.errors import DomainError
from backend.schemas.secret import SecretResponse
from backend.schemas.tool import McpServerResponse, ToolInfo


@strawberry.type(description="A workspace secret: its name and who set it when, never its value.")
class Secret:
    name: str
    set_by: str = strawberry.field(
        description="Who stored the current value: an API key's prefix (cq_...), local or cli."
    )
    created_at: datetime
    updated_at: datetime = strawberry.field(description="When the current value was set.")


@strawberry.type(description="A secret was deleted.")
class SecretDeleted:
    name: str


@strawberry.type(description="A header sent to an MCP server, its value read from a secret.")
class McpHeader:
    name: str
    secret: str = strawberry.field(description="The name of the workspace secret sent.")


@strawberry.type(description="A tool agents and tasks may list by `name`.")
class Tool:
    name: str = strawberry.field(description="What agents and tasks list: http_request, mcp:x/y.")
    description: str
    source: ToolSource
    server: str | None = strawberry.field(description="The MCP server's name, for MCP tools.")
    input_schema: JSON = strawberry.field(description="JSON Schema of the tool's arguments.")


@strawberry.type(description="The hosts `http_request` may reach in this workspace.")
class HttpAllowlist:
    hosts: list[str]


@strawberry.type(description="An MCP server registered in your workspace.")
class McpServer:
    id: strawberry.ID
    name: str
    url: str
    transport: McpTransport
    headers: list[McpHeader]
    created_at: datetime
    updated_at: datetime

    @strawberry.field(
        description="The server's tools, listed live (kept a few seconds); null with an "
        "MCP_SERVER_UNAVAILABLE error when the server cannot be reached."
    )
    async def tools(self, info: strawberry.Info) -> list[Tool] | None:
        ctx = info.context
        try:
            found = await ctx.services.tools.tools_of(ctx.workspace_id, self.name)
        except DomainError as error:
            raise ClientError(error.message, error.code) from None
        return [tool_type(t) for t in found]


def secret_type(secret: SecretResponse) -> Secret:
    return Secret(
        name=secret.name,
        set_by=secret.set_by,
        created_at=secret.created_at,
        updated_at=secret.updated_at,
    )


def tool_type(tool: ToolInfo) -> Tool:
    return Tool(
        name=tool.name,
        description=tool.description,
        source=tool.source,
        server=tool.server,
        input_schema=cast(JSON, tool.input_schema),
    )


def mcp_server_type(server: McpServerResponse) -> McpServer:
    return McpServer(
        id=strawberry.ID(str(server.id)),
        name=server.name,
        url=server.url,
        transport=server.transport,
        headers=[McpHeader(name=h.name, secret=h.secret) for h in server.headers],
        created_at=server.created_at,
        updated_at=server.updated_at,
    )
