"""Workspace secrets: set (admin), delete (admin), list names (editor). No field ever returns a
value: `Secret` has none, and `setSecret` answers with the secret's name and metadata."""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.types.errors import InUseError, NotFoundError, ValidationError
from backend.api.graphql.types.tool import Secret, SecretDeleted, secret_type
from backend.core.errors import InUse, NotFound, ValidationFailed
from backend.schemas.secret import SecretSet

SetSecretResult = Annotated[Secret | ValidationError, strawberry.union("SetSecretResult")]
DeleteSecretResult = Annotated[
    SecretDeleted | NotFoundError | InUseError, strawberry.union("DeleteSecretResult")
]


@strawberry.type
class SecretQuery:
    @strawberry.field(
        description="Your workspace's secrets by name: who set each and when (editor). "
        "Values are never returned."
    )
    async def secrets(self, info: Info) -> list[Secret]:
        ctx = info.context
        return [secret_type(s) for s in await ctx.services.secrets.list(ctx.workspace_id)]


@strawberry.type
class SecretMutation:
    @strawberry.mutation(
        description="Store a secret (admin), replacing a value of the same name. The value is "
        "encrypted at rest and never returned, logged or written to an event."
    )
    @domain_result(ValidationFailed)
    async def set_secret(self, info: Info, name: str, value: str) -> SetSecretResult:
        ctx = info.context
        data = to_schema(SecretSet, {"name": name, "value": value})
        principal = ctx.principal
        set_by = principal.key_prefix if principal is not None else "-"
        stored = await ctx.services.secrets.set(ctx.workspace_id, data, set_by)
        return secret_type(stored)

    @strawberry.mutation(
        description="Delete a secret (admin). Refused while an MCP server's header or an "
        "agent's apiKeySecret names it."
    )
    @domain_result(NotFound, InUse)
    async def delete_secret(self, info: Info, name: str) -> DeleteSecretResult:
        ctx = info.context
        await ctx.services.secrets.delete(ctx.workspace_id, name)
        return SecretDeleted(name=name)
