"""The tool catalog, MCP servers (admins register them; everyone reads them) and the
`http_request` allowlist (admins set it)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import known_id
from backend.api.graphql.types.errors import (
    ConflictError,
    Deleted,
    InUseError,
    NotFoundError,
    ValidationError,
)
from backend.api.graphql.types.inputs import McpServerCreateInput, McpServerUpdateInput
from backend.api.graphql.types.tool import (
    HttpAllowlist,
    McpServer,
    Tool,
    mcp_server_type,
    tool_type,
)
from backend.core.errors import Conflict, InUse, NotFound, ValidationFailed
from backend.schemas.tool import HttpAllowlistSet, McpServerCreate, McpServerUpdate

CreateMcpServerResult = Annotated[
    McpServer | ValidationError | ConflictError, strawberry.union("CreateMcpServerResult")
]
UpdateMcpServerResult = Annotated[
    McpServer | ValidationError | NotFoundError | ConflictError | InUseError,
    strawberry.union("UpdateMcpServerResult"),
]
DeleteMcpServerResult = Annotated[
    Deleted | NotFoundError | InUseError, strawberry.union("DeleteMcpServerResult")
]
SetHttpAllowlistResult = Annotated[
    HttpAllowlist | ValidationError, strawberry.union("SetHttpAllowlistResult")
]


@strawberry.type
class ToolQuery:
    @strawberry.field(
        description="Every tool agents and tasks may list: the built-in ones, then the tools "
        "of every MCP server that answers (listed live, kept a few seconds)."
    )
    async def tools(self, info: Info) -> list[Tool]:
        ctx = info.context
        return [tool_type(t) for t in await ctx.services.tools.catalog(ctx.workspace_id)]

    @strawberry.field(description="The MCP servers registered in your workspace, by name.")
    async def mcp_servers(self, info: Info) -> list[McpServer]:
        ctx = info.context
        servers = await ctx.services.tools.servers.of_workspace(ctx.workspace_id)
        return [mcp_server_type(s) for s in servers]

    @strawberry.field(description="The hosts `http_request` may reach in your workspace.")
    async def http_allowlist(self, info: Info) -> HttpAllowlist:
        ctx = info.context
        return HttpAllowlist(hosts=await ctx.services.tools.http_allowlist(ctx.workspace_id))


@strawberry.type
class ToolMutation:
    @strawberry.mutation(description="Register an MCP server reached over HTTP (admin).")
    @domain_result(ValidationFailed, Conflict)
    async def create_mcp_server(
        self, info: Info, input: McpServerCreateInput
    ) -> CreateMcpServerResult:
        ctx = info.context
        data = to_schema(McpServerCreate, input)
        created = await ctx.services.tools.servers.create(ctx.workspace_id, data)
        return mcp_server_type(created)

    @strawberry.mutation(
        description="Change an MCP server (admin). Renaming is refused while agents or tasks "
        "list its tools."
    )
    @domain_result(ValidationFailed, NotFound, Conflict, InUse)
    async def update_mcp_server(
        self, info: Info, id: strawberry.ID, input: McpServerUpdateInput
    ) -> UpdateMcpServerResult:
        ctx = info.context
        data = to_schema(McpServerUpdate, input)
        updated = await ctx.services.tools.servers.update(
            ctx.workspace_id, known_id(id, "McpServer"), data
        )
        return mcp_server_type(updated)

    @strawberry.mutation(
        description="Remove an MCP server (admin); refused while agents or tasks list its tools."
    )
    @domain_result(NotFound, InUse)
    async def delete_mcp_server(self, info: Info, id: strawberry.ID) -> DeleteMcpServerResult:
        ctx = info.context
        server_id = known_id(id, "McpServer")
        await ctx.services.tools.servers.delete(ctx.workspace_id, server_id)
        return Deleted(id=id)

    @strawberry.mutation(
        description="Replace the hosts `http_request` may reach (admin): api.example.com, "
        "*.example.com (subdomains), host:8080 (that port only)."
    )
    @domain_result(ValidationFailed)
    async def set_http_allowlist(self, info: Info, hosts: list[str]) -> SetHttpAllowlistResult:
        ctx = info.context
        data = to_schema(HttpAllowlistSet, {"hosts": hosts})
        stored = await ctx.services.tools.set_http_allowlist(ctx.workspace_id, data.hosts)
        return HttpAllowlist(hosts=stored)
