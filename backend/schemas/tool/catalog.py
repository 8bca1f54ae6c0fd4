"""A tool as the catalog shows it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from backend.schemas.base import ResponseSchema


class ToolSource(StrEnum):
    BUILTIN = "builtin"
    MCP = "mcp"


class ToolInfo(ResponseSchema):
    name: str = Field(description="What agents and tasks list: http_request, mcp:x/y.")
    description: str
    source: ToolSource
    server: str | None = Field(description="The MCP server's name, for MCP tools.")
    input_schema: dict[str, Any] = Field(description="JSON Schema of the tool's arguments.")
