"""MCP servers as a workspace registers them: a name, an HTTP(S) URL, a transport, and headers
whose values are the workspace's secrets (by name)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from backend.config.settings import MCP_SERVER_NAME_PATTERN
from backend.schemas.base import InputSchema, ResponseSchema
from backend.schemas.secret import SecretName

McpServerName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=MCP_SERVER_NAME_PATTERN)
]
HeaderName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
    ),
]
MAX_URL = 2_000


class McpTransport(StrEnum):
    STREAMABLE_HTTP = "streamable_http"
    SSE = "sse"


def _http_url(value: str) -> str:
    url = value.strip()
    if len(url) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; send them as headers from secrets")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("has an invalid port") from None
    return url


McpUrl = Annotated[str, AfterValidator(_http_url)]


class McpHeader(InputSchema):
    name: HeaderName
    secret: SecretName = Field(description="The workspace secret whose value is sent.")


def _unique_headers(headers: list[McpHeader] | None) -> None:
    if headers is None:
        return
    names = [h.name.lower() for h in headers]
    if len(set(names)) != len(names):
        raise ValueError("header names must be unique")


class McpServerCreate(InputSchema):
    name: McpServerName
    url: McpUrl
    transport: McpTransport = McpTransport.STREAMABLE_HTTP
    headers: list[McpHeader] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _headers(self) -> McpServerCreate:
        _unique_headers(self.headers)
        return self


class McpServerUpdate(InputSchema):
    name: McpServerName | None = None
    url: McpUrl | None = None
    transport: McpTransport | None = None
    headers: list[McpHeader] | None = Field(default=None, max_length=20)

    @model_validator(mode="after")
    def _headers(self) -> McpServerUpdate:
        _unique_headers(self.headers)
        return self


class McpServerResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    url: str
    transport: McpTransport
    headers: list[McpHeader]
    created_at: datetime
    updated_at: datetime
