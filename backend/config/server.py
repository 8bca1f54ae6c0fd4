"""uvicorn's transport limits from the settings: one function, so `crewql serve` and the tests'
live servers run with the same limits."""

from __future__ import annotations

from typing import Any

from backend.config.settings import Settings


def transport_options(settings: Settings) -> dict[str, Any]:
    return {
        # Bytes h11 buffers for one incomplete event (a request line and its headers); httptools,
        # the default parser when installed, has no such bound (HeaderLimits refuses instead).
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # A websocket message (or frame) larger than this closes the socket with 1009.
        "ws_max_size": settings.ws_max_message_bytes,
    }
