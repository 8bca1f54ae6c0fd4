"""What a key may do, and the errors that refuse a request.

This module knows nothing of GraphQL or HTTP: the API layer asks `required_role` for the role an
operation needs (from its type and root field names, once per operation, never per list item)
and turns the errors below into `extensions.code` values, HTTP statuses and websocket close codes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from backend.core.errors import DomainError
from backend.core.identity import Role

OperationKind = Literal["query", "mutation", "subscription"]

# What each kind of operation needs unless a root field is listed in FIELD_ROLES. Reading and
# watching is for every key; any change to crews, agents, tasks or executions needs an editor.
KIND_ROLES: dict[OperationKind, Role] = {
    "query": Role.VIEWER,
    "subscription": Role.VIEWER,
    "mutation": Role.EDITOR,
}

# Root fields that need more than their operation kind: managing a workspace's keys is for
# admins, and so is listing them (a list of who holds which role is itself sensitive).
FIELD_ROLES: dict[str, Role] = {
    "apiKeys": Role.ADMIN,
    "createApiKey": Role.ADMIN,
    "revokeApiKey": Role.ADMIN,
    # Secrets: admins set and delete them; their names (never values) are for editors, who
    # attach them to agents. MCP servers and the HTTP allowlist decide what tools can reach.
    "secrets": Role.EDITOR,
    "setSecret": Role.ADMIN,
    "deleteSecret": Role.ADMIN,
    "createMcpServer": Role.ADMIN,
    "updateMcpServer": Role.ADMIN,
    "deleteMcpServer": Role.ADMIN,
    "setHttpAllowlist": Role.ADMIN,
}


def required_role(kind: OperationKind, root_fields: Iterable[str]) -> Role:
    """The least role that may run an operation of `kind` selecting these root fields.

    Introspection (`__schema`, `__type`, `__typename`) needs what the operation kind needs;
    whether introspection is allowed at all is a separate setting.
    """
    needed = KIND_ROLES[kind]
    for name in root_fields:
        role = FIELD_ROLES.get(name)
        if role is not None and role > needed:
            needed = role
    return needed


class Unauthenticated(DomainError):
    """No key, a malformed one, an unknown one or a revoked one.

    The caller always reads the same message, so that probing cannot tell an unknown key from a
    revoked one; `reason` says which it was, for the audit log only.
    """

    code = "UNAUTHENTICATED"
    MESSAGE = "A valid API key is required: send `Authorization: Bearer <key>`."

    def __init__(self, reason: str, key_prefix: str | None = None) -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason
        self.key_prefix = key_prefix


class RateLimited(DomainError):
    """Too many requests for one key; `retry_after` is when the next one would be let through."""

    code = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Too many requests for this API key; retry after {self.retry_after_seconds} s."
        )

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds, rounded up, for the `Retry-After` header (RFC 9110 §10.2.3)."""
        return max(1, math.ceil(self.retry_after))


def bearer_token(value: object) -> str | None:
    """The key in an `Authorization` value (`Bearer <key>`, scheme case-insensitive, RFC 9110
    §11.1), or None. Websockets pass the same value in `connection_init`'s `authorization`, so
    one function reads both; anything that is not a string is no credential at all."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
