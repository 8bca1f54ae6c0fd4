"""A small real HTTP server on loopback for the `http_request` tool: echoes, redirects, a large
body and a slow answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.mcp_server import free_port


async def echo(request: Request) -> Response:
    body = (await request.body()).decode()
    return JSONResponse(
        {
            "method": request.method,
            "body": body,
            "accept": request.headers.get("accept"),
            "authorization": request.headers.get("authorization"),
        }
    )


async def redirect(request: Request) -> Response:
    hops = int(request.query_params.get("hops", "1"))
    target = "/echo" if hops <= 1 else f"/redirect?hops={hops - 1}"
    return RedirectResponse(target, status_code=302)


async def away(request: Request) -> Response:
    return RedirectResponse(request.query_params["to"], status_code=307)


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * int(request.query_params.get("size", "100000")))


async def slow(request: Request) -> Response:
    """Answers after `seconds`, or stops waiting once the client has gone (a cancelled tool
    call), so that the server can shut down without waiting out the rest."""
    deadline = time.monotonic() + float(request.query_params.get("seconds", "5"))
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return PlainTextResponse("gone")
        await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    return PlainTextResponse("late")


@dataclass(frozen=True)
class HttpTarget:
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def http_target() -> Iterator[HttpTarget]:
    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/redirect", redirect),
            Route("/away", away),
            Route("/big", big),
            Route("/slow", slow),
        ]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test HTTP server did not start")
        time.sleep(0.02)
    try:
        yield HttpTarget(port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
