"""Tools: the catalog, tool names, MCP servers and the http_request allowlist."""

from backend.schemas.tool.catalog import ToolInfo, ToolSource
from backend.schemas.tool.mcp import (
    McpHeader,
    McpServerCreate,
    McpServerResponse,
    McpServerUpdate,
    McpTransport,
)
from backend.schemas.tool.names import (
    BUILTIN_TOOLS,
    MAX_TOOLS,
    HostPattern,
    HttpAllowlistSet,
    ToolList,
    ToolName,
    ToolRef,
    parse_tool_name,
)

__all__ = [
    "BUILTIN_TOOLS",
    "MAX_TOOLS",
    "HostPattern",
    "HttpAllowlistSet",
    "McpHeader",
    "McpServerCreate",
    "McpServerResponse",
    "McpServerUpdate",
    "McpTransport",
    "ToolInfo",
    "ToolList",
    "ToolName",
    "ToolRef",
    "ToolSource",
    "parse_tool_name",
]
