"""A tool as the catalog shows it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from backend.schemas.base import ResponseSchema


class ToolSource(StrEnum):
    BUILTIN = "builtin"
    MCP = "mcp"


class ToolInfo(ResponseSchema):
    name: str  # what agents and tasks list: http_request, mcp:docs/search
    description: str
    source: ToolSource
    server: str | None  # the MCP server's name
    input_schema: dict[str, Any]  # JSON Schema of the arguments
