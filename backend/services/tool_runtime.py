"""What a run needs to build its tools, as the tool service hands it to the runner: the built-in
tools named, the workspace's allowlist, and for each MCP server named its endpoint (header
values read from secrets) with the tools it offers right now."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.core.tools.mcp_client import McpEndpoint, McpTool


@dataclass(frozen=True)
class McpServerTools:
    endpoint: McpEndpoint
    wanted: tuple[str, ...]  # the server's tool names the task lists
    offered: dict[str, McpTool] | None  # None: the server could not be listed
    problem: str | None = None


@dataclass(frozen=True)
class ToolRuntime:
    builtins: tuple[str, ...]
    http_allowlist: tuple[str, ...]
    servers: list[McpServerTools] = field(default_factory=list)
    # Values the toolsets send (MCP header values): whoever reports on the run redacts them.
    secret_values: tuple[str, ...] = field(default=(), repr=False)
