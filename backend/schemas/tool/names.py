"""Tool names as agents and tasks list them: `http_request`, `current_time`, `mcp:<server>/<tool>`.

The syntax is checked here (a ValidationError on the field that carries it); whether the named
server and tool exist is the tool service's business, since it needs the workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from backend.config.settings import MCP_SERVER_NAME_PATTERN
from backend.schemas.base import InputSchema

BUILTIN_TOOLS = ("http_request", "current_time")
MAX_TOOLS = 50
# MCP tool names: what servers use in practice (letters, digits, `_ - . /`), bounded.
_MCP_TOOL = r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127}"
_MCP_NAME = re.compile(rf"^mcp:({MCP_SERVER_NAME_PATTERN[1:-1]})/({_MCP_TOOL})$")


@dataclass(frozen=True, slots=True)
class ToolRef:
    """A parsed tool name: a built-in (`server` None) or one tool of one MCP server."""

    name: str
    server: str | None = None
    tool: str | None = None


def parse_tool_name(name: str) -> ToolRef | None:
    if name in BUILTIN_TOOLS:
        return ToolRef(name)
    match = _MCP_NAME.fullmatch(name)
    if match is None:
        return None
    return ToolRef(name, match.group(1), match.group(2))


def _known_shape(name: str) -> str:
    if parse_tool_name(name) is None:
        raise ValueError(
            f"unknown tool {name!r}: use {', '.join(BUILTIN_TOOLS)} or mcp:<server>/<tool>"
        )
    return name


ToolName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_known_shape)
]


def _unique(names: list[str]) -> list[str]:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once")
    return names


# What agents and tasks carry: catalog names, each once.
ToolList = Annotated[list[ToolName], Field(max_length=MAX_TOOLS), AfterValidator(_unique)]

# An allowlist entry: a host name or address, optionally `*.` in front and `:port` behind.
_HOST = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$"
)


def _host_pattern(value: str) -> str:
    host = value.strip().lower().rstrip(".")
    if not _HOST.fullmatch(host):
        raise ValueError(
            f"{value!r} is not a host: use api.example.com, *.example.com, host:8080 or an "
            "address (no scheme, no path)"
        )
    return host


HostPattern = Annotated[str, AfterValidator(_host_pattern)]


class HttpAllowlistSet(InputSchema):
    hosts: list[HostPattern] = Field(max_length=200)
