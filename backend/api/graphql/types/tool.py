"""Secrets (never their values), MCP servers and tools as the schema shows them: mirrors of
their response schemas, whose fields and descriptions are declared there once."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from backend.api.graphql.errors import ClientError
from backend.api.graphql.mirror import to_type
from backend.core.errors import DomainError
from backend.schemas.secret import SecretResponse
from backend.schemas.tool import McpHeader as McpHeaderSchema
from backend.schemas.tool import McpServerResponse, ToolInfo


@strawberry.experimental.pydantic.type(
    model=SecretResponse,
    all_fields=True,
    description="A workspace secret: its name and who set it when, never its value.",
)
class Secret:
    pass


@strawberry.type(description="A secret was deleted.")
class SecretDeleted:
    name: str


@strawberry.experimental.pydantic.type(
    model=McpHeaderSchema,
    all_fields=True,
    description="A header sent to an MCP server, its value read from a secret.",
)
class McpHeader:
    pass


@strawberry.experimental.pydantic.type(
    model=ToolInfo, all_fields=True, description="A tool agents and tasks may list by `name`."
)
class Tool:
    input_schema: JSON


@strawberry.type(description="The hosts `http_request` may reach in this workspace.")
class HttpAllowlist:
    hosts: list[str]


@strawberry.experimental.pydantic.type(
    model=McpServerResponse,
    all_fields=True,
    description="An MCP server registered in your workspace.",
)
class McpServer:
    id: strawberry.ID
    name: strawberry.auto

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


secret_type = to_type(Secret, SecretResponse)
tool_type = to_type(Tool, ToolInfo)
mcp_server_type = to_type(McpServer, McpServerResponse)
