"""A real MCP server for tests: the `mcp` SDK's MCPServer (formerly FastMCP) served by uvicorn
on a loopback address and an ephemeral port, in a thread of its own.

It offers `add` (adds two integers), `explode` (always fails) and `slow` (sleeps), and records
the headers of every HTTP request it receives, so tests can check which credentials arrived.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from mcp.server.mcpserver import MCPServer

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_server() -> MCPServer:
    server = MCPServer("crewql-test")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails, saying why."""
        raise ValueError(f"exploded: {reason}")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleeps, then answers."""
        await asyncio.sleep(seconds)
        return "slept"

    return server


@dataclass
class RunningMcpServer:
    url: str
    transport: Literal["streamable_http", "sse"]
    requests: list[dict[str, str]] = field(default_factory=list)

    def header_values(self, name: str) -> list[str]:
        return [r[name.lower()] for r in self.requests if name.lower() in r]


@contextmanager
def mcp_server(
    transport: Literal["streamable_http", "sse"] = "streamable_http",
) -> Iterator[RunningMcpServer]:
    port = free_port()
    server = build_server()
    if transport == "sse":
        inner = server.sse_app()
        path = "/sse"
    else:
        inner = server.streamable_http_app()
        path = "/mcp"
    running = RunningMcpServer(f"http://127.0.0.1:{port}{path}", transport)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            running.requests.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="warning", lifespan="on"
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(uvicorn_server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test MCP server did not start")
        time.sleep(0.02)
    try:
        yield running
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    # `python -m tests.support.mcp_server`: the same server over stdio, as a process that
    # CREWQL_MCP_STDIO_SERVERS starts.
    build_server().run("stdio")
