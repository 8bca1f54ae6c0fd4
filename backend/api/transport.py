"""Limits on what reaches the application at all: header count and size, for HTTP and websockets;
and the server's own ASGI `send` of each websocket, kept in its scope (KeepAsgiSend).

uvicorn's default HTTP parser (httptools) accepts any number of headers of any size; h11 bounds
only the bytes it buffers (`h11_max_incomplete_event_size`, which `crewql serve` sets from the
same setting). This middleware refuses, before routing, a request whose headers exceed
CREWQL_MAX_HEADERS or CREWQL_MAX_HEADER_BYTES, whichever parser read them: `431` with a GraphQL
error body, or for a websocket handshake a refusal (HTTP 403) before the socket is accepted.
Hand-written because it is a dozen lines of ASGI; Starlette has no such middleware.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

TOO_LARGE = 431


class HeaderLimits:
    def __init__(self, app: ASGIApp, *, max_headers: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes

    def problem(self, scope: Scope) -> str | None:
        headers = scope.get("headers") or []
        if len(headers) > self.max_headers:
            allowed = self.max_headers
            return f"The request has {len(headers)} headers; at most {allowed} are allowed."
        size = sum(len(name) + len(value) + 4 for name, value in headers)  # ": " and CRLF
        if size > self.max_header_bytes:
            return f"The request headers exceed {self.max_header_bytes} bytes."
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})
        else:
            body = orjson.dumps(
                {"errors": [{"message": problem, "extensions": {"code": "HEADERS_TOO_LARGE"}}]}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": TOO_LARGE,
                    "headers": [
                        (b"content-type", b"application/json; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


# The scope key under which KeepAsgiSend keeps a websocket's ASGI `send` as the server gave it.
ASGI_SEND = "crewql.asgi_send"


class KeepAsgiSend:
    """Keeps the server's own `send` of each websocket in its scope (`ASGI_SEND`), for the
    frames that subscribers of one sharing group get pre-encoded (GuardedWebSocket.send_text).
    Between the server and the endpoint, Starlette wraps `send` (its exception middleware's
    `sender`), and its WebSocket checks the state of the socket on every message: with 1,000
    subscribers that is paid per subscriber per event (docs/performance.md, *One sender per
    group*). Placed among the app's middleware, it gets the `send` the server passed to the app
    (Starlette's ServerErrorMiddleware hands websockets through unchanged)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[ASGI_SEND] = send
        await self.app(scope, receive, send)
