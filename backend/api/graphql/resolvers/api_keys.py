"""API key management for admins: list, create (the secret shown once), revoke.

Every field here needs the admin role (core/auth.py FIELD_ROLES), checked once per operation
by RoleCheck before these resolvers run. Keys are those of the caller's workspace only: a key
id of another workspace answers NOT_FOUND, like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import known_id
from backend.api.graphql.types.api_key import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyCreateInput,
    api_key_type,
)
from backend.api.graphql.types.errors import NotFoundError, ValidationError
from backend.core.errors import NotFound, ValidationFailed
from backend.schemas import ApiKeyCreate

CreateApiKeyResult = Annotated[
    ApiKeyCreated | ValidationError | NotFoundError, strawberry.union("CreateApiKeyResult")
]
RevokeApiKeyResult = Annotated[ApiKey | NotFoundError, strawberry.union("RevokeApiKeyResult")]


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(
        description="Every key of your workspace, revoked ones included, newest first (admin)."
    )
    async def api_keys(self, info: Info) -> list[ApiKey]:
        ctx = info.context
        return [api_key_type(k) for k in await ctx.services.auth.list_keys(ctx.workspace_id)]


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(
        description="Create a key (admin). The answer's `key` is the only copy: store it now."
    )
    @domain_result(ValidationFailed, NotFound)
    async def create_api_key(self, info: Info, input: ApiKeyCreateInput) -> CreateApiKeyResult:
        ctx = info.context
        created = await ctx.services.auth.create_key(
            ctx.workspace_id, to_schema(ApiKeyCreate, input)
        )
        return ApiKeyCreated(api_key=api_key_type(created.api_key), key=created.token)

    @strawberry.mutation(
        description="Revoke a key (admin): refused from the next request on, and its open "
        "subscriptions end within seconds."
    )
    @domain_result(NotFound)
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyResult:
        ctx = info.context
        revoked = await ctx.services.auth.revoke_key(ctx.workspace_id, known_id(id, "ApiKey"))
        return api_key_type(revoked)
