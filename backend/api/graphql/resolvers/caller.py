"""`me`: who the caller is, so a client can show only what the caller's role may do (the
dashboard hides mutating buttons from viewer keys; the server refuses them regardless)."""

from __future__ import annotations

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.types.enums import Role


@strawberry.type(description="The key a request is made with (authentication off: local admin).")
class Caller:
    workspace_id: strawberry.ID
    role: Role
    key_prefix: str = strawberry.field(description="The key's public start, e.g. cq_ab12cd34.")
    authenticated: bool = strawberry.field(description="False when authentication is off.")


@strawberry.type
class CallerQuery:
    @strawberry.field(description="The caller: workspace and role of the key in use.")
    async def me(self, info: Info) -> Caller:
        principal = info.context.principal
        ctx = info.context
        assert principal is not None  # set before any operation runs (view, websocket init)
        return Caller(
            workspace_id=strawberry.ID(str(ctx.workspace_id)),
            role=principal.role,
            key_prefix=principal.key_prefix,
            authenticated=principal.key_id is not None,
        )
