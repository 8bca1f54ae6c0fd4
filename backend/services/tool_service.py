"""ToolService: the catalog of tools agents may use, checking the names agents and tasks list,
the `http_request` allowlist, and what a run needs to build its tools (`runtime`).

MCP servers are listed live through `McpToolLister`, which keeps each server's answer for
`CREWQL_MCP_TOOLS_CACHE_SECONDS`: the catalog, name checks at create/update and a run's start
then cost one listing per server and interval, not one per call.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from backend.core.errors import DomainError, FieldProblem, NotFound
from backend.core.secret_box import SecretUnreadable
from backend.core.tools.builtin import BUILTIN_NAMES, builtin_toolset
from backend.core.tools.mcp_client import McpEndpoint, McpTool, McpToolLister, McpUnavailable
from backend.repositories.unit_of_work import UnitOfWorkFactory
from backend.schemas.tool import (
    McpServerResponse,
    ToolInfo,
    ToolRef,
    ToolSource,
    parse_tool_name,
)
from backend.services.mcp_server_service import McpServerService
from backend.services.secret_service import SecretMissing
from backend.services.tool_runtime import McpServerTools, ToolRuntime


class McpServerUnavailable(DomainError):
    code = "MCP_SERVER_UNAVAILABLE"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name


def _builtin_catalog() -> list[ToolInfo]:
    toolset = builtin_toolset(BUILTIN_NAMES)
    return [
        ToolInfo(
            name=name,
            description=tool.tool_def.description or "",
            source=ToolSource.BUILTIN,
            server=None,
            input_schema=tool.tool_def.parameters_json_schema,
        )
        for name, tool in toolset.tools.items()
    ]


BUILTIN_CATALOG = _builtin_catalog()


def _mcp_info(server: str, tool: McpTool) -> ToolInfo:
    return ToolInfo(
        name=f"mcp:{server}/{tool.name}",
        description=tool.description,
        source=ToolSource.MCP,
        server=server,
        input_schema=tool.input_schema,
    )


class ToolService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory | None,
        servers: McpServerService,
        lister: McpToolLister,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow or uow
        self.servers = servers
        self._lister = lister

    # ================================================================ catalog

    async def catalog(self, workspace_id: uuid.UUID) -> list[ToolInfo]:
        """Built-in tools, then every reachable MCP server's tools (servers that cannot be
        listed right now are left out; `mcpServers { tools }` says why). Servers are asked at
        once, so one that does not answer costs the connect timeout once, not per server."""
        registered = await self.servers.of_workspace(workspace_id)
        listings = await asyncio.gather(
            *(self._listed_or_empty(workspace_id, n) for n in sorted(self.servers.stdio_servers)),
            *(self._listed_or_empty(workspace_id, s.name, s) for s in registered),
        )
        return [*BUILTIN_CATALOG, *(tool for listing in listings for tool in listing)]

    async def tools_of(self, workspace_id: uuid.UUID, server: str) -> list[ToolInfo]:
        """One server's tools, live (cached briefly); McpServerUnavailable when it is down,
        NotFound when the workspace has no server of that name."""
        tools = await self._offered(workspace_id, server, None)
        return [_mcp_info(server, tool) for tool in tools.values()]

    async def _listed_or_empty(
        self, workspace_id: uuid.UUID, name: str, server: McpServerResponse | None = None
    ) -> list[ToolInfo]:
        try:
            tools = await self._offered(workspace_id, name, server)
        except McpServerUnavailable:
            return []
        return [_mcp_info(name, tool) for tool in tools.values()]

    async def _endpoint(
        self, workspace_id: uuid.UUID, name: str, server: McpServerResponse | None
    ) -> McpEndpoint:
        stdio = self.servers.stdio_endpoint(name)
        if stdio is not None:
            return stdio
        if server is None:
            server = (await self.servers.named(workspace_id, [name])).get(name)
            if server is None:
                raise NotFound("McpServer", name)
        return await self.servers.endpoint(workspace_id, server)

    async def _offered(
        self, workspace_id: uuid.UUID, name: str, server: McpServerResponse | None
    ) -> dict[str, McpTool]:
        try:
            endpoint = await self._endpoint(workspace_id, name, server)
        except SecretMissing as missing:
            raise McpServerUnavailable(
                name, f"MCP server {name} sends secret {missing.name}, which is not set"
            ) from None
        except SecretUnreadable as unreadable:
            raise McpServerUnavailable(name, unreadable.message) from None
        try:
            tools = await self._lister.tools(endpoint)
        except McpUnavailable as down:
            raise McpServerUnavailable(name, str(down)) from None
        return {tool.name: tool for tool in tools}

    # ================================================================ names

    async def check_names(
        self, workspace_id: uuid.UUID, names: Sequence[str], field: str
    ) -> list[FieldProblem]:
        """Problems with the tool names an agent or task lists (their syntax is checked by the
        schema): unknown MCP servers, tools a server does not offer, servers that cannot be
        asked. `field` is the input field's path (`tools`), each problem gets `.index`."""
        refs = [(i, parse_tool_name(n)) for i, n in enumerate(names)]
        servers = sorted({ref.server for _, ref in refs if ref is not None and ref.server})
        offered: dict[str, dict[str, McpTool] | str] = {}
        registered = await self.servers.named(workspace_id, servers)
        for name in servers:
            if name not in registered and name not in self.servers.stdio_servers:
                offered[name] = f"no MCP server named {name!r} in this workspace"
                continue
            try:
                offered[name] = await self._offered(workspace_id, name, registered.get(name))
            except McpServerUnavailable as down:
                offered[name] = f"cannot check the tool: {down.message}"
        problems: list[FieldProblem] = []
        for index, ref in refs:
            if ref is None:  # the schema refuses these first; kept for direct callers
                problems.append(FieldProblem(f"{field}.{index}", f"unknown tool {names[index]!r}"))
                continue
            if ref.server is None:
                continue
            tools = offered[ref.server]
            if isinstance(tools, str):
                problems.append(FieldProblem(f"{field}.{index}", tools))
            elif ref.tool not in tools:
                problems.append(
                    FieldProblem(
                        f"{field}.{index}",
                        f"MCP server {ref.server} has no tool {ref.tool!r}"
                        + (f" (it offers: {', '.join(sorted(tools))})" if tools else ""),
                    )
                )
        return problems

    # ================================================================ allowlist

    async def http_allowlist(self, workspace_id: uuid.UUID) -> list[str]:
        async with self._read_uow() as uow:
            return await uow.workspaces.http_allowlist(workspace_id)

    async def set_http_allowlist(self, workspace_id: uuid.UUID, hosts: Sequence[str]) -> list[str]:
        unique = list(dict.fromkeys(hosts))
        async with self._uow() as uow:
            if not await uow.workspaces.set_http_allowlist(workspace_id, unique):
                raise NotFound("Workspace", workspace_id)
        return unique

    # ================================================================ runs

    async def runtime(self, workspace_id: uuid.UUID, tool_names: Sequence[str]) -> ToolRuntime:
        """What a run needs to build the tools it names (runner/tools/build.py).

        Raises SecretMissing when a named server's header secret is not set. Unknown names and
        servers no longer registered are left out (they were checked when they were attached).
        """
        refs = [ref for ref in map(parse_tool_name, dict.fromkeys(tool_names)) if ref]
        builtins = tuple(ref.name for ref in refs if ref.server is None)
        wanted: dict[str, list[str]] = {}
        for ref in refs:
            if ref.server is not None and ref.tool is not None:
                wanted.setdefault(ref.server, []).append(ref.tool)
        allowlist = await self.http_allowlist(workspace_id) if "http_request" in builtins else []
        registered = await self.servers.named(workspace_id, list(wanted))
        servers: list[McpServerTools] = []
        secret_values: list[str] = []
        for name, tools in wanted.items():
            server = registered.get(name)
            if server is None and name not in self.servers.stdio_servers:
                continue
            endpoint = await self._endpoint(workspace_id, name, server)
            secret_values.extend(endpoint.headers.values())
            servers.append(await self._server_tools(endpoint, tuple(tools)))
        return ToolRuntime(builtins, tuple(allowlist), servers, tuple(secret_values))

    async def _server_tools(self, endpoint: McpEndpoint, wanted: tuple[str, ...]) -> McpServerTools:
        try:
            tools = await self._lister.tools(endpoint)
        except McpUnavailable as down:
            return McpServerTools(endpoint, wanted, None, str(down))
        return McpServerTools(endpoint, wanted, {tool.name: tool for tool in tools})


__all__ = ["McpServerUnavailable", "ToolRef", "ToolService"]
