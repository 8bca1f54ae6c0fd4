"""McpServerService: the MCP servers a workspace registers, and how to reach each one.

Only HTTP servers can be registered (streamable HTTP or SSE); servers that run as processes
(stdio) come from settings alone (`CREWQL_MCP_STDIO_SERVERS`) and are offered to every
workspace under their own names, which registered servers cannot take. A server's headers name
secrets; their values are read only to connect (`endpoint`), never returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row

from backend.config.settings import StdioServer
from backend.core.errors import Conflict, FieldProblem, InUse, NotFound, ValidationFailed
from backend.core.tools.mcp_client import McpEndpoint
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas.tool import (
    McpHeader,
    McpServerCreate,
    McpServerResponse,
    McpServerUpdate,
    McpTransport,
)
from backend.services.secret_service import SecretService


def _server(row: Row[Any]) -> McpServerResponse:
    return McpServerResponse.model_construct(
        id=row.id,
        name=row.name,
        url=row.url,
        transport=McpTransport(row.transport),
        headers=[McpHeader.model_construct(**h) for h in row.headers or []],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class McpServerService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory | None,
        secrets: SecretService,
        stdio_servers: Mapping[str, StdioServer],
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow or uow
        self._secrets = secrets
        self.stdio_servers = dict(stdio_servers)

    # ================================================================ registration

    async def of_workspace(self, workspace_id: uuid.UUID) -> list[McpServerResponse]:
        async with self._read_uow() as uow:
            rows = await uow.mcp_servers.of_workspace(workspace_id)
        return [_server(row) for row in rows]

    async def get(self, workspace_id: uuid.UUID, server_id: uuid.UUID) -> McpServerResponse:
        async with self._read_uow() as uow:
            row = await uow.mcp_servers.get(workspace_id, server_id)
        if row is None:
            raise NotFound("McpServer", server_id)
        return _server(row)

    async def named(
        self, workspace_id: uuid.UUID, names: list[str]
    ) -> dict[str, McpServerResponse]:
        async with self._read_uow() as uow:
            rows = await uow.mcp_servers.named(workspace_id, names)
        return {name: _server(row) for name, row in rows.items()}

    async def create(self, workspace_id: uuid.UUID, data: McpServerCreate) -> McpServerResponse:
        async with self._uow() as uow:
            await self._check_name(uow, workspace_id, data.name)
            await self._check_secrets(uow, workspace_id, data.headers)
            row = await uow.mcp_servers.add(
                workspace_id,
                {
                    "name": data.name,
                    "url": data.url,
                    "transport": data.transport.value,
                    "headers": [h.model_dump() for h in data.headers],
                },
            )
        return _server(row)

    async def update(
        self, workspace_id: uuid.UUID, server_id: uuid.UUID, data: McpServerUpdate
    ) -> McpServerResponse:
        changes = data.model_dump(exclude_unset=True, exclude_none=True)
        async with self._uow() as uow:
            current = await uow.mcp_servers.get(workspace_id, server_id)
            if current is None:
                raise NotFound("McpServer", server_id)
            if "name" in changes and changes["name"] != current.name:
                await self._check_name(uow, workspace_id, data.name or "", exclude=server_id)
                users = await uow.mcp_servers.users_of(workspace_id, current.name)
                if users:
                    # Agents and tasks name its tools `mcp:<name>/...`: a rename would orphan them.
                    raise InUse("McpServer", current.name, users)
            if data.headers is not None:
                await self._check_secrets(uow, workspace_id, data.headers)
            if "transport" in changes:
                changes["transport"] = McpTransport(changes["transport"]).value
            row = (
                await uow.mcp_servers.update(workspace_id, server_id, changes)
                if changes
                else current
            )
        assert row is not None
        return _server(row)

    async def delete(self, workspace_id: uuid.UUID, server_id: uuid.UUID) -> None:
        async with self._uow() as uow:
            current = await uow.mcp_servers.get(workspace_id, server_id)
            if current is None:
                raise NotFound("McpServer", server_id)
            users = await uow.mcp_servers.users_of(workspace_id, current.name)
            if users:
                raise InUse("McpServer", current.name, users)
            await uow.mcp_servers.delete(workspace_id, server_id)

    async def _check_name(
        self,
        uow: UnitOfWork,
        workspace_id: uuid.UUID,
        name: str,
        exclude: uuid.UUID | None = None,
    ) -> None:
        if name in self.stdio_servers:
            raise Conflict(f"{name!r} is the name of a server from the settings.", "name")
        if await uow.mcp_servers.name_taken(workspace_id, name, exclude_id=exclude):
            raise Conflict(f"An MCP server named {name!r} already exists.", "name")

    async def _check_secrets(
        self, uow: UnitOfWork, workspace_id: uuid.UUID, headers: list[McpHeader]
    ) -> None:
        names = [h.secret for h in headers]
        stored = set(await uow.secrets.ciphertexts(workspace_id, names)) if names else set()
        problems = [
            FieldProblem(f"headers.{i}.secret", f"secret {h.secret} is not set in this workspace")
            for i, h in enumerate(headers)
            if h.secret not in stored
        ]
        if problems:
            raise ValidationFailed(problems)

    # ================================================================ connecting

    def stdio_endpoint(self, name: str) -> McpEndpoint | None:
        server = self.stdio_servers.get(name)
        if server is None:
            return None
        return McpEndpoint(
            name=name,
            transport="stdio",
            command=server.command,
            args=tuple(server.args),
            env=dict(server.env),
            cwd=server.cwd,
        )

    async def endpoint(self, workspace_id: uuid.UUID, server: McpServerResponse) -> McpEndpoint:
        """How to connect, header values read from secrets (SecretMissing if one is not set)."""
        values = await self._secrets.values(workspace_id, [h.secret for h in server.headers])
        return McpEndpoint(
            name=server.name,
            transport=server.transport.value,
            url=server.url,
            headers={h.name: values[h.secret] for h in server.headers},
        )
