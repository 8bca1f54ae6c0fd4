"""The built-in tools: `http_request` and `current_time`, as one PydanticAI FunctionToolset.

The same definitions feed the catalog (their descriptions and argument schemas come from the
functions' signatures and docstrings, through PydanticAI) and the runs, so the two cannot drift.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.toolsets import FunctionToolset

from backend.core.tools.http_fetch import HttpLimits, RequestRefused, fetch

HTTP_REQUEST = "http_request"
CURRENT_TIME = "current_time"


def builtin_toolset(
    names: Sequence[str],
    *,
    allowlist: Sequence[str] = (),
    limits: HttpLimits | None = None,
    client: httpx.AsyncClient | None = None,
) -> FunctionToolset[Any]:
    """The built-in tools among `names`, bound to a workspace's allowlist and the HTTP limits.

    `client` is shared by the calls (connection pooling); without one, each call opens its own.
    """
    toolset: FunctionToolset[Any] = FunctionToolset()
    allowed = list(allowlist)
    http_limits = limits or HttpLimits(1_000_000, 15.0, 3)

    async def http_request(
        url: str,
        method: Literal["GET", "POST"] = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> dict[str, Any]:
        """Send an HTTP GET or POST request and return the status, final URL, a few response
        headers and the body as text (cut at a size limit, with `truncated` true).

        Only hosts on the workspace's allowlist can be reached.

        Args:
            url: The http:// or https:// URL.
            method: GET or POST.
            headers: Request headers to send, e.g. {"Accept": "application/json"}.
            body: The request body for POST (e.g. JSON text).
        """
        try:
            async with contextlib.AsyncExitStack() as stack:
                http = client
                if http is None:
                    http = await stack.enter_async_context(
                        httpx.AsyncClient(follow_redirects=False, trust_env=False)
                    )
                result = await fetch(
                    http,
                    url=url,
                    method=method,
                    allowlist=allowed,
                    limits=http_limits,
                    headers=headers,
                    body=body,
                )
        except RequestRefused as refusal:
            raise ToolFailed(f"request refused: {refusal}") from None
        except TimeoutError:
            raise ToolFailed(f"request timed out after {http_limits.timeout_seconds:g} s") from None
        except httpx.HTTPError as error:
            raise ToolFailed(f"request failed: {type(error).__name__}: {error}") from None
        return result.as_dict()

    def current_time(timezone: str = "UTC") -> str:
        """The current date and time in ISO 8601, in the given IANA time zone.

        Args:
            timezone: An IANA time zone name such as UTC, Europe/Paris or America/New_York.
        """
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolFailed(f"unknown time zone {timezone!r}") from None
        return datetime.now(UTC).astimezone(zone).isoformat()

    if HTTP_REQUEST in names:
        toolset.add_function(http_request, name=HTTP_REQUEST)
    if CURRENT_TIME in names:
        toolset.add_function(current_time, name=CURRENT_TIME)
    return toolset


BUILTIN_NAMES = (HTTP_REQUEST, CURRENT_TIME)
