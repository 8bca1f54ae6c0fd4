"""API keys as the schema shows them: never the secret or its hash, except `key` once."""

from __future__ import annotations

from datetime import datetime

import strawberry

from backend.api.graphql.types.enums import Role
from backend.schemas import ApiKeyResponse


@strawberry.type(description="A key of your workspace; `prefix` is its public start.")
class ApiKey:
    id: strawberry.ID
    prefix: str = strawberry.field(description="The key's public start, e.g. cq_ab12cd34.")
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="Last use, recorded at most once a minute."
    )
    revoked_at: datetime | None


@strawberry.type(description="A new key. `key` is the whole secret, shown this once only.")
class ApiKeyCreated:
    api_key: ApiKey
    key: str = strawberry.field(
        description="Send it as `Authorization: Bearer <key>`; only its hash is stored."
    )


@strawberry.input(description="A new key: who or what holds it, and its role.")
class ApiKeyCreateInput:
    name: str = strawberry.field(description="e.g. ci, status-dashboard")
    role: Role


def api_key_type(key: ApiKeyResponse) -> ApiKey:
    return ApiKey(
        id=strawberry.ID(str(key.id)),
        prefix=key.prefix,
        name=key.name,
        role=key.role,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )
