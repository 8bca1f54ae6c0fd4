"""Builds a task's toolsets: built-in tools and MCP servers' tools, each guarded (guard.py).

The runner is a client of the tool service: it asks for the task's `ToolRuntime` (allowlist,
MCP endpoints with header values read from secrets, what each server offers now) and turns it
into PydanticAI toolsets. Tools a server no longer offers, or whose server is down, are left
out and listed in `Toolbox.missing`; the run goes on with the rest.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from loguru import logger
from pydantic_ai.toolsets import AbstractToolset

from backend.config.settings import Settings
from backend.core.tools.builtin import builtin_toolset
from backend.core.tools.http_fetch import HttpLimits
from backend.core.tools.mcp_client import mcp_toolset
from backend.runner.tools.guard import GuardedToolset
from backend.services.tool_runtime import McpServerTools, ToolRuntime

MAX_MODEL_NAME = 64  # what OpenAI and Anthropic accept for a function name
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ToolSource(Protocol):
    """What the runner needs of the tool service (services.tools)."""

    async def runtime(self, workspace_id: uuid.UUID, tool_names: Sequence[str]) -> ToolRuntime: ...


@dataclass(frozen=True)
class Toolbox:
    toolsets: list[AbstractToolset[Any]]
    # Model-facing name -> catalog name, e.g. mcp_docs__search -> mcp:docs/search.
    names: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    secret_values: list[str] = field(default_factory=list, repr=False)

    def catalog_name(self, model_name: str) -> str:
        return self.names.get(model_name, model_name)


def model_tool_name(server: str, tool: str) -> str:
    """`mcp_<server>__<tool>` in the characters and length model APIs accept."""
    name = _UNSAFE.sub("_", f"mcp_{server}__{tool}")
    if len(name) <= MAX_MODEL_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_MODEL_NAME - 9]}_{digest}"


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_response_bytes=settings.http_tool_max_response_bytes,
        timeout_seconds=settings.http_tool_timeout_seconds,
        max_redirects=settings.http_tool_max_redirects,
        allow_private_addresses=settings.http_tool_allow_private_addresses,
    )


def _guard(toolset: AbstractToolset[Any], settings: Settings, source: str) -> GuardedToolset:
    return GuardedToolset(
        toolset,
        timeout=settings.tool_timeout_seconds,
        max_chars=settings.tool_output_max_chars,
        source=source,
    )


def _mcp(
    server: McpServerTools, settings: Settings, names: dict[str, str], missing: list[str]
) -> AbstractToolset[Any] | None:
    prefix = f"mcp:{server.endpoint.name}/"
    if server.offered is None:
        missing.extend(prefix + tool for tool in server.wanted)
        logger.warning("MCP tools left out: {}", server.problem)
        return None
    present = [tool for tool in server.wanted if tool in server.offered]
    gone = [prefix + tool for tool in server.wanted if tool not in server.offered]
    if gone:
        missing.extend(gone)
        logger.warning("MCP server {} no longer offers {}", server.endpoint.name, ", ".join(gone))
    if not present:
        return None
    renames = {model_tool_name(server.endpoint.name, tool): tool for tool in present}
    names.update({model: prefix + tool for model, tool in renames.items()})
    wanted = set(present)
    toolset = (
        mcp_toolset(server.endpoint, connect_timeout=settings.mcp_connect_timeout_seconds)
        .filtered(lambda _ctx, tool_def: tool_def.name in wanted)
        .renamed(renames)
    )
    return _guard(toolset, settings, f"mcp:{server.endpoint.name}")


async def build_toolsets(
    workspace_id: uuid.UUID,
    tool_names: Sequence[str],
    *,
    source: ToolSource,
    settings: Settings,
    http_client: httpx.AsyncClient | None = None,
) -> Toolbox:
    """The toolsets for a task that lists `tool_names` (its agent's and its own).

    Raises SecretMissing (services/secret_service.py) when an MCP server's header names a
    secret that is not set. `http_client` is shared by `http_request` calls when given.
    """
    if not tool_names:
        return Toolbox([])
    runtime = await source.runtime(workspace_id, tool_names)
    toolsets: list[AbstractToolset[Any]] = []
    names: dict[str, str] = {}
    missing: list[str] = []
    if runtime.builtins:
        builtins = builtin_toolset(
            runtime.builtins,
            allowlist=runtime.http_allowlist,
            limits=http_limits(settings),
            client=http_client,
        )
        toolsets.append(_guard(builtins, settings, "built-in"))
        names.update({name: name for name in runtime.builtins})
    for server in runtime.servers:
        toolset = _mcp(server, settings, names, missing)
        if toolset is not None:
            toolsets.append(toolset)
    return Toolbox(toolsets, names, missing, list(runtime.secret_values))
