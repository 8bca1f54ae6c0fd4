"""Connecting to MCP servers through PydanticAI's MCPToolset (FastMCP's client underneath).

An `McpEndpoint` says how to reach one server: a registered HTTP server (streamable HTTP or
SSE, header values already read from secrets) or a process from settings (stdio). The
transport is chosen by the endpoint's `transport`, never guessed from the URL. Server-side tool
errors come back to the model as failed tool results (`tool_error_behavior="failed"`).

`McpToolLister` lists a server's tools for the catalog and for checking tool names, keeping
each answer for a few seconds: a catalog page or a validation should not open a session per
field.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastmcp.client.transports import (
    ClientTransport,
    SSETransport,
    StdioTransport,
    StreamableHttpTransport,
)
from pydantic_ai.mcp import MCPToolset

Transport = Literal["streamable_http", "sse", "stdio"]
MAX_CACHED = 1_000


class McpUnavailable(Exception):
    """The server could not be reached or did not answer in time; the message says which."""


@dataclass(frozen=True)
class McpEndpoint:
    name: str
    transport: Transport
    url: str | None = None
    # Header values are secrets: kept out of repr so no log line or traceback shows them.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None

    def fingerprint(self) -> str:
        """Identifies the endpoint and its credentials for caching, without holding them."""
        material = repr(
            (
                self.name,
                self.transport,
                self.url,
                sorted(self.headers.items()),
                self.command,
                self.args,
                sorted(self.env.items()),
                self.cwd,
            )
        )
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class McpTool:
    name: str
    description: str
    input_schema: dict[str, Any]


def _transport(endpoint: McpEndpoint) -> ClientTransport:
    headers = dict(endpoint.headers) or None
    if endpoint.transport == "stdio":
        assert endpoint.command is not None
        return StdioTransport(
            endpoint.command,
            list(endpoint.args),
            env=dict(endpoint.env) or None,
            cwd=endpoint.cwd,
            keep_alive=False,
        )
    assert endpoint.url is not None
    if endpoint.transport == "sse":
        return SSETransport(endpoint.url, headers=headers)
    return StreamableHttpTransport(endpoint.url, headers=headers)


def mcp_toolset(endpoint: McpEndpoint, *, connect_timeout: float) -> MCPToolset[Any]:
    """A toolset for one server; a run enters it (one session per run) and leaves it."""
    return MCPToolset(
        _transport(endpoint),
        id=f"mcp-{endpoint.name}",
        tool_error_behavior="failed",
        init_timeout=connect_timeout,
    )


async def list_mcp_tools(endpoint: McpEndpoint, *, within: float) -> list[McpTool]:
    """The server's tools, listed live; McpUnavailable when it cannot be reached in time."""
    toolset = mcp_toolset(endpoint, connect_timeout=within)
    name = endpoint.name
    try:
        async with asyncio.timeout(within), toolset:
            tools = await toolset.list_tools()
    except TimeoutError:
        raise McpUnavailable(f"MCP server {name} did not answer within {within:g} s") from None
    except Exception as error:  # any transport or protocol failure means "down"
        raise McpUnavailable(f"MCP server {name} is unavailable: {_reason(error)}") from None
    return [
        McpTool(tool.name, tool.description or "", dict(tool.input_schema or {})) for tool in tools
    ]


def _reason(error: BaseException) -> str:
    """The innermost message of an error (connection errors arrive wrapped in groups)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:199] + "…"


@dataclass
class _Listed:
    expires: float
    tools: list[McpTool] | None
    problem: str | None


class McpToolLister:
    """Lists servers' tools, keeping each answer (tools or failure) for `ttl` seconds."""

    def __init__(
        self,
        *,
        ttl: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._answers: OrderedDict[str, _Listed] = OrderedDict()
        self._pending: dict[str, asyncio.Future[_Listed]] = {}

    async def tools(self, endpoint: McpEndpoint) -> list[McpTool]:
        """The server's tools; McpUnavailable (also kept for `ttl`) when it is down."""
        listed = await self._listed(endpoint)
        if listed.tools is None:
            raise McpUnavailable(listed.problem or f"MCP server {endpoint.name} is unavailable")
        return listed.tools

    def forget(self, endpoint: McpEndpoint) -> None:
        self._answers.pop(endpoint.fingerprint(), None)

    async def _listed(self, endpoint: McpEndpoint) -> _Listed:
        key = endpoint.fingerprint()
        now = self._clock()
        cached = self._answers.get(key)
        if cached is not None and cached.expires > now:
            return cached
        pending = self._pending.get(key)
        if pending is not None:  # one listing per server at a time; the others wait for it
            return await asyncio.shield(pending)
        future: asyncio.Future[_Listed] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            try:
                listed = _Listed(0.0, await list_mcp_tools(endpoint, within=self._timeout), None)
            except McpUnavailable as down:
                listed = _Listed(0.0, None, str(down))
            listed.expires = self._clock() + self._ttl
            future.set_result(listed)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiting callers see it, nobody else must
            raise
        finally:
            self._pending.pop(key, None)
        if self._ttl > 0:
            self._answers[key] = listed
            self._answers.move_to_end(key)
            while len(self._answers) > MAX_CACHED:
                self._answers.popitem(last=False)
        return listed
