"""Reading streamed GraphQL responses in tests: Apollo's multipart protocol and graphql-sse.

Deliberately small and literal, so a test sees the bytes a client would: multipart parts are
split on the boundary line and their bodies parsed as JSON (heartbeats are `{}`); SSE events are
`event:`/`data:` pairs separated by a blank line. Every read is bounded by the caller's httpx
timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

MULTIPART_ACCEPT = "multipart/mixed;subscriptionSpec=1.0,application/json"
SSE_ACCEPT = "text/event-stream"
DELIMITER = b"\r\n--graphql"


async def multipart_parts(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each part's JSON body, heartbeats (`{}`) included, in order."""
    assert response.headers["content-type"].startswith("multipart/mixed"), response.headers
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while (at := buffer.find(DELIMITER)) != -1:
            part, buffer = buffer[:at], buffer[at + len(DELIMITER) :]
            body = part.partition(b"\r\n\r\n")[2].strip()
            if body:
                yield json.loads(body)


async def multipart_payloads(response: httpx.Response) -> list[dict[str, Any]]:
    """Every `payload` of a multipart stream, read to its end (heartbeats dropped)."""
    return [part["payload"] async for part in multipart_parts(response) if part]


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, parsed data) of each event, in order; `complete` carries None."""
    assert response.headers["content-type"].startswith(SSE_ACCEPT), response.headers
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data = line.removeprefix("data:").strip()
            yield event, json.loads(data) if data else None
